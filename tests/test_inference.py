"""`colorize_image`, `colorize_paths` and the `colorize` command (run as a user runs it: a command in a subprocess).

Photos are bundled sample photos and files the tests make; the model is a tiny per-pixel network defined here.
"""
import hashlib, importlib, shutil, sys, warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from colorize_nbdev.color import rgb_to_lab
from colorize_nbdev.data.core import open_rgb
from colorize_nbdev.data.samples import sample_photos
from colorize_nbdev.cli import EXIT_SOME_FAILED
from colorize_nbdev.inference import (ColorizeError, colorize_image, colorize_paths, recombine,
                                      render_shape, prepare, run_model)
from colorize_nbdev.modelfile import save_model

from clitools import one_line_error, run as run_cli   # tests/clitools.py


def run(*args, cwd=None, plugdir=None): return run_cli('colorize', *args, cwd=cwd, env={'PYTHONPATH': str(plugdir or '')})


TINY_ARCH = '''
import torch
from colorize_nbdev.modelfile import register_arch

@register_arch('test-infer-tiny')
def tiny(hidden=4):
    "Per-pixel L -> ab with strong colours (many out of gamut): a hard case for keeping L."
    return torch.nn.Sequential(torch.nn.Conv2d(1, hidden, 1), torch.nn.Tanh(), torch.nn.Conv2d(hidden, 2, 1), torch.nn.Tanh())
'''


@pytest.fixture(scope='module')
def plug(tmp_path_factory):
    "A module defining the tiny architecture, importable here and by the command (`--module`)."
    d = tmp_path_factory.mktemp('plugins')
    (d/'cz_test_infer_arch.py').write_text(TINY_ARCH)
    sys.path.insert(0, str(d))
    mod = importlib.import_module('cz_test_infer_arch')
    yield d, mod
    sys.path.remove(str(d))


@pytest.fixture(scope='module')
def net(plug):
    torch.manual_seed(0)
    m = plug[1].tiny(4)
    with torch.no_grad(): m[2].weight.mul_(3)    # garish: many colours outside sRGB
    return m.eval()


@pytest.fixture(scope='module')
def model_file(net, tmp_path_factory):
    return save_model(net, tmp_path_factory.mktemp('model')/'tiny.pth', 'test-infer-tiny', {'hidden': 4, 'size': 64})


def L_of(im): return rgb_to_lab(torch.from_numpy(np.asarray(im).copy()).permute(2, 0, 1))[0]


def digest(folder):
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob('*')) if p.is_file()}


@pytest.mark.parametrize('size', [(517, 333), (333, 517), (7, 31), (1600, 1200)])
def test_size_and_lightness_kept(net, size):
    "Any size comes back at its size, and the output's L is the photo's L (up to uint8 rounding): only the colour changes."
    im = open_rgb(sample_photos()[5]).resize(size, Image.BILINEAR)
    out = colorize_image(net, {'hidden': 4}, im)
    assert out.size == im.size and out.mode == 'RGB'
    dL = (L_of(out) - L_of(im)).abs()
    assert dL.max() < 0.6, dL.max()
    chroma = rgb_to_lab(torch.from_numpy(np.asarray(out).copy()).permute(2, 0, 1))[1:].norm(dim=0)
    assert chroma.mean() > 5                                   # and it is coloured, not gray
    # clipping in RGB instead would have changed L: the test can tell
    clipped = colorize_image(net, {}, im, keep_l=False)
    assert (L_of(clipped) - L_of(im)).abs().max() > 2


def test_model_cost_is_independent_of_photo_size(net):
    "The model sees the same render shape for a 1024x768 and a 4000x3000 photo."
    assert render_shape(768, 1024) == render_shape(3000, 4000) == (256, 352)
    seen = []
    hook = net.register_forward_hook(lambda m, i, o: seen.append(tuple(i[0].shape)))
    try:
        for s in [(1024, 768), (4000, 3000)]: colorize_image(net, {}, Image.new('RGB', s, (120, 90, 60)), keep_l=False)
    finally: hook.remove()
    assert seen == [(1, 1, 256, 352)]*2


def test_upsampled_strips_equal_whole_image():
    "Strip-wise recombination equals upsampling ab over the whole image at once."
    import colorize_nbdev.inference as inf
    from colorize_nbdev.color import lab_norm_to_rgb
    im = open_rgb(sample_photos()[2]).resize((300, 211))
    L, _ = prepare(im)
    ab = torch.randn(1, 2, 16, 24)*0.2
    old = inf.STRIP_PIXELS
    inf.STRIP_PIXELS = 3000                                    # many strips
    try: got = recombine(L, ab, keep_l=False)
    finally: inf.STRIP_PIXELS = old
    ref = (lab_norm_to_rgb(L, ab)[0]*255).round().permute(1, 2, 0).to(torch.uint8).numpy()
    assert np.abs(got.astype(int) - ref.astype(int)).max() <= 1


