"""`colorize-eval`, run as a user runs it (a command in a subprocess), and its agreement with an independent implementation.

Small crops of the bundled photos and files the tests make: no network, nothing outside the repository.
"""
import hashlib, importlib, json, shutil, subprocess, sys
from pathlib import Path

import pytest
import torch

from colorize_nbdev.data.samples import sample_dir, sample_photos
from colorize_nbdev.metrics import evaluate, model_colorizer
from colorize_nbdev.modelfile import load_model, save_model

ROOT = Path(__file__).resolve().parents[1]
from clitools import one_line_error, run   # tests/clitools.py
TOL = {'psnr': 0.05, 'ssim': 0.005, 'cf_pred': 0.5, 'cf_gt': 0.5, 'auc': 0.5}
KEYS = ('psnr', 'ssim', 'cf_pred', 'cf_gt', 'cf_ratio', 'auc', 'n')


def digest(folder):
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob('*')) if p.is_file()}


@pytest.fixture
def photos(tmp_path):
    "Four sample photos (one in a subfolder) and three awkward files."
    d = tmp_path/'photos'
    (d/'more').mkdir(parents=True)
    for i, p in enumerate(sample_photos()[:4]): shutil.copy(p, d/('more' if i == 3 else '')/p.name)
    (d/'zero.jpg').write_bytes(b'')
    (d/'corrupt.jpg').write_bytes(sample_photos()[4].read_bytes()[:1500])
    (d/'readme.png').write_text('this is not an image')
    return d


def test_gray_json_skips_awkward_files_and_writes_out(photos, tmp_path):
    before = digest(photos)
    out = tmp_path/'preds'
    r = run('colorize-eval', '--gray', '--data', str(photos), '--size', '64', '--json', '--out', str(out))
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)                                   # exactly one JSON object on stdout
    assert all(k in res for k in KEYS) and res['n'] == 4 and res['size'] == 64
    assert 0 < res['cf_ratio'] < 0.01 and 10 < res['psnr'] < 40 and 0.5 < res['ssim'] < 1 and 50 < res['auc'] < 100
    assert sorted(Path(s['file']).name for s in res['skipped']) == ['corrupt.jpg', 'readme.png', 'zero.jpg']
    warns = [l for l in r.stderr.splitlines() if l.startswith('warning:')]
    assert len(warns) == 1 and 'Skipped 3 photos' in warns[0]
    assert all(n in r.stderr for n in ('zero.jpg', 'corrupt.jpg', 'readme.png'))
    pngs = sorted(str(p.relative_to(out)) for p in out.rglob('*.png'))
    assert pngs == sorted(str(Path(n).with_suffix('.png')) for n in before if not n.startswith(('zero', 'corrupt', 'readme')))
    assert (out/'eval_grid.jpg').stat().st_size > 0
    assert digest(photos) == before                              # the photos are only read


def test_out_equal_to_data_is_refused(photos):
    "(`--out` inside `--data` and files in `--out` it did not write are refused too: tests/test_metrics.py.)"
    before = digest(photos)
    one_line_error(run('colorize-eval', '--gray', '--data', str(photos), '--out', str(photos)), 'is the --data folder')
    assert digest(photos) == before


def test_only_bad_files_fail_with_a_message(tmp_path):
    (tmp_path/'a.jpg').write_bytes(b'')
    (tmp_path/'b.png').write_text('nope')
    r = run('colorize-eval', '--gray', '--data', str(tmp_path), '--size', '32')
    assert r.returncode == 1 and 'Traceback' not in r.stderr
    assert r.stderr.strip().splitlines()[-1].startswith('No photo could be scored: all 2 image files')
    assert 'a.jpg' in r.stderr and 'b.png' in r.stderr          # named in the warning before the error


def test_missing_folder_is_a_one_line_error(tmp_path):
    one_line_error(run('colorize-eval', '--gray', '--data', str(tmp_path/'nowhere')), 'no such folder', 'nowhere')


TINY_ARCH = '''
import torch
from colorize_nbdev.modelfile import register_arch

@register_arch('test-cli-tiny')
def tiny(hidden=3):
    return torch.nn.Sequential(torch.nn.Conv2d(1, hidden, 1), torch.nn.Tanh(), torch.nn.Conv2d(hidden, 2, 1))
'''


