"""The dataset commands of colorize_nbdev.datasets (`colorize-data`, the Python functions, and the thin wrappers in
data_scripts/), offline: archives built here, served by a local HTTP server on 127.0.0.1 (with Range support and the
ability to cut a transfer short), a fake `kaggle` package; only loopback traffic."""
import hashlib, io, json, os, shutil, subprocess, sys, tarfile, threading, zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from PIL import Image

import colorize_nbdev.datasets as D
from colorize_nbdev.data.samples import sample_photos

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = ROOT/'data_scripts'
WRAPPERS = {'places365': 'places365', 'places205': 'places205', 'coco_sample': 'coco-sample', 'anime_pairs': 'anime-pairs',
            'devphotos': 'devphotos'}          # data_scripts/NAME.py -> colorize-data subcommand
COLORIZE_DATA = 'import sys; from colorize_nbdev.cli import colorize_data; colorize_data()'


def run_inproc(name, *argv):
    "`colorize-data NAME ARGV...` in this process: its exit status (errors are printed, not raised)."
    return D.cli([name, *argv])


def _env(env=None):
    return {**os.environ, 'OMP_NUM_THREADS': '1', 'PYTHONPATH': os.pathsep.join([str(ROOT), os.environ.get('PYTHONPATH', '')]),
            **(env or {})}


def run_script(name, *argv, env=None, timeout=120):
    "Run the wrapper data_scripts/NAME.py as a user does, in a subprocess."
    return subprocess.run([sys.executable, str(SCRIPTS/f"{name}.py"), *map(str, argv)], capture_output=True, text=True,
                          env=_env(env), timeout=timeout, cwd=ROOT)


def run_colorize_data(*argv, env=None, timeout=120):
    "Run `colorize-data ARGV...` (the console script's entry point) in a subprocess."
    return subprocess.run([sys.executable, '-c', COLORIZE_DATA, *map(str, argv)], capture_output=True, text=True,
                          env=_env(env), timeout=timeout, cwd=ROOT)


# ------------------------------------------------------------------------------------------------------------
# A local HTTP server that honours Range / If-Range and can cut a transfer short
# ------------------------------------------------------------------------------------------------------------
class Server:
    def __init__(self):
        self.files, self.log, self.cut, self.ignore_range = {}, [], {}, False
        srv = self
        class H(BaseHTTPRequestHandler):
            def log_message(self, *a): pass
            def do_GET(self):
                name = self.path.lstrip('/')
                rng, if_range = self.headers.get('Range'), self.headers.get('If-Range')
                if name not in srv.files:
                    srv.log.append((name, rng, 404)); self.send_error(404); return
                data = srv.files[name]; etag = '"%s"' % hashlib.md5(data).hexdigest()
                start = 0
                if rng and not srv.ignore_range and (if_range is None or if_range == etag):
                    start = int(rng.split('=')[1].split('-')[0])
                    if start >= len(data):
                        srv.log.append((name, rng, 416))
                        self.send_response(416); self.send_header('Content-Range', f'bytes */{len(data)}')
                        self.send_header('Content-Length', '0'); self.end_headers(); return
                status = 206 if start else 200
                srv.log.append((name, rng, status))
                self.send_response(status)
                self.send_header('Content-Length', str(len(data) - start))
                self.send_header('ETag', etag); self.send_header('Accept-Ranges', 'bytes')
                if status == 206: self.send_header('Content-Range', f'bytes {start}-{len(data) - 1}/{len(data)}')
                self.end_headers()
                body = data[start:]
                cut = srv.cut.get(name)
                if cut and cut[1] > 0:          # send only cut[0] bytes, then drop the connection
                    cut[1] -= 1
                    self.wfile.write(body[:cut[0]]); self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(body)
        self.httpd = ThreadingHTTPServer(('127.0.0.1', 0), H)
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs=dict(poll_interval=0.05), daemon=True)
        self.thread.start()

    def url(self, name): return f"http://127.0.0.1:{self.httpd.server_address[1]}/{name}"
    def gets(self, name): return [r for r in self.log if r[0] == name]
    def close(self): self.httpd.shutdown(); self.httpd.server_close()


@pytest.fixture
def server():
    s = Server()
    yield s
    s.close()


# ------------------------------------------------------------------------------------------------------------
# Archives
# ------------------------------------------------------------------------------------------------------------
PHOTOS = sample_photos()[:9]


def tiny_jpeg(w=100, h=80, color=(200, 40, 40)):
    b = io.BytesIO(); Image.new('RGB', (w, h), color).save(b, 'JPEG'); return b.getvalue()


def photo_members(corrupt=True):
    "(name, bytes): 9 real sample photos, a tiny 100x80 one, and (optionally) a corrupt JPEG."
    m = [(p.name, p.read_bytes()) for p in PHOTOS] + [('tiny.jpg', tiny_jpeg())]
    if corrupt: m.append(('broken.jpg', b'\xff\xd8\xff\xe0' + b'this is not JPEG data' * 20))
    return m