def test_exif_orientation(net, tmp_path):
    exif = Image.Exif(); exif[0x0112] = 8                     # stored sideways: rotate 90° to view
    src = open_rgb(sample_photos()[0]).resize((90, 60))
    src.save(tmp_path/'rot.jpg', quality=95, exif=exif)
    upright = open_rgb(tmp_path/'rot.jpg')
    assert upright.size == (60, 90)
    for img in (tmp_path/'rot.jpg', Image.open(tmp_path/'rot.jpg')):
        out = colorize_image(net, {}, img)
        assert out.size == (60, 90)
        assert (L_of(out) - L_of(upright)).abs().max() < 0.6     # the upright picture's L, pixel for pixel


def test_wrong_protocol_refused(net):
    with pytest.raises(ValueError, match='lab_l -> lab_ab'): colorize_image(net, {'output': 'rgb'}, Image.new('RGB', (8, 8)))


@pytest.fixture
def tree(tmp_path):
    "Two folders holding a photo of the same name (one in a subfolder), a loose file, an empty file and a non-image."
    d = tmp_path/'in'
    a, b = d/'a', d/'b'
    (a/'sub').mkdir(parents=True); b.mkdir()
    ps = sample_photos()
    shutil.copy(ps[0], a/ps[0].name); shutil.copy(ps[1], a/'sub'/ps[1].name)
    shutil.copy(ps[0], b/ps[0].name)                           # same name as a/<name>
    open_rgb(ps[2]).resize((333, 517)).save(b/(ps[0].stem + '.png'))   # same stem, other extension
    (a/'empty.jpg').write_bytes(b'')
    (a/'notes.jpg').write_text('not a photo')
    loose = tmp_path/'loose.jpg'
    shutil.copy(ps[3], loose)
    return d, a, b, loose


def test_paths_collisions_and_failures(net, tree, tmp_path):
    d, a, b, loose = tree
    before = digest(d)
    with pytest.warns(UserWarning, match='Skipped 3 inputs') as w:
        rep = colorize_paths(net, {}, [a, b, loose, tmp_path/'missing.jpg'], tmp_path/'out', bs=2)
    assert len(w) == 1
    assert all(n in str(w[0].message) for n in ('empty.jpg', 'notes.jpg', 'missing.jpg'))
    assert sorted(Path(f['file']).name for f in rep['failed']) == ['empty.jpg', 'missing.jpg', 'notes.jpg']
    outs = [Path(r['output']) for r in rep['written']]
    assert len(rep['written']) == 5 and len(set(outs)) == 5    # nothing overwrote anything
    stem = sample_photos()[0].stem
    rel = sorted(p.relative_to(tmp_path/'out').as_posix() for p in outs)
    assert rel == sorted([f'{stem}.png', f'{stem}_2.png', f'{stem}_3.png', f'sub/{sample_photos()[1].stem}.png', 'loose.png'])
    for r in rep['written']:
        assert Image.open(r['output']).size == open_rgb(r['input']).size == tuple(r['size'])
    assert sorted(p.name for p in (tmp_path/'out').rglob('*') if p.is_file()) == sorted(p.name for p in outs)  # no temp files
    assert digest(d) == before                                 # inputs only read


def test_paths_refuse_unsafe_out(net, tree, tmp_path):
    d, a, b, loose = tree
    before = digest(d)
    for bad in (a, a/'sub'):
        with pytest.raises(ColorizeError, match='input folder'): colorize_paths(net, {}, [a], bad)
    img = a/'sub'/(sample_photos()[1].stem + '.png')           # an input that is itself a .png in --out
    open_rgb(loose).save(img)
    with pytest.raises(ColorizeError, match='overwrite an input'): colorize_paths(net, {}, [img], a/'sub', overwrite=True)
    (tmp_path/'mine').mkdir(); (tmp_path/'mine'/'loose.png').write_text('my file')
    with pytest.raises(ColorizeError, match='not written by colorize'): colorize_paths(net, {}, [loose], tmp_path/'mine')
    assert (tmp_path/'mine'/'loose.png').read_text() == 'my file'
    rep = colorize_paths(net, {}, [loose], tmp_path/'again')
    assert colorize_paths(net, {}, [loose], tmp_path/'again')['written'] == rep['written']   # its own files: replaced
    img.unlink()
    assert digest(d) == before