def test_model_with_module(photos, tmp_path, monkeypatch):
    "A model of an architecture defined outside the package: `--module` imports it (from the current folder too)."
    plug = tmp_path/'plugins'
    plug.mkdir()
    (plug/'cz_test_tiny_arch.py').write_text(TINY_ARCH)
    monkeypatch.syspath_prepend(str(plug))
    mod = importlib.import_module('cz_test_tiny_arch')
    torch.manual_seed(1)
    mp = save_model(mod.tiny(3), tmp_path/'tiny.pth', 'test-cli-tiny', {'hidden': 3, 'size': 64})
    r = run('colorize-eval', '--model', str(mp), '--data', str(photos), '--size', '48', '--json', '--module',
            'cz_test_tiny_arch', '--device', 'cpu', cwd=plug)
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)
    assert res['n'] == 4 and res['baseline']['n'] == 4 and res['colorizer'] == str(mp)
    net, cfg = load_model(mp, device='cpu')                      # the same model scored in this process
    with pytest.warns(UserWarning, match='Skipped 3 photos'):   # the folder's awkward files, named in one warning
        ref = evaluate(photos, model_colorizer(net, cfg), size=48, device='cpu')
    for k in ('psnr', 'ssim', 'cf_pred', 'auc'): assert res[k] == pytest.approx(ref[k], abs=1e-6), k
    # (without --module the architecture is unknown, and the message says what to import: tests/test_modelfile.py)
    # a truncated model file
    (tmp_path/'cut.pth').write_bytes(mp.read_bytes()[:200])
    one_line_error(run('colorize-eval', '--model', str(tmp_path/'cut.pth'), '--data', str(photos)), 'cut.pth', 'truncated or corrupt')


def test_agrees_with_independent_implementation(tmp_path):
    "colorize-eval --gray and benchmarks/independent_eval.py (numpy + scikit-image only) on the bundled photos."
    r = run('colorize-eval', '--gray', '--data', str(sample_dir()), '--json')
    assert r.returncode == 0, r.stderr
    ours = json.loads(r.stdout)
    (tmp_path/'ours.json').write_text(r.stdout)
    ind = subprocess.run([sys.executable, str(ROOT/'benchmarks'/'independent_eval.py'), str(sample_dir()),
                          '--check', str(tmp_path/'ours.json')], capture_output=True, text=True, timeout=300)
    ref = json.loads(ind.stdout)
    assert ours['n'] == ref['n'] == 32 and ours['size'] == ref['size'] == 256
    for k, tol in TOL.items(): assert abs(ours[k] - ref[k]) <= tol, (k, ours[k], ref[k])
    assert ind.returncode == 0, ind.stderr                       # the script's own check agrees


def test_folder_is_positional_like_colorize(tmp_path):
    "colorize-eval FOLDER, as colorize takes its inputs; --data still works and scores the same; ambiguity is one line."
    import json as _json
    from clitools import run as _run, one_line_error
    from colorize_nbdev.data.samples import sample_photos
    import shutil
    d = tmp_path/'photos'; d.mkdir()
    for p in sample_photos()[:3]: shutil.copy(p, d/p.name)
    a = _run('colorize-eval', d, '--gray', '--json', '--size', 64)
    b = _run('colorize-eval', '--data', d, '--gray', '--json', '--size', 64)
    assert a.returncode == b.returncode == 0, (a.stderr, b.stderr)
    assert _json.loads(a.stdout)['psnr'] == _json.loads(b.stdout)['psnr'] and _json.loads(a.stdout)['n'] == 3
    one_line_error(_run('colorize-eval', d, d, '--gray'), 'one folder')
    one_line_error(_run('colorize-eval', d, '--data', d, '--gray'), 'not both')
    if not __import__('torch').cuda.is_available():
        one_line_error(_run('colorize-eval', d, '--gray', '--device', 'cuda'), '--device cuda', 'no CUDA GPU')


def test_a_gray_photo_in_the_folder_is_flagged(tmp_path):
    "One gray photo moves gray's mean PSNR by many dB: colorize-eval names it instead of scoring it silently."
    import shutil
    from PIL import Image
    from clitools import run as _run
    from colorize_nbdev.data.samples import sample_photos
    d = tmp_path/'photos'; d.mkdir()
    for p in sample_photos()[:3]: shutil.copy(p, d/p.name)
    Image.open(sample_photos()[3]).convert('L').convert('RGB').save(d/'old_scan.jpg', quality=90)
    r = _run('colorize-eval', d, '--gray', '--json', '--size', 64)
    assert r.returncode == 0, r.stderr
    assert 'old_scan.jpg' in r.stderr and 'no colour' in r.stderr and 'Traceback' not in r.stderr
    res = json.loads(r.stdout)
    assert res['n'] == 4 and [Path(p).name for p in res['gray_photos']] == ['old_scan.jpg']
    clean = json.loads(_run('colorize-eval', d, '--gray', '--json', '--size', 64).stdout)   # same folder: same flag, stable
    assert clean['gray_photos'] == res['gray_photos']
