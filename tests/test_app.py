"""The web app (`colorize_nbdev.app`): its `/colorize` endpoint through `gradio_client`, bad uploads, the Space writer,
and the page itself in a real browser (headless Chromium driven by selenium, the app started as `colorize-app`).

The model is an untrained regressor (seeded): this file checks plumbing, not colours; its ab is far enough from 0
that the result is visibly not gray.
"""
import io, os, shutil, socket, subprocess, time, urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from colorize_nbdev.app import build_app, write_space
from colorize_nbdev.data.samples import sample_photos
from colorize_nbdev.modelfile import save_model
from colorize_nbdev.models.regressor import Regressor

from clitools import command, one_line_error, run   # tests/clitools.py

pytestmark = pytest.mark.usefixtures('one_thread')
PHOTO = sample_photos()[3]
# Debian's chromium + chromium-driver packages (.ci/setup installs them where it can); elsewhere set COLORIZE_CHROMIUM / COLORIZE_CHROMEDRIVER
CHROMIUM = Path(os.environ.get('COLORIZE_CHROMIUM') or shutil.which('chromium') or '/usr/bin/chromium')
CHROMEDRIVER = Path(os.environ.get('COLORIZE_CHROMEDRIVER') or shutil.which('chromedriver') or '/usr/bin/chromedriver')
LOCAL = {'NO_PROXY': '127.0.0.1,localhost', 'no_proxy': '127.0.0.1,localhost'}   # the app is on this machine


@pytest.fixture(scope='module')
def model_file(tmp_path_factory):
    torch.manual_seed(0)
    return save_model(Regressor(), tmp_path_factory.mktemp('models')/'untrained.pth', 'regressor')


@pytest.fixture(scope='module')
def bad_files(tmp_path_factory):
    d = tmp_path_factory.mktemp('bad')
    (d/'notes.jpg').write_text('this is not a photo')
    data = PHOTO.read_bytes()
    (d/'half.jpg').write_bytes(data[:len(data)//2])
    return d


def free_port()->int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0)); return s.getsockname()[1]


def not_gray(img:Image.Image)->float:
    "Mean |R-G| + |G-B| of a photo: 0 for a gray one."
    a = np.asarray(img.convert('RGB')).astype(int)
    return float((np.abs(a[..., 0] - a[..., 1]) + np.abs(a[..., 1] - a[..., 2])).mean())


@pytest.fixture(scope='module')
def client(model_file, tmp_path_factory):
    "The app launched in this process on a free port, and a gradio_client Client talking to it."
    from gradio_client import Client
    saved = {k: os.environ.get(k) for k in LOCAL}
    os.environ.update(LOCAL)
    demo = build_app([model_file], workdir=tmp_path_factory.mktemp('app'), max_pixels=1_000_000)
    port = free_port()
    demo.launch(server_name='127.0.0.1', server_port=port, prevent_thread_lock=True, quiet=True)
    try: yield Client(f'http://127.0.0.1:{port}/', verbose=False)
    finally:
        demo.close()
        for k, v in saved.items():
            if v is None: os.environ.pop(k, None)
            else: os.environ[k] = v


def test_colorize_endpoint(client):
    "`/colorize`: one image in, the coloured image of the same size out (the model and render size keep their defaults)."
    from gradio_client import handle_file
    out = client.predict(handle_file(str(PHOTO)), api_name='/colorize')
    with Image.open(out) as im, Image.open(PHOTO) as src:
        assert im.size == src.size and im.format == 'PNG'
        assert not_gray(im) > 1 and not_gray(src.convert('L')) == 0


def test_bad_uploads_get_one_line(client, bad_files, tmp_path):
    "Not an image, a damaged file, a huge image: the message names the file and says what is wrong, in one line."
    from gradio_client import handle_file
    Image.new('RGB', (1200, 1000), 'white').save(tmp_path/'huge.png')   # the app was built with max_pixels=1,000,000
    for f, words in [(bad_files/'notes.jpg', 'not an image'), (bad_files/'half.jpg', 'truncated'),
                     (tmp_path/'huge.png', 'too large for this app')]:
        with pytest.raises(Exception) as e: client.predict(handle_file(str(f)), api_name='/colorize')
        msg = str(e.value)
        assert f.name in msg and words in msg and '\n' not in msg.strip() and 'Traceback' not in msg, msg


def test_colorize_many(client, bad_files, tmp_path):
    "`/colorize_many`: the good files coloured (a photo and a clip), the bad one named in the note, not a failure of the lot."
    from gradio_client import handle_file
    from colorize_nbdev.video import make_test_clip, probe_video
    clip = make_test_clip(tmp_path/'clip.mp4', 'pan', n=4, size=(96, 64), audio=False)
    gallery, video, files, note = client.predict([handle_file(str(PHOTO)), handle_file(str(bad_files/'notes.jpg')),
                                                  handle_file(str(clip))], api_name='/colorize_many')
    assert len(gallery) == 2 and len(files) == 2                         # before and after of the photo; photo + clip
    assert probe_video(video['video'] if isinstance(video, dict) else video)['frames'] == 4
    assert 'Skipped 1' in note and 'notes.jpg: not an image' in note