def make_tar(members, mode='w', prefix=''):
    "Tar bytes of `members`: (name, bytes) files, or ready TarInfo objects (links, odd names)."
    b = io.BytesIO()
    with tarfile.open(fileobj=b, mode=mode) as tf:
        for m in members:
            if isinstance(m, tarfile.TarInfo): tf.addfile(m)
            else:
                ti = tarfile.TarInfo(prefix + m[0]); ti.size = len(m[1]); tf.addfile(ti, io.BytesIO(m[1]))
    return b.getvalue()


def link(name, target, hard=False):
    ti = tarfile.TarInfo(name); ti.type = tarfile.LNKTYPE if hard else tarfile.SYMTYPE; ti.linkname = target
    return ti


def jpgs(d: Path): return sorted(p.relative_to(d).as_posix() for p in d.rglob('*.jpg'))


# ------------------------------------------------------------------------------------------------------------
# Help, provenance of the hard-coded checksums
# ------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize('name', ['places365', 'places205', 'coco_sample', 'anime_pairs'])
def test_help_documents_options(name):
    for r in (run_script(name, '--help'), run_colorize_data(WRAPPERS[name], '--help')):
        assert r.returncode == 0, r.stderr
        for opt in ('--dest', '--limit', '--seed', '--val-frac', '--size', '--force', 'Examples:', 'Terms:'): assert opt in r.stdout
        if name != 'anime_pairs': assert '--url' in r.stdout and '--md5' in r.stdout
        else: assert '--kaggle-input' in r.stdout and 'kaggle.json' in r.stdout


def test_colorize_data_lists_every_dataset():
    r = run_colorize_data('--help')
    assert r.returncode == 0, r.stderr
    for name in ('places365', 'places205', 'coco-sample', 'anime-pairs', 'devphotos', 'DATASET --help'): assert name in r.stdout
    r = run_colorize_data()
    assert r.returncode == 2 and 'required: DATASET' in r.stderr and 'Traceback' not in r.stderr
    r = run_colorize_data('imagenet', '--dest', 'x')
    assert r.returncode == 2 and "invalid choice: 'imagenet'" in r.stderr


def test_wrappers_are_thin():
    "data_scripts/NAME.py only hands over to colorize_nbdev.datasets (a few lines each)."
    for name, sub in WRAPPERS.items():
        text = (SCRIPTS/f"{name}.py").read_text()
        code = [l for l in text.split('"""', 2)[2].splitlines() if l.strip() and not l.lstrip().startswith('#')]
        assert len(code) <= 10 and f"dataset_cli('{sub}')" in text, name
    assert not (SCRIPTS/'_common.py').exists()


