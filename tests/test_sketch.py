"""The sketch-to-colour model of S2 (`colorize_nbdev.models.sketch`): offline pairs -> loader -> Learner -> a few
training batches (with the 6-channel PatchGAN), checkpoint resume, `colorize_sketch` at odd sizes and modes, the
sketch model file round trip and the files it refuses, and bad inputs."""
import math, warnings

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

import colorize_nbdev.models.sketch as S
from colorize_nbdev.data.core import make_sketch_pairs, from_pm1
from colorize_nbdev.data.samples import sample_photos
from colorize_nbdev.color import SKETCH_IO
from colorize_nbdev.modelfile import ModelFileError, build_model, load_model, save_model
import colorize_nbdev.models.template  # noqa: F401  (registers 'template')

TINY = dict(nf=8, n_down=5, d_nf=8, d_layers=2)


pytestmark = pytest.mark.usefixtures('one_thread')   # tests/conftest.py


@pytest.fixture(scope='module')
def pairs(tmp_path_factory, one_thread):
    "6 side-by-side pairs (colour left, pencil sketch right), 40 px halves, from the sample photos."
    d = tmp_path_factory.mktemp('pairs')
    files = make_sketch_pairs(sample_photos()[:6], d, size=40)
    assert len(files) == 6 and Image.open(files[0]).size == (80, 40)
    return d


def _dls(src, **kw):
    return S.sketch_dls(src, **{**dict(size=32, load_size=36, bs=2, valid_pct=0.34, num_workers=0, device='cpu', seed=0), **kw})


@pytest.fixture(scope='module')
def trained(pairs, tmp_path_factory):
    "A GAN learner trained for one epoch on the tiny pairs, with a checkpoint; and the discriminator inputs it saw."
    torch.manual_seed(0)
    dls = _dls(pairs)
    learn = S.sketch_learner(dls, **TINY)
    seen = []
    learn.gan.disc.net[0].register_forward_hook(lambda m, i, o: seen.append(tuple(i[0].shape)))
    ck = tmp_path_factory.mktemp('ck')/'sketch.ckpt'
    with learn.no_bar(), learn.no_logging(), warnings.catch_warnings():
        warnings.simplefilter('ignore')
        S.fit_sketch(learn, 1, ckpt=ck)
    return learn, seen, ck


def test_pairs_loader_shapes(pairs):
    dls = _dls(pairs)
    assert (len(dls.train_ds), len(dls.valid_ds)) == (4, 2)
    s, c = dls.one_batch()
    assert s.shape == c.shape == (2, 3, 32, 32)
    assert -1 <= s.min() and c.max() <= 1
    assert torch.equal(s[:, 0], s[:, 1])                 # the input is the (gray) sketch half


def test_folder_split_kept(pairs, tmp_path):
    files = sorted(pairs.glob('*.png'))
    for sub, fs in (('train', files[:4]), ('val', files[4:])):
        (tmp_path/sub).mkdir()
        for f in fs: (tmp_path/sub/f.name).write_bytes(f.read_bytes())
    dls = _dls(tmp_path)
    assert (len(dls.train_ds), len(dls.valid_ds)) == (4, 2)
    assert {p.parent.name for p in dls.valid_ds.files} == {'val'}
    for f in (tmp_path/'val').iterdir(): f.unlink()
    with pytest.raises(FileNotFoundError, match='No images'): _dls(tmp_path)


def test_training_a_few_batches(trained):
    learn, seen, ck = trained
    assert isinstance(learn.model, S.SketchColorizer)
    # the discriminator saw (sketch, colour) stacked: 6 channels, both in training (real and fake) steps
    assert seen and all(s[1] == 6 and s[2:] == (32, 32) for s in seen)
    names = learn.recorder.metric_names[1:-1]
    row = dict(zip(names, learn.recorder.values[-1]))
    for k in ('train_loss', 'valid_loss', 'psnr', 'cf_ratio', 'd_loss', 'g_adv', 'd_real'):
        assert math.isfinite(row[k]), (k, row[k])
    assert 0 < row['psnr'] < 100 and 0 < row['d_real'] < 1
    h = learn.opt.hypers[0]
    assert (h['lr'], h['mom'], h['sqr_mom'], h['wd']) == (2e-4, 0.5, 0.999, 0.)   # S2's Adam
    assert learn.gan.d_opt.param_groups[0]['betas'] == (0.5, 0.999)
    assert ck.exists()