def test_batches_equal_single(net, tree, tmp_path):
    "Batched model calls (photos of the same render shape together) give the same pictures as one at a time."
    d, a, b, loose = tree
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        r1 = colorize_paths(net, {}, [a, b], tmp_path/'o1', bs=1)
        r8 = colorize_paths(net, {}, [a, b], tmp_path/'o8', bs=8, max_pixels=10**9)
    for x, y in zip(r1['written'], r8['written']):
        diff = np.abs(np.asarray(Image.open(x['output'])).astype(int) - np.asarray(Image.open(y['output'])).astype(int))
        assert diff.max() <= 1


def test_command(plug, model_file, tree, tmp_path):
    "The command: partial failure -> exit 3 with the rest written; all good -> 0; broken model, unsafe --out -> one line, exit 1."
    d, a, b, loose = tree
    before = digest(d)
    r = run(a, b, loose, '--model', model_file, '--out', tmp_path/'out', '--module', 'cz_test_infer_arch', '--device', 'cpu',
            plugdir=plug[0])
    assert r.returncode == EXIT_SOME_FAILED == 3, r.stderr
    assert 'Traceback' not in r.stderr
    warns = [l for l in r.stderr.splitlines() if l.startswith('warning:')]
    assert len(warns) == 1 and 'Skipped 2 inputs' in warns[0] and 'empty.jpg' in r.stderr and 'notes.jpg' in r.stderr
    assert 'Colorized 5 photo(s)' in r.stdout
    assert len(list((tmp_path/'out').rglob('*.png'))) == 5
    r = run(loose, '--model', model_file, '--out', tmp_path/'out2', '--module', 'cz_test_infer_arch', plugdir=plug[0])
    assert r.returncode == 0, r.stderr
    assert Image.open(tmp_path/'out2'/'loose.png').size == open_rgb(loose).size
    # a truncated model file
    (tmp_path/'cut.pth').write_bytes(Path(model_file).read_bytes()[:300])
    one_line_error(run(loose, '--model', tmp_path/'cut.pth', '--out', tmp_path/'o3'), 'cut.pth', 'truncated or corrupt')
    assert not (tmp_path/'o3').exists()
    assert digest(d) == before                                 # (--out an input folder: refused, test_paths_refuse_unsafe_out)


@pytest.mark.parametrize('which', ['regressor', 'default'])
def test_colorize_command_imports_neither_fastai_nor_matplotlib(tmp_path, which):
    "The inference path stays light: `colorize` on a photo, with a ResNet-18 regressor or the bundled day-one model, loads no fastai, matplotlib or pandas."
    from colorize_nbdev.modelfile import build_model
    import colorize_nbdev.models.regressor   # registers 'regressor'
    args = []
    if which == 'regressor':
        m = save_model(build_model('regressor', {'pretrained': False}), tmp_path/'reg.pth', 'regressor', {'pretrained': False, 'size': 64})
        args = ['--model', m]
    photo = sample_photos()[0]
    # PYTHONPROFILEIMPORTTIME: Python lists every module the command imports on stderr ("import time: ... | name")
    r = run_cli('colorize', photo, *args, '--out', tmp_path/'out', '--render-size', 64, env={'PYTHONPROFILEIMPORTTIME': '1'})
    assert r.returncode == 0, r.stderr[-2000:]
    assert (tmp_path/'out'/f'{photo.stem}.png').is_file()
    mods = {l.rsplit('|', 1)[-1].strip() for l in r.stderr.splitlines() if l.startswith('import time:')}
    assert 'colorize_nbdev.inference' in mods and 'torchvision' in mods, sorted(mods)[:20]   # the listing is real
    assert not {m.split('.')[0] for m in mods} & {'fastai', 'matplotlib', 'pandas'}, sorted(m for m in mods if m.startswith(('fastai', 'matplotlib', 'pandas')))


def test_render_size_defaults_to_the_model_files_training_size_and_is_bounded(plug, model_file, tmp_path):
    "The model file records its training size (64 here): colorize renders at twice that unless told; absurd sizes are one line."
    from colorize_nbdev.inference import default_render_size, MAX_RENDER
    assert default_render_size({'size': 64}) == 128 and default_render_size({}) == 256 and default_render_size(None) == 256
    photo = sample_photos()[1]
    r = run(photo, '--model', model_file, '--out', tmp_path/'a', '--module', 'cz_test_infer_arch', plugdir=plug[0])
    assert r.returncode == 0 and '(render size 128)' in r.stdout, (r.stdout, r.stderr)
    r = run(photo, '--model', model_file, '--out', tmp_path/'b', '--module', 'cz_test_infer_arch', '--render-size', 5000, plugdir=plug[0])
    one_line_error(r, '--render-size', str(MAX_RENDER))