def test_console_script_installed():
    exe = shutil.which('colorize-data') or (Path(sys.executable).parent/'colorize-data' if (Path(sys.executable).parent/'colorize-data').exists() else None)
    if exe is None: pytest.skip("colorize-data is not installed in this environment (pip install -e . installs it)")
    r = subprocess.run([str(exe), 'devphotos', '--help'], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and '--source' in r.stdout, r.stderr


def test_import_is_cheap():
    "The CLI module imports only the standard library: no torch, fastai, matplotlib (not even PIL) at import."
    r = subprocess.run([sys.executable, '-c', 'import sys, colorize_nbdev.datasets; '
                        'print(sorted(m for m in ("torch", "fastai", "matplotlib", "numpy", "PIL") if m in sys.modules))'],
                       capture_output=True, text=True, env=_env(), timeout=60)
    assert r.returncode == 0 and r.stdout.strip() == '[]', r.stdout + r.stderr


def test_places365_md5s_are_torchvisions():
    "The hard-coded MD5s are not invented: they are the ones torchvision's Places365 uses for the same files."
    from torchvision.datasets import Places365
    assert D.PLACES365_URL == Places365._BASE_URL
    tv = {split: meta for (split, small), meta in Places365._IMAGES_META.items() if small}
    assert {k: tuple(v) for k, v in D.PLACES365_ARCHIVES.items()} == {k: tuple(v) for k, v in tv.items()}


# ------------------------------------------------------------------------------------------------------------
# Full runs
# ------------------------------------------------------------------------------------------------------------
def test_places365_full_run_noop_and_rebuild(server, tmp_path):
    server.files['val_256.tar'] = make_tar(photo_members(), prefix='val_256/')
    url, dest = server.url('val_256.tar'), tmp_path/'p365'
    r = run_script('places365', '--dest', dest, '--url', url, '--val-frac', '0.2', '--retry-wait', '0')
    assert r.returncode == 0, r.stderr
    man = json.loads((dest/'manifest.json').read_text())
    # 11 files, one corrupt: skipped with one warning naming it; the 10 readable split 8 / 2
    assert r.stderr.count('WARNING: skipped') == 1 and 'broken.jpg' in r.stderr
    assert [Path(s['file']).name for s in man['skipped']] == ['broken.jpg']
    assert (len(man['train']), len(man['valid'])) == (8, 2)
    assert jpgs(dest/'train') == man['train'] and jpgs(dest/'valid') == man['valid']
    assert all('/' not in f for f in man['train'])        # the archive's single top folder (val_256/) is not kept
    assert not set(man['train']) & set(man['valid'])
    # photos are JPEG RGB, short side never enlarged: the samples (short side < 256) keep their size
    for s in ('train', 'valid'):
        for f in man[s]:
            with Image.open(dest/s/f) as im: assert im.format == 'JPEG' and im.mode == 'RGB'
    src = dict(photo_members())
    for f in man['train'] + man['valid']:
        with Image.open(io.BytesIO(src[Path(f).name])) as a, Image.open(next(dest.glob(f"*/{f}"))) as b: assert a.size == b.size
    assert len(server.gets('val_256.tar')) == 1
    assert (dest/'downloads'/'val_256.tar').read_bytes() == server.files['val_256.tar']
    # second run, same arguments: nothing to do, no request, files untouched
    mtimes = {p: p.stat().st_mtime_ns for p in dest.rglob('*.jpg')}
    r2 = run_colorize_data('places365', '--dest', dest, '--url', url, '--val-frac', '0.2')     # the installed command: same build
    assert r2.returncode == 0 and 'up to date' in r2.stdout and 'nothing to do' in r2.stdout, r2.stdout + r2.stderr
    assert len(server.gets('val_256.tar')) == 1
    assert {p: p.stat().st_mtime_ns for p in dest.rglob('*.jpg')} == mtimes
    # changed arguments: the subset is rebuilt from the extracted files, without downloading again
    assert run_inproc('places365', '--dest', dest, '--url', url, '--limit', '5', '--size', '128', '--quiet') == 0
    man2 = json.loads((dest/'manifest.json').read_text())
    assert (len(man2['train']), len(man2['valid'])) == (4, 1) and len(server.gets('val_256.tar')) == 1
    assert sorted(jpgs(dest/'train') + jpgs(dest/'valid')) == sorted(man2['train'] + man2['valid'])


def test_limit_seed_split_reproducible_and_resize(server, tmp_path):
    server.files['val_256.tar'] = make_tar(photo_members(corrupt=False), prefix='val_256/')
    url = server.url('val_256.tar')
    dl = tmp_path/'dl'              # shared downloads folder: one download for the three builds
    def build(d, seed):
        assert run_inproc('places365', '--dest', d, '--url', url, '--limit', '6', '--seed', seed, '--n-valid', '2',
                          '--size', '128', '--downloads', dl, '--quiet') == 0
        return json.loads((d/'manifest.json').read_text())
    a, b, c = build(tmp_path/'a', 7), build(tmp_path/'b', 7), build(tmp_path/'c', 8)
    assert (a['train'], a['valid']) == (b['train'], b['valid'])           # same seed -> same subset and split
    assert (a['train'], a['valid']) != (c['train'], c['valid'])           # another seed -> another subset
    assert len(a['train']) == 4 and len(a['valid']) == 2
    assert len(server.gets('val_256.tar')) == 1
    for f in a['train'] + a['valid']:
        p = next((tmp_path/'a').glob(f"*/{f}"))
        with Image.open(p) as im, Image.open(io.BytesIO(dict(photo_members())[Path(f).name])) as orig:
            w, h = orig.size
            if min(w, h) > 128:
                assert min(im.size) == 128 and abs(im.size[0]/im.size[1] - w/h) < 0.02   # short side 128, aspect kept
            else: assert im.size == orig.size                                           # never enlarged


def test_places205_targz_full_run(server, tmp_path):
    server.files['testSetPlaces205_resize.tar.gz'] = make_tar(photo_members(corrupt=False), 'w:gz', prefix='testSet_resize/')
    dest = tmp_path/'p205'
    r = run_script('places205', '--dest', dest, '--url', server.url('testSetPlaces205_resize.tar.gz'), '--n-valid', '3', '--size', '128')
    assert r.returncode == 0, r.stderr
    man = json.loads((dest/'manifest.json').read_text())
    assert (len(man['train']), len(man['valid'])) == (7, 3)
    assert 'no published checksum' in r.stdout or 'no published size or checksum' in r.stdout
    assert (dest/'raw'/'testSetPlaces205_resize'/PHOTOS[0].name).is_file()      # top folder testSet_resize/ flattened


def test_coco_sample_goes_through_fastai_untar_data(server, tmp_path):
    files = [(f"coco_sample/train_sample/{n}", b) for n, b in photo_members(corrupt=False)]
    files.append(('coco_sample/annotations/train_sample.json', b'{"images": []}'))
    server.files['coco_sample.tgz'] = make_tar(files, 'w:gz')
    home, fh, dest = tmp_path/'home', tmp_path/'fastai_home', tmp_path/'coco'
    home.mkdir()
    env = {'FASTAI_HOME': str(fh), 'HOME': str(home)}
    r = run_script('coco_sample', '--dest', dest, '--url', server.url('coco_sample.tgz'), '--limit', '6', '--size', '128', env=env)
    assert r.returncode == 0, r.stderr
    # laid out where untar_data looks: archive/coco_sample.tgz, data/coco_sample/train_sample/...
    assert (fh/'archive'/'coco_sample.tgz').read_bytes() == server.files['coco_sample.tgz']
    assert len(list((fh/'data'/'coco_sample'/'train_sample').glob('*.jpg'))) == 10
    assert (fh/'data'/'coco_sample'/'annotations'/'train_sample.json').is_file()
    assert not (home/'.fastai').exists()                       # nothing touched ~/.fastai
    assert len(server.gets('coco_sample.tgz')) == 1            # untar_data found the data: no second download
    man = json.loads((dest/'manifest.json').read_text())
    assert (len(man['train']), len(man['valid'])) == (5, 1) and man['source']['fastai_data'] == str(fh/'data'/'coco_sample')
    # fastai itself, in this process, resolves the same folder without any request
    from fastai.data.external import untar_data
    assert untar_data(server.url('coco_sample.tgz'), base=str(fh)) == fh/'data'/'coco_sample'
    assert len(server.gets('coco_sample.tgz')) == 1


def test_coco_sample_applies_fastais_download_checks(server, tmp_path, monkeypatch, capsys):
    "The COCO archive is checked against fastai's own download_checks.py: (size, MD5 of the first MiB)."
    import fastai.data, fastdownload
    from fastai.data.external import URLs
    size, md5_1mib = fastdownload.read_checks(fastdownload.checks_module(fastai.data))[URLs.COCO_SAMPLE]
    assert size > 10**9 and len(md5_1mib) == 32                     # fastai publishes values for the real archive
    data = make_tar([(f"coco_sample/train_sample/{n}", b) for n, b in photo_members(corrupt=False)], 'w:gz')
    server.files['coco_sample.tgz'] = data
    url = server.url('coco_sample.tgz')
    args = ['--dest', tmp_path/'coco', '--url', url, '--fastai-home', tmp_path/'fh', '--quiet', '--size', '64']
    # the same check, pointed at the local URL: a wrong first-MiB MD5 is caught, the right one passes
    monkeypatch.setattr(fastdownload, 'read_checks', lambda m: {url: (len(data), '0'*32)})
    assert run_inproc('coco-sample', *args) == 1
    err = capsys.readouterr().err
    assert f"MD5 of the first MiB is {hashlib.md5(data[:2**20]).hexdigest()}, expected {'0'*32}" in err and 'download_checks.py' in err
    assert not (tmp_path/'fh'/'data'/'coco_sample').exists()
    monkeypatch.setattr(fastdownload, 'read_checks', lambda m: {url: (len(data), hashlib.md5(data[:2**20]).hexdigest())})
    assert run_inproc('coco-sample', *args) == 0
    assert len(list((tmp_path/'fh'/'data'/'coco_sample'/'train_sample').glob('*.jpg'))) == 10


# ------------------------------------------------------------------------------------------------------------
# Interrupted and unusable downloads
# ------------------------------------------------------------------------------------------------------------
def test_interrupted_transfer_resumes_in_the_same_run(server, tmp_path):
    data = make_tar(photo_members(), prefix='val_256/')
    server.files['val_256.tar'] = data
    server.cut['val_256.tar'] = [100_000, 1]            # first response stops after 100 kB
    dest = tmp_path/'p'
    r = run_inproc('places365', '--dest', dest, '--url', server.url('val_256.tar'), '--retry-wait', '0', '--quiet',
                   '--md5', hashlib.md5(data).hexdigest())
    assert r == 0
    log = server.gets('val_256.tar')
    assert [s for _, _, s in log] == [200, 206] and log[1][1] == 'bytes=100000-'
    assert (dest/'downloads'/'val_256.tar').read_bytes() == data
    assert not (dest/'downloads'/'val_256.tar.part').exists()


def test_interrupted_transfer_resumed_by_next_run(server, tmp_path, capsys):
    data = make_tar(photo_members(), prefix='val_256/')
    server.files['val_256.tar'] = data
    server.cut['val_256.tar'] = [65_536, 1]
    dest, url = tmp_path/'p', server.url('val_256.tar')
    assert run_inproc('places365', '--dest', dest, '--url', url, '--retries', '0', '--quiet') == 1
    err = capsys.readouterr().err
    assert 'interrupted' in err and 'run the same command again to resume' in err
    part = dest/'downloads'/'val_256.tar.part'
    assert part.stat().st_size == 65_536 and not (dest/'downloads'/'val_256.tar').exists()   # only the .part
    assert not (dest/'train').exists()
    assert run_inproc('places365', '--dest', dest, '--url', url, '--quiet') == 0
    assert server.gets('val_256.tar')[-1][1:] == ('bytes=65536-', 206)
    assert (dest/'downloads'/'val_256.tar').read_bytes() == data and not part.exists()
    assert (dest/'manifest.json').is_file()


def test_server_ignoring_range_means_a_clean_restart(server, tmp_path):
    data = make_tar(photo_members(corrupt=False))
    server.files['a.tar'] = data
    server.cut['a.tar'] = [50_000, 1]
    server.ignore_range = True                           # answers 200 with the whole file to a Range request
    dest = tmp_path/'dl'/'a.tar'
    D.download(server.url('a.tar'), dest, retries=2, quiet=True, wait=0)
    assert [(r[1] is not None, r[2]) for r in server.gets('a.tar')] == [(False, 200), (True, 200)]
    assert dest.read_bytes() == data                     # not 50 kB of the first try + the whole file


def test_unusable_partial_file_restarts_cleanly(server, tmp_path):
    data = make_tar(photo_members(corrupt=False))
    server.files['a.tar'] = data
    url, dest = server.url('a.tar'), tmp_path/'dl'/'a.tar'
    dest.parent.mkdir()
    part, pmeta = dest.with_name('a.tar.part'), dest.with_name('a.tar.part.json')
    # 1. a partial file with the wrong bytes: the resumed file fails the checksum -> deleted, downloaded from byte 0
    part.write_bytes(b'\0'*30_000)
    D.write_json(pmeta, dict(url=url, validator=None, total=len(data)))
    D.download(url, dest, D.Expected(md5=hashlib.md5(data).hexdigest()), quiet=True, wait=0)
    assert [(r[1], r[2]) for r in server.gets('a.tar')] == [('bytes=30000-', 206), (None, 200)]
    assert dest.read_bytes() == data
    # 2. a partial file longer than the file on the server: HTTP 416 -> deleted, downloaded from byte 0
    dest.unlink(); dest.with_name('a.tar.json').unlink()
    part.write_bytes(b'x'*(len(data) + 10))
    D.write_json(pmeta, dict(url=url, validator=None, total=None))
    D.download(url, dest, quiet=True, wait=0)
    assert [r[2] for r in server.gets('a.tar')][-2:] == [416, 200] and dest.read_bytes() == data
    # 3. a partial file from another URL is not continued
    dest.unlink(); dest.with_name('a.tar.json').unlink()
    part.write_bytes(data[:1000]); D.write_json(pmeta, dict(url=url + '?other', validator=None, total=len(data)))
    D.download(url, dest, quiet=True, wait=0)
    assert server.gets('a.tar')[-1][1:] == (None, 200) and dest.read_bytes() == data


def test_checksum_mismatch_is_detected(server, tmp_path, capsys):
    server.files['val_256.tar'] = make_tar(photo_members(), prefix='val_256/')
    dest = tmp_path/'p'
    wrong = '0'*32
    assert run_inproc('places365', '--dest', dest, '--url', server.url('val_256.tar'), '--md5', wrong, '--quiet') == 1
    err = capsys.readouterr().err
    assert f"expected {wrong}" in err and hashlib.md5(server.files['val_256.tar']).hexdigest() in err and 'deleted' in err
    assert not list((dest/'downloads').glob('val_256.tar*')) and not (dest/'raw').exists() and not (dest/'train').exists()
    # the right checksum passes
    good = hashlib.md5(server.files['val_256.tar']).hexdigest()
    assert run_inproc('places365', '--dest', dest, '--url', server.url('val_256.tar'), '--md5', good, '--quiet') == 0


def test_size_mismatch_against_published_size(server, tmp_path):
    server.files['f.bin'] = b'y'*5000
    with pytest.raises(D.ChecksumError, match='size is 5000, expected 4000'):
        D.download(server.url('f.bin'), tmp_path/'f.bin', D.Expected(size=4000, source='test'), quiet=True)
    assert not (tmp_path/'f.bin').exists() and not (tmp_path/'f.bin.part').exists()


def test_http_error_is_one_clear_line(server, tmp_path, capsys):
    assert run_inproc('places205', '--dest', tmp_path/'x', '--url', server.url('missing.tar.gz'), '--quiet') == 1
    err = capsys.readouterr().err
    assert err.startswith('error: Could not download') and 'HTTP 404' in err and 'Traceback' not in err


# ------------------------------------------------------------------------------------------------------------
# Safe extraction
# ------------------------------------------------------------------------------------------------------------
def evil_tars(outside: Path):
    ok = [('data/ok.jpg', tiny_jpeg())]
    return {
        'dotdot': (make_tar(ok + [('../evil.txt', b'pwned')]), '../evil.txt'),
        'deep_dotdot': (make_tar(ok + [('data/../../evil.txt', b'pwned')]), 'data/../../evil.txt'),
        'absolute': (make_tar(ok + [(str(outside/'abs_evil.txt'), b'pwned')]), str(outside/'abs_evil.txt')),
        'symlink_out': (make_tar(ok + [link('data/link', '../../outside'), ('data/link/evil.txt', b'pwned')]), 'data/link'),
        'symlink_abs': (make_tar(ok + [link('data/link', str(outside))]), 'data/link'),
        'hardlink_out': (make_tar(ok + [link('data/hl', '../outside/secret', hard=True)]), 'data/hl'),
    }


@pytest.mark.parametrize('case', ['dotdot', 'deep_dotdot', 'absolute', 'symlink_out', 'symlink_abs', 'hardlink_out'])
def test_unsafe_tar_members_are_refused(tmp_path, case):
    outside = tmp_path/'outside'; outside.mkdir()
    (outside/'secret').write_text('keep me')
    data, member = evil_tars(outside)[case]
    arch = tmp_path/'work'/'evil.tar'; arch.parent.mkdir(); arch.write_bytes(data)
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob('*'))
    with pytest.raises(D.UnsafeArchiveError) as e:
        D.safe_extract(arch, tmp_path/'work'/'raw', quiet=True)
    assert repr(member) in str(e.value) and 'Nothing was extracted' in str(e.value)
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob('*')) == before      # nothing written anywhere
    assert (outside/'secret').read_text() == 'keep me'