def test_resume_from_checkpoint(trained):
    learn, _, ck = trained
    more = S.sketch_learner(learn.dls, **TINY)
    with more.no_bar(), more.no_logging(), warnings.catch_warnings():
        warnings.simplefilter('ignore')
        S.fit_sketch(more, 2, ckpt=ck)
    assert len(more.recorder.values) == 2
    np.testing.assert_array_equal(np.array(more.recorder.values[:1], dtype=float), np.array(learn.recorder.values, dtype=float))
    assert torch.load(ck, weights_only=True)['state']['epoch'] == 2
    # run again after the run has finished (a new session): nothing is trained, the history and weights come back
    again = S.sketch_learner(learn.dls, **TINY)
    with again.no_bar(), again.no_logging(), warnings.catch_warnings():
        warnings.simplefilter('ignore')
        S.fit_sketch(again, 2, ckpt=ck)
    np.testing.assert_array_equal(np.array(again.recorder.values, dtype=float), np.array(more.recorder.values, dtype=float))
    assert again.recorder.metric_names == more.recorder.metric_names
    for a, b in zip(again.model.state_dict().values(), more.model.state_dict().values()): assert torch.equal(a.cpu(), b.cpu())
    assert torch.load(ck, weights_only=True)['state']['epoch'] == 2
    other = S.sketch_learner(learn.dls, gan=False, nf=8, n_down=5)
    with pytest.raises(ModelFileError, match='another model'): S.fit_sketch(other, 3, ckpt=ck)


@pytest.mark.parametrize('hw', [(32, 32), (31, 17), (70, 129), (1, 1)])
def test_generator_any_size(hw):
    g = S.SketchColorizer(nf=4, n_down=4).eval()
    with torch.no_grad(): out = g(torch.randn(1, 3, *hw))
    assert out.shape == (1, 3, *hw) and out.abs().max() <= 1


@pytest.mark.parametrize('wh,mode', [((33, 21), 'L'), ((64, 64), 'RGB'), ((17, 90), 'RGBA'), ((50, 40), 'P'), ((45, 30), 'LA')])
def test_colorize_sketch_odd_sizes_and_modes(wh, mode):
    g = S.SketchColorizer(nf=4, n_down=4)
    out = S.colorize_sketch(g, Image.new(mode, wh), size=None)
    assert out.size == wh and out.mode == 'RGB'
    assert S.colorize_sketch(g, Image.new(mode, wh), size=24).size == wh
    assert g.training                                     # the caller's mode is restored


def test_colorize_sketch_transparent_is_white(tmp_path):
    g = S.SketchColorizer(nf=4, n_down=4).eval()
    clear = Image.new('RGBA', (20, 20), (0, 0, 0, 0))
    assert np.array_equal(np.asarray(S.colorize_sketch(g, clear)), np.asarray(S.colorize_sketch(g, Image.new('L', (20, 20), 255))))
    clear.save(tmp_path/'s.png')
    assert S.colorize_sketch(g, tmp_path/'s.png').size == (20, 20)


def test_colorize_sketch_bad_inputs(tmp_path):
    g = S.SketchColorizer(nf=4, n_down=4)
    with pytest.raises(TypeError, match='PIL image'): S.colorize_sketch(g, np.zeros((8, 8, 3)))
    with pytest.raises(TypeError, match='nn.Module'): S.colorize_sketch(lambda x: x, Image.new('RGB', (8, 8)))
    with pytest.raises(ValueError, match='empty'): S.colorize_sketch(g, Image.new('RGB', (0, 8)))
    with pytest.raises(ValueError, match='size'): S.colorize_sketch(g, Image.new('RGB', (8, 8)), size=0)
    with pytest.raises(ValueError, match='missing.png'): S.colorize_sketch(g, tmp_path/'missing.png')


