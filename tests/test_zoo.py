"""`--model NAME`: the model registry, the download into the user cache (a local HTTP server), and its failures, as a user meets them."""
import functools, hashlib, http.server, json, threading
from pathlib import Path

import pytest

from colorize_nbdev.data.samples import sample_photos
from colorize_nbdev.zoo import load_zoo, resolve_model
from clitools import one_line_error, run


@pytest.fixture
def served(tmp_path):
    "A registry whose remote entries point at a local HTTP server holding a copy of the bundled model; (env, requests)."
    srv_dir = tmp_path/'srv'; srv_dir.mkdir()
    blob = srv_dir/'m.pth'
    blob.write_bytes(resolve_model('dayone').read_bytes())
    seen = []
    class Handler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *a): seen.append(self.path)
    srv = http.server.ThreadingHTTPServer(('127.0.0.1', 0), functools.partial(Handler, directory=str(srv_dir)))
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{srv.server_address[1]}/m.pth"
    sha = hashlib.sha256(blob.read_bytes()).hexdigest()
    zoo = {'models': [load_zoo()['dayone'],
                      dict(name='remote', file='m.pth', urls=['http://127.0.0.1:9/dead.pth', url], sha256=sha, bytes=blob.stat().st_size),
                      dict(name='tampered', file='t.pth', urls=[url], sha256='0'*64, bytes=blob.stat().st_size),
                      dict(name='gone', file='g.pth', urls=['http://127.0.0.1:9/g.pth'], sha256=sha)]}
    (tmp_path/'zoo.json').write_text(json.dumps(zoo))
    env = {'COLORIZE_NBDEV_ZOO': str(tmp_path/'zoo.json'), 'COLORIZE_NBDEV_CACHE': str(tmp_path/'cache')}
    yield env, seen, tmp_path
    srv.shutdown()


def test_named_model_downloads_once_verifies_and_colorizes(served):
    env, seen, tmp = served
    photo = sample_photos()[2]
    r = run('colorize', photo, '--model', 'remote', '--out', tmp/'o1', env=env)
    assert r.returncode == 0, r.stderr
    assert (tmp/'o1'/f'{photo.stem}.png').is_file() and (tmp/'cache'/'remote'/'m.pth').is_file()
    assert seen == ['/m.pth']                                      # the dead first URL was skipped, the second used
    r = run('colorize', photo, '--model', 'remote', '--out', tmp/'o2', env=env)
    assert r.returncode == 0 and seen == ['/m.pth'], r.stderr       # second time: from the cache, no request
    r = run('colorize-eval', '--data', tmp/'o1', '--model', 'remote', '--json', env=env)
    assert r.returncode == 0 and json.loads(r.stdout)['n'] == 1, r.stderr


def test_mismatch_offline_and_unknown_are_one_line(served):
    env, seen, tmp = served
    photo = sample_photos()[2]
    one_line_error(run('colorize', photo, '--model', 'tampered', '--out', tmp/'o', env=env), "'tampered'", 'does not match', after_progress=True)
    assert not [p for p in (tmp/'cache').rglob('t.pth*')]            # nothing left that could be loaded later
    one_line_error(run('colorize', photo, '--model', 'gone', '--out', tmp/'o', env=env), "'gone'", 'offline?', after_progress=True)
    one_line_error(run('colorize', photo, '--model', 'remot', '--out', tmp/'o', env=env), "unknown model 'remot'", 'remote')
    one_line_error(run('colorize', photo, '--model', 'mine/none.pth', '--out', tmp/'o', env=env), 'no such model file')
    r = run('colorize', '--list-models', env=env)
    assert r.returncode == 0 and [l.split()[0] for l in r.stdout.splitlines()] == ['dayone', 'remote', 'tampered', 'gone']


def test_shipped_registry_lists_the_bundled_model_first_with_its_hash():
    zoo = load_zoo()
    first = next(iter(zoo.values()))
    assert first['name'] == 'dayone' and first['bundled']
    f = resolve_model('dayone')
    assert hashlib.sha256(f.read_bytes()).hexdigest() == first['sha256'] and f.stat().st_size == first['bytes']
    assert all(k in first for k in ('licence', 'trained', 'card'))