def test_link_chain_escaping_on_disk_is_refused(tmp_path):
    "Links that look harmless one by one but lead outside once extracted are caught member by member."
    data = make_tar([('ok.jpg', tiny_jpeg()), link('a/c', '..'), link('y', 'a/c/..'), ('y/evil.txt', b'pwned')])
    arch = tmp_path/'chain.tar'; arch.write_bytes(data)
    (tmp_path/'w').mkdir()
    with pytest.raises(D.UnsafeArchiveError) as e:
        D.safe_extract(arch, tmp_path/'w'/'raw', quiet=True)
    assert "'y'" in str(e.value) or "'y/evil.txt'" in str(e.value)
    assert not (tmp_path/'w'/'raw').exists() and not list((tmp_path/'w').iterdir())
    assert not (tmp_path/'evil.txt').exists()


def test_zip_with_dotdot_member_is_refused(tmp_path):
    b = io.BytesIO()
    with zipfile.ZipFile(b, 'w') as z:
        z.writestr('pairs/train/a.png', b'x'); z.writestr('../evil.txt', b'pwned')
    arch = tmp_path/'evil.zip'; arch.write_bytes(b.getvalue())
    with pytest.raises(D.UnsafeArchiveError, match=r"member '\.\./evil\.txt'"):
        D.safe_extract(arch, tmp_path/'raw', quiet=True)
    assert not (tmp_path/'raw').exists() and not (tmp_path.parent/'evil.txt').exists()