def test_save_load_round_trip(tmp_path):
    torch.manual_seed(0)
    g = S.SketchColorizer(nf=4, n_down=4, dropout=0.3)
    with torch.no_grad():   # non-default BatchNorm statistics, so that they are checked too
        for m in g.modules():
            if isinstance(m, nn.BatchNorm2d): m.running_mean.uniform_(-1, 1)
    p = S.save_sketch_model(g, tmp_path/'m.pth', info=dict(epochs=3, note='test', sizes=[64, 256]))
    g2 = S.load_sketch_model(p, device='cpu')
    assert g2.config == dict(nf=4, n_down=4, dropout=0.3) and g2.info['sizes'] == [64, 256] and not g2.training
    net, config = load_model(p, device='cpu')   # the package's model file: what colorize and colorize-eval load
    assert (config['input'], config['output']) == SKETCH_IO and isinstance(net, S.SketchColorizer)
    x = torch.randn(2, 3, 40, 24)
    with torch.no_grad(): assert torch.equal(g2(x), g.eval()(x))
    S.save_sketch_model(g2, p)                             # replacing a sketch model file is fine
    with pytest.raises(TypeError, match='info'): S.save_sketch_model(g, tmp_path/'x.pth', info=dict(path=tmp_path))
    with pytest.raises(TypeError, match='SketchColorizer'): S.save_sketch_model(nn.Linear(2, 2), tmp_path/'x.pth')
    with pytest.raises(IsADirectoryError): S.save_sketch_model(g, tmp_path)


def test_refused_files(tmp_path):
    g = S.SketchColorizer(nf=4, n_down=4)
    good = torch.load(S.save_sketch_model(g, tmp_path/'good.pth'), weights_only=True)
    save_model(build_model('template'), tmp_path/'photo.pth', 'template')
    with pytest.raises(ModelFileError, match='photo colorizer'): S.load_sketch_model(tmp_path/'photo.pth')
    cases = {
        'evil.pth': ({**good, 'info': {'x': tmp_path}}, 'refused'),                       # pickled Python object
        'bare.pth': (dict(g.state_dict()), 'bare state_dict'),
        'newer.pth': ({**good, 'version': 99}, 'newer'),
        'shapes.pth': ({**good, 'config': {**good['config'], 'nf': 8}}, 'do not fit'),
        'badcfg.pth': ({**good, 'config': {**good['config'], 'colour': True}}, 'cannot build'),
        'ckpt.pth': ({'format': 'colorize-nbdev-checkpoint', 'version': 1}, 'training checkpoint'),
    }
    for name, (obj, msg) in cases.items():
        torch.save(obj, tmp_path/name)
        with pytest.raises(ModelFileError, match=msg): S.load_sketch_model(tmp_path/name)
    (tmp_path/'empty.pth').write_bytes(b'')
    (tmp_path/'junk.pth').write_bytes(b'hello, not a model')
    (tmp_path/'cut.pth').write_bytes((tmp_path/'good.pth').read_bytes()[:300])
    Image.new('RGB', (4, 4)).save(tmp_path/'img.png')
    for name, msg in (('empty.pth', 'empty'), ('junk.pth', 'not a PyTorch file'), ('cut.pth', 'corrupt'), ('img.png', 'image')):
        with pytest.raises(ModelFileError, match=msg): S.load_sketch_model(tmp_path/name)
    with pytest.raises(FileNotFoundError): S.load_sketch_model(tmp_path/'nope.pth')
    with pytest.raises(ModelFileError, match='folder'): S.load_sketch_model(tmp_path)
    with pytest.raises(FileExistsError, match='not a colorize-nbdev model file'): S.save_sketch_model(g, tmp_path/'junk.pth')