def test_write_space(model_file, tmp_path):
    "A Space folder whose app.py builds the app on the copied model; files a user wrote are not replaced."
    import runpy
    space = write_space(tmp_path/'space', model_file)
    assert sorted(p.name for p in space.iterdir()) == ['README.md', 'app.py', 'model.pth', 'requirements.txt']
    assert 'sdk: gradio' in (space/'README.md').read_text() and 'app_file: app.py' in (space/'README.md').read_text()
    assert 'colorize-nbdev[app]' in (space/'requirements.txt').read_text()
    g = runpy.run_path(str(space/'app.py'), run_name='space')          # what the Space runs, minus launch()
    drop = next(b for b in g['demo'].blocks.values() if getattr(b, 'elem_id', None) == 'model')
    assert Path(drop.value) == space/'model.pth'
    (tmp_path/'mine').mkdir(); (tmp_path/'mine'/'requirements.txt').write_text('numpy\n')
    with pytest.raises(FileExistsError, match='not written by write_space'): write_space(tmp_path/'mine', model_file)
    assert (tmp_path/'mine'/'requirements.txt').read_text() == 'numpy\n'


def test_command_errors(tmp_path):
    "One line, exit status 1 (as a command); the other refusals through the same function (a command costs seconds of imports)."
    from fastcore.script import CliError
    from colorize_nbdev.cli import colorize_app
    one_line_error(run('colorize-app', '--model', tmp_path/'nope.pth'), 'nope.pth', 'no such file')
    with pytest.raises(CliError, match='no model file found'): colorize_app(model=str(tmp_path))
    with pytest.raises(CliError, match='--port'): colorize_app(port=70000)


@pytest.fixture
def browser():
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        missing = ' and '.join(str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists())
        pytest.skip(f'the browser test needs headless Chromium and its driver; missing: {missing} (Debian: apt-get install '
                    'chromium chromium-driver; or set COLORIZE_CHROMIUM and COLORIZE_CHROMEDRIVER)')
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    opts = webdriver.ChromeOptions()
    opts.binary_location = str(CHROMIUM)
    for a in ('--headless=new', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--window-size=1280,2000',
              '--no-proxy-server'):
        opts.add_argument(a)
    d = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=opts)
    try: yield d
    finally: d.quit()


def test_in_a_browser(browser, model_file, bad_files, tmp_path):
    "colorize-app in a subprocess; headless Chromium uploads a photo, reads the coloured result back, then uploads a bad file."
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait
    port, tmpdir = free_port(), tmp_path/'tmp'
    tmpdir.mkdir()
    c, env = command('colorize-app', '--port', port, '--model', model_file, '--render-size', 64,
                     env={**LOCAL, 'TMPDIR': str(tmpdir), 'OMP_NUM_THREADS': '1'})
    app = subprocess.Popen(c, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    url = f'http://127.0.0.1:{port}/'
    try:
        t0 = time.time()
        while True:                                                     # wait for the server (imports take seconds)
            try:
                with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(url, timeout=2): break
            except OSError:
                assert app.poll() is None, app.stderr.read()
                assert time.time() - t0 < 90, 'colorize-app did not start within 90 s'
                time.sleep(0.5)
        browser.get(url)
        wait = WebDriverWait(browser, 60)
        upload = wait.until(lambda d: d.find_element(By.CSS_SELECTOR, '#photo-in input[type=file]'))
        upload.send_keys(str(PHOTO))
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, '#before img'))            # the "before" picture is shown
        wait.until(lambda d: d.find_element(By.ID, 'colorize-btn')).click()
        img = wait.until(lambda d: next((e for e in d.find_elements(By.CSS_SELECTOR, '#after img') if e.get_attribute('src')), None))
        src = img.get_attribute('src')
        assert browser.execute_script('return arguments[0].naturalWidth', img) == Image.open(PHOTO).width
        with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(src, timeout=10) as r: out = Image.open(io.BytesIO(r.read()))
        assert out.size == Image.open(PHOTO).size and not_gray(out) > 1
        # a bad upload: its one-line message appears in the page, when shown and when coloured
        browser.find_element(By.CSS_SELECTOR, '#photo-in button[aria-label=Clear]').click()
        wait.until(lambda d: d.find_element(By.CSS_SELECTOR, '#photo-in input[type=file]')).send_keys(str(bad_files/'notes.jpg'))
        body = lambda d: d.find_element(By.TAG_NAME, 'body').text
        wait.until(lambda d: 'notes.jpg: not an image' in body(d))                    # the preview's warning
        browser.find_element(By.ID, 'colorize-btn').click()
        wait.until(lambda d: 'Error' in body(d) and 'notes.jpg: not an image' in body(d))   # the colorize button's error
        assert 'Traceback' not in browser.page_source
    finally:
        app.terminate()
        try: app.wait(timeout=20)
        except subprocess.TimeoutExpired: app.kill()
    written = [p for p in tmpdir.rglob('*') if p.is_file()]
    assert written and all(p.relative_to(tmpdir).parts[0].startswith('colorize-app-') for p in written), written[:5]