def test_script_refuses_archive_with_dotdot_member(server, tmp_path, capsys):
    server.files['val_256.tar'] = make_tar([('val_256/a.jpg', tiny_jpeg()), ('../evil.jpg', tiny_jpeg())])
    dest = tmp_path/'p'
    assert run_inproc('places365', '--dest', dest, '--url', server.url('val_256.tar'), '--quiet') == 1
    err = capsys.readouterr().err
    assert err.startswith('error: Refusing to extract') and "'../evil.jpg'" in err
    assert not (dest/'raw').exists() and not (dest/'train').exists() and not (tmp_path/'evil.jpg').exists()
    assert not [p for p in tmp_path.rglob('*evil*')]


def test_damaged_archive_is_reported(tmp_path):
    good = make_tar(photo_members(corrupt=False), 'w:gz')
    arch = tmp_path/'cut.tar.gz'; arch.write_bytes(good[:len(good)//2])
    with pytest.raises(D.ArchiveError, match='damaged, truncated'):
        D.safe_extract(arch, tmp_path/'raw', quiet=True)
    flipped = bytearray(good); flipped[len(good)//2] ^= 0xFF
    arch.write_bytes(bytes(flipped))
    with pytest.raises(D.ArchiveError):
        D.safe_extract(arch, tmp_path/'raw', quiet=True)
    assert not (tmp_path/'raw').exists()


# ------------------------------------------------------------------------------------------------------------
# Nothing of the user's is lost
# ------------------------------------------------------------------------------------------------------------
def test_user_files_in_dest_are_never_deleted(server, tmp_path, capsys):
    server.files['val_256.tar'] = make_tar(photo_members(corrupt=False), prefix='val_256/')
    url, dest = server.url('val_256.tar'), tmp_path/'p'
    (dest/'train').mkdir(parents=True)
    mine = dest/'train'/'my_photo.jpg'; mine.write_bytes(b'mine')
    assert run_inproc('places365', '--dest', dest, '--url', url, '--quiet') == 1
    assert 'was not made by this command' in capsys.readouterr().err and mine.read_bytes() == b'mine'
    mine.unlink(); (dest/'train').rmdir()
    assert run_inproc('places365', '--dest', dest, '--url', url, '--quiet') == 0
    mine.write_bytes(b'mine')                             # added by hand after the build
    assert run_inproc('places365', '--dest', dest, '--url', url, '--limit', '4', '--quiet') == 1
    assert 'not listed in' in capsys.readouterr().err and mine.read_bytes() == b'mine'


# ------------------------------------------------------------------------------------------------------------
# Kaggle anime pairs
# ------------------------------------------------------------------------------------------------------------
FAKE_KEY_ENV, FAKE_KEY_FILE = 'fakeENVkey0123456789abcdef', 'fakeFILEkey9876543210fedcba'

FAKE_KAGGLE = '''
import json, logging, os, shutil, sys
from pathlib import Path
log = os.environ.get("FAKE_KAGGLE_LOG")
if log: Path(log).open("a").write("imported\\n")
if os.environ.get("FAKE_KAGGLE_FORBID"): raise RuntimeError("the kaggle package must not be imported in this test")
class _Api:
    def authenticate(self):
        # a careless library: it prints and logs the secret it found (this script must scrub it)
        key = os.environ.get("KAGGLE_KEY", "")
        print("authenticating with key " + key)
        logging.getLogger("kaggle").warning("debug: key=%s", key)
        cfg = Path.home()/".kaggle"/"kaggle.json"
        if cfg.is_file(): print("config: " + cfg.read_text(), file=sys.stderr)
    def dataset_download_files(self, dataset, path=None, force=False, quiet=True, unzip=False):
        if log: Path(log).open("a").write(json.dumps(dict(dataset=dataset, path=path, force=force, unzip=unzip)) + "\\n")
        if os.environ.get("FAKE_KAGGLE_FAIL"):
            raise RuntimeError("403 Forbidden for user with key " + os.environ.get("KAGGLE_KEY", ""))
        Path(path).mkdir(parents=True, exist_ok=True)
        shutil.copy(os.environ["FAKE_KAGGLE_ZIP"], Path(path)/(dataset.split("/")[1] + ".zip"))
        print("Dataset URL: https://www.kaggle.com/datasets/" + dataset)
api = _Api()
'''


def pair_png(w=64, h=32):
    im = Image.new('RGB', (w, h), (255, 255, 255))
    im.paste(Image.new('RGB', (w//2, h), (220, 60, 30)), (0, 0))       # colour left, sketch (white) right
    b = io.BytesIO(); im.save(b, 'PNG'); return b.getvalue()


def pairs_tree(root: Path):
    for s, n in (('train', 6), ('val', 3)):
        (root/'data'/s).mkdir(parents=True)
        for i in range(n): (root/'data'/s/f"{i}.png").write_bytes(pair_png())
    (root/'data'/'train'/'square.png').write_bytes(pair_png(32, 32))     # not a pair: skipped with a warning


@pytest.fixture
def kaggle_env(tmp_path):
    "A HOME with no credentials, a fake `kaggle` package first on PYTHONPATH, a zip it 'downloads'."
    home = tmp_path/'home'; home.mkdir()
    fake = tmp_path/'fake'; (fake/'kaggle').mkdir(parents=True)
    (fake/'kaggle'/'__init__.py').write_text(FAKE_KAGGLE)
    src = tmp_path/'zipsrc'; pairs_tree(src)
    zp = tmp_path/'anime-sketch-colorization-pair.zip'
    with zipfile.ZipFile(zp, 'w') as z:
        for p in sorted(src.rglob('*.png')): z.write(p, p.relative_to(src).as_posix())
    env = {k: v for k, v in os.environ.items() if not k.startswith('KAGGLE_')}
    env.update(HOME=str(home), PYTHONPATH=os.pathsep.join([str(fake), str(ROOT)]), FAKE_KAGGLE_ZIP=str(zp),
               FAKE_KAGGLE_LOG=str(tmp_path/'kaggle.log'), XDG_CONFIG_HOME=str(home/'.config'))
    return env, tmp_path


def run_anime(env, *argv):
    return subprocess.run([sys.executable, str(SCRIPTS/'anime_pairs.py'), *map(str, argv)], capture_output=True, text=True,
                          env=env, timeout=120, cwd=ROOT)


def test_kaggle_missing_credentials_explains_how_to_get_them(kaggle_env):
    env, tmp = kaggle_env
    r = run_anime(env, '--dest', tmp/'anime', '--kaggle-input', tmp/'no_input')
    assert r.returncode != 0
    for s in ('No Kaggle credentials', 'Settings -> API', 'Create New Token', '~/.kaggle/kaggle.json', 'chmod 600',
              'KAGGLE_USERNAME', 'KAGGLE_KEY', 'Add Input'):
        assert s in r.stderr, s
    assert 'Traceback' not in r.stderr and not (tmp/'kaggle.log').exists()      # kaggle was not even imported
    assert not (tmp/'anime'/'train').exists()


def test_kaggle_download_path_and_key_never_printed(kaggle_env):
    env, tmp = kaggle_env
    (Path(env['HOME'])/'.kaggle').mkdir()
    kj = Path(env['HOME'])/'.kaggle'/'kaggle.json'
    kj.write_text(json.dumps({'username': 'someone', 'key': FAKE_KEY_FILE})); kj.chmod(0o600)
    env = {**env, 'KAGGLE_USERNAME': 'someone', 'KAGGLE_KEY': FAKE_KEY_ENV}
    dest = tmp/'anime'
    r = run_anime(env, '--dest', dest, '--kaggle-input', tmp/'no_input', '--size', '16', '--limit', '6', '--val-frac', '0.34')
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    assert FAKE_KEY_ENV not in out and FAKE_KEY_FILE not in out and '***' in out    # the leaky fake was scrubbed
    calls = [json.loads(l) for l in (tmp/'kaggle.log').read_text().splitlines() if l.startswith('{')]
    assert calls == [dict(dataset='ktaebum/anime-sketch-colorization-pair', path=str(dest/'downloads'), force=False, unzip=False)]
    man = json.loads((dest/'manifest.json').read_text())
    assert (len(man['train']), len(man['valid'])) == (4, 2)
    for s in ('train', 'valid'):
        for f in man[s]:
            with Image.open(dest/s/f) as im: assert im.format == 'PNG' and im.size == (32, 16)    # pairs stay 2:1
    for p in dest.rglob('*'):                                                   # nor written to any file
        if p.is_file() and p.suffix in ('.json', '.txt', ''): assert FAKE_KEY_ENV not in p.read_text(errors='ignore')
    # a failing download whose error message contains the key: reported, scrubbed
    r2 = run_anime({**env, 'FAKE_KAGGLE_FAIL': '1'}, '--dest', tmp/'anime2', '--kaggle-input', tmp/'no_input')
    assert r2.returncode == 1 and 'Kaggle download of' in r2.stderr and '403' in r2.stderr
    assert FAKE_KEY_ENV not in r2.stdout + r2.stderr


def test_kaggle_attached_input_needs_no_credentials(kaggle_env):
    env, tmp = kaggle_env
    kin = tmp/'kaggle_input'; pairs_tree(kin/'anime-sketch-colorization-pair')
    env = {**env, 'FAKE_KAGGLE_FORBID': '1'}
    r = run_anime(env, '--dest', tmp/'anime', '--kaggle-input', kin, '--size', '0', '--format', 'jpg', '--quiet')
    assert r.returncode == 0, r.stderr
    assert not (tmp/'kaggle.log').exists()                                      # never imported
    assert r.stderr.count('WARNING: skipped') == 1 and 'square.png' in r.stderr and 'not a side-by-side pair' in r.stderr
    man = json.loads((tmp/'anime'/'manifest.json').read_text())
    assert (len(man['train']), len(man['valid'])) == (6, 3) and man['source']['attached'] == str(kin/'anime-sketch-colorization-pair')
    with Image.open(tmp/'anime'/'train'/man['train'][0]) as im: assert im.format == 'JPEG' and im.size == (64, 32)
    assert not (tmp/'anime'/'downloads').exists()


def test_kaggle_malformed_json_names_the_file_without_content(tmp_path, monkeypatch):
    d = tmp_path/'cfg'; d.mkdir()
    (d/'kaggle.json').write_text('{"username": "u", "key": "' + FAKE_KEY_FILE + '"')      # missing }
    monkeypatch.setenv('KAGGLE_CONFIG_DIR', str(d))
    for k in ('KAGGLE_USERNAME', 'KAGGLE_KEY', 'KAGGLE_API_TOKEN'): monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv('HOME', str(tmp_path))
    with pytest.raises(D.DatasetError) as e: D.find_credentials()
    assert str(d/'kaggle.json') in str(e.value) and 'not valid JSON' in str(e.value) and FAKE_KEY_FILE not in str(e.value)


# ------------------------------------------------------------------------------------------------------------
# Python API and error reporting
# ------------------------------------------------------------------------------------------------------------
def test_python_api_runs_and_raises(server, tmp_path):
    "The Python functions take the options as keyword arguments, return DEST, and raise DatasetError instead of exiting."
    server.files['val_256.tar'] = make_tar(photo_members(corrupt=False), prefix='val_256/')
    dest = tmp_path/'p365'
    assert D.places365(dest, url=server.url('val_256.tar'), limit=4, n_valid=1, size=64, quiet=True) == dest
    man = json.loads((dest/'manifest.json').read_text())
    assert (len(man['train']), len(man['valid'])) == (3, 1) and man['key']['size'] == 64
    with pytest.raises(D.DownloadError, match='HTTP 404'):
        D.places205(tmp_path/'p205', url=server.url('missing.tar.gz'), quiet=True)
    with pytest.raises(D.ArgumentError, match='--quality must be between 1 and 100'):
        D.places365(dest, quality=0)
    with pytest.raises(TypeError, match="unexpected option 'colour'"):
        D._api('places365', dict(dest=dest, colour=True))


def test_unexpected_and_os_errors_are_one_line(server, tmp_path, monkeypatch, capsys):
    "Not even a bug or a full disk prints a traceback: one line, exit status 1 (COLORIZE_DATA_DEBUG=1 shows the traceback)."
    def boom(args): raise RuntimeError('something odd')
    monkeypatch.setattr(D.DATASETS['places205'], 'run', boom)
    assert run_inproc('places205', '--dest', tmp_path/'x') == 1
    err = capsys.readouterr().err
    assert err.startswith('error: unexpected RuntimeError: something odd') and err.count('\n') == 1 and 'Traceback' not in err
    monkeypatch.setenv('COLORIZE_DATA_DEBUG', '1')
    assert run_inproc('places205', '--dest', tmp_path/'x') == 1 and 'Traceback' in capsys.readouterr().err
    monkeypatch.undo()
    def full(args): raise OSError(28, 'No space left on device', str(args.dest/'train'/'a.jpg'))
    monkeypatch.setattr(D.DATASETS['places205'], 'run', full)
    assert run_inproc('places205', '--dest', tmp_path/'x') == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: No space left on device: {tmp_path/'x'/'train'/'a.jpg'}") and 'free some space' in err
    assert err.count('\n') == 1
    monkeypatch.undo()
    (tmp_path/'afile').write_text('not a folder')         # --downloads inside a file: the OS refuses, one line
    server.files['t.tar.gz'] = make_tar(photo_members(corrupt=False), 'w:gz')
    assert run_inproc('places205', '--dest', tmp_path/'y', '--downloads', tmp_path/'afile'/'dl', '--url', server.url('t.tar.gz'), '--quiet') == 1
    err = capsys.readouterr().err
    assert err.startswith('error: ') and str(tmp_path/'afile') in err and 'Traceback' not in err and err.count('\n') == 1