def test_bad_arguments(pairs):
    dls = _dls(pairs)
    with pytest.raises(ValueError, match=r'\(B,3,H,W\)'): S.SketchColorizer(nf=4, n_down=4)(torch.zeros(1, 1, 8, 8))
    with pytest.raises(ValueError, match='nf'): S.SketchColorizer(nf=0)
    with pytest.raises(ValueError, match='n_down'): S.SketchColorizer(n_down=11)
    with pytest.raises(TypeError, match='DataLoaders'): S.sketch_learner('pairs/')
    with pytest.raises(ValueError, match='lr'): S.sketch_learner(dls, lr=0, **TINY)
    with pytest.raises(ValueError, match='lam'): S.sketch_learner(dls, lam=0, **TINY)
    with pytest.raises(ValueError, match='gan=True'): S.sketch_learner(dls, gan=False, real_label=0.9)
    with pytest.raises(ValueError, match="mode must be 'bce'"): S.sketch_learner(dls, gan_mode='wgan', **TINY)
    with pytest.raises(ValueError, match='epochs'): S.fit_sketch(S.sketch_learner(dls, **TINY), 0)
    with pytest.raises(FileNotFoundError, match='no pair files'): S.evaluate_sketch(S.SketchColorizer(nf=4, n_down=4), [])


def test_evaluate_sketch_baselines(pairs):
    files = sorted(pairs.glob('*.png'))[:3]
    blank = S.evaluate_sketch(lambda s: torch.zeros_like(s), files, size=32)
    ident = S.evaluate_sketch(lambda s: s, files, size=32, grid_n=2)
    assert blank['n'] == ident['n'] == 3 and len(ident['grid']) == 2
    assert blank['cf_pred'] == 0 and ident['cf_pred'] == 0   # both gray: no colour at all
    assert 0 < blank['psnr'] < 40 and blank['cf_gt'] > 0


def test_sketch_model_through_the_three_commands(tmp_path):
    "colorize-train --arch sketch on pair files, colorize on a sketch alone, colorize-eval on the pairs (the model contract's io)."
    import json as _json
    from PIL import Image
    from colorize_nbdev.data.core import make_sketch_pairs, split_pair
    from colorize_nbdev.data.samples import sample_photos
    from colorize_nbdev.modelfile import read_model_file
    from clitools import QUIET, run, one_line_error
    pairs = make_sketch_pairs(sample_photos()[:10], tmp_path/'pairs', size=40)
    sketch = tmp_path/'one.png'
    split_pair(Image.open(pairs[0]))[0].resize((50, 45)).save(sketch)
    r = run('colorize-train', '--arch', 'sketch', '--data', tmp_path/'pairs', '--out', tmp_path/'s.pth', '--opts',
            'nf=8,n_down=3,d_nf=8,d_layers=2', '--size', 32, '--bs', 4, '--epochs', 1, env=QUIET)
    assert r.returncode == 0, r.stderr
    obj = read_model_file(tmp_path/'s.pth')
    assert obj['arch'] == 'sketch' and (obj['config']['input'], obj['config']['output']) == ('sketch_rgb', 'rgb')
    r = run('colorize', sketch, '--model', tmp_path/'s.pth', '--out', tmp_path/'out', env=QUIET)
    assert r.returncode == 0, r.stderr
    assert Image.open(tmp_path/'out'/'one.png').size == (50, 45)
    r = run('colorize-eval', tmp_path/'pairs', '--model', tmp_path/'s.pth', '--size', 32, '--json', env=QUIET)
    assert r.returncode == 0, r.stderr
    res = _json.loads(r.stdout)
    assert res['n'] == 10 and 0 < res['psnr'] < 100
    one_line_error(run('colorize-eval', tmp_path/'pairs', '--model', tmp_path/'s.pth', '--out', tmp_path/'o2', env=QUIET),
                   '--out is not available for sketch models')


def test_sketch_model_refused_where_a_gray_photo_is_expected():
    "A sketch model given gray photos (model_colorizer, colorize_image) says what it is for, in one line."
    import pytest, torch
    from colorize_nbdev.metrics import model_colorizer
    from colorize_nbdev.modelfile import build_model
    import colorize_nbdev.models.sketch  # noqa: F401
    net = build_model('sketch', dict(nf=8, n_down=3))
    cfg = dict(input='sketch_rgb', output='rgb')
    with pytest.raises(ValueError, match='colours line drawings, not gray photos'):
        model_colorizer(net, cfg)(torch.zeros(1, 1, 16, 16))
