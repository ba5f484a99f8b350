"""The hypercolumn architecture of lesson 06 (`colorize_nbdev.models.hypercolumn`): shapes at any size, the taps, the
softmax head's constraint, the io per colour space, pretrained weights, the model file round trip, and
`colorize-train --arch hypercolumn` -> `colorize-eval` / `colorize` without flags. Tiny sizes: well under a minute."""
import json, shutil

import pytest
import torch
from torch import nn
from torchvision.models import vgg
import torchvision.models._api as tv_api

import colorize_nbdev.models.hypercolumn as H
from colorize_nbdev.color import rgb_to_lab_norm
from colorize_nbdev.data.samples import sample_batch, sample_photos
from colorize_nbdev.metrics import model_colorizer
from colorize_nbdev.modelfile import ARCHS, build_model, load_model, save_model
from colorize_nbdev.models.regressor import PretrainedWeightsError
from colorize_nbdev.train import train_defaults
from colorize_nbdev.cli import colorize_train
from fastcore.script import CliError

from clitools import QUIET, one_line_error, run as run_cli   # tests/clitools.py


def run(*args, cwd=None): return run_cli(*args, cwd=cwd, env=QUIET)

HEADS = ('linear', 'tanh', 'softmax')


pytestmark = pytest.mark.usefixtures('one_thread')   # tests/conftest.py


def test_registered_with_its_defaults():
    assert ARCHS['hypercolumn'] is H.Hypercolumn
    d = train_defaults('hypercolumn')
    assert d['loss'] == 'huber' and d['pretrained'] is False and (d['size'], d['bs'], d['lr']) == (128, 16, 3e-3)


@pytest.mark.parametrize('head', HEADS)
@pytest.mark.parametrize('hw', [(64, 64), (50, 37), (17, 100), (8, 8)])
def test_shapes_any_size(head, hw):
    torch.manual_seed(0)
    m = H.Hypercolumn(head=head).eval()
    with torch.no_grad(): out = m(torch.randn(2, 1, *hw))
    assert out.shape == (2, 2, *hw) and out.dtype == torch.float32 and torch.isfinite(out).all()


def test_width_and_vgg16_layout():
    "width=1 is VGG-16-BN's convolutional part (torchvision's layout, one input channel, no pool5)."
    f = H.Hypercolumn(width=1).features
    tv = vgg.vgg16_bn(weights=None).features
    assert len(f) == len(tv) - 1 and [type(a) for a in f] == [type(b) for b in tv[:-1]]
    assert [a.out_channels for a in f if isinstance(a, nn.Conv2d)] == [b.out_channels for b in tv if isinstance(b, nn.Conv2d)]
    assert f[0].in_channels == 1
    assert H.block_channels(0.5) == [32, 64, 128, 256, 256]
    with torch.no_grad(): assert H.Hypercolumn(width=0.5).eval()(torch.randn(1, 1, 33, 47)).shape == (1, 2, 33, 47)


def test_bad_input():
    m = H.Hypercolumn()
    with pytest.raises(ValueError, match=r'model-scaled Y of shape \(B,1,H,W\)'): m(torch.randn(1, 3, 32, 32))
    with pytest.raises(ValueError, match=r'model-scaled L of shape \(B,1,H,W\)'): H.Hypercolumn(space='lab')(torch.randn(32, 32))


def test_taps_are_batchnormed_block_outputs():
    torch.manual_seed(0)
    m = H.Hypercolumn().eval()
    ends = [i - 1 for i, l in enumerate(m.features) if isinstance(l, nn.MaxPool2d)] + [len(m.features) - 1]
    assert all(isinstance(m.features[i], nn.ReLU) for i in ends) and len(ends) == 5
    seen = []
    hooks = [m.features[i].register_forward_hook(lambda mod, i, o: seen.append(o.clone())) for i in ends]
    with torch.no_grad(): taps = m.hypercolumns(torch.randn(2, 1, 48, 80))
    for h in hooks: h.remove()
    assert [t.shape[1:] for t in taps] == [(c, 48//2**k, 80//2**k) for k, c in enumerate(H.block_channels(0.25))]
    for tap, out, bn in zip(taps, seen, m.taps):
        assert isinstance(bn, nn.BatchNorm2d)
        torch.testing.assert_close(tap, bn(out))


def test_softmax_head_sum_constraint():
    "S5's bug: in S5's [0, 1] units the two outputs sum to 1; in model units v = -u = -tanh((z_u - z_v)/2)."
    torch.manual_seed(0)
    m = H.Hypercolumn(head='softmax').eval()
    with torch.no_grad(): out = m(torch.randn(3, 1, 40, 24))
    torch.testing.assert_close(((out + 1)/2).sum(1), torch.ones(3, 40, 24))
    torch.testing.assert_close(out[:, 0], -out[:, 1])
    lin = H.Hypercolumn(head='linear').eval()
    lin.load_state_dict(m.state_dict())   # same weights: the softmax output is a function of the logits' difference
    with torch.no_grad(): z = lin(torch.ones(1, 1, 16, 16))
    with torch.no_grad(): s = m(torch.ones(1, 1, 16, 16))
    torch.testing.assert_close(s[:, 0], torch.tanh((z[:, 0] - z[:, 1])/2))
    with torch.no_grad(): t = H.Hypercolumn(head='tanh').eval()(torch.randn(2, 1, 16, 16))
    assert t.abs().max() <= 1 and not torch.allclose(t[:, 0], -t[:, 1])


def test_io_per_space():
    assert H.Hypercolumn.io == ('yuv_y', 'yuv_uv')
    assert H.Hypercolumn().io == ('yuv_y', 'yuv_uv') and H.Hypercolumn(space='lab').io == ('lab_l', 'lab_ab')


def test_bn_update_false_freezes_running_statistics():
    x = torch.randn(4, 1, 32, 32)*3 + 1
    torch.manual_seed(0)
    frozen, live = H.Hypercolumn(bn_update=False).train(), H.Hypercolumn().train()
    with torch.no_grad(): frozen(x); live(x)
    bns = lambda m: [b for b in m.modules() if isinstance(b, nn.BatchNorm2d)]
    assert all(b.momentum == 0 for b in bns(frozen)) and all(b.momentum == 0.1 for b in bns(live))
    for b in bns(frozen): assert (b.running_mean == 0).all() and (b.running_var == 1).all()
    assert any((b.running_mean != 0).any() for b in bns(live))


@pytest.mark.parametrize('kw, words', [
    (dict(head='bogus'), 'head must be one of linear, tanh, softmax'),
    (dict(space='rgb'), 'space must be one of yuv, lab'),
    (dict(width=0), 'width must be a number in (0, 4]'),
    (dict(width='wide'), 'width must be a number in (0, 4]'),
    (dict(bn_update='no'), 'must be True or False'),
    (dict(pretrained=True), 'pretrained=True needs width=1'),
])
def test_bad_options_are_clear(kw, words):
    with pytest.raises(ValueError) as e: H.Hypercolumn(**kw)
    assert words in str(e.value)


def test_pretrained_conv1_and_weights(monkeypatch):
    "ImageNet weights (a random RGB VGG-16-BN stands in): conv1 summed over RGB with the normalisation folded in."
    torch.manual_seed(1)
    rgb = vgg.make_layers(vgg.cfgs['D'], batch_norm=True)
    sd = {f'features.{k}': v for k, v in rgb.state_dict().items()}
    calls = []
    monkeypatch.setattr(H, 'vgg16_bn_imagenet_state', lambda: calls.append(1) or sd)
    m = build_model('hypercolumn', {'pretrained': True, 'width': 1}).eval()
    assert calls == [1]
    torch.testing.assert_close(m.features[40].weight, sd['features.40.weight'])
    torch.testing.assert_close(m.features[1].running_mean, sd['features.1.running_mean'])
    Y = torch.rand(2, 1, 20, 20)
    mean, std = torch.tensor(H.IMAGENET_MEAN).view(1, 3, 1, 1), torch.tensor(H.IMAGENET_STD).view(1, 3, 1, 1)
    with torch.no_grad():
        ref = rgb[0]((Y.expand(-1, 3, -1, -1) - mean)/std)
        ours = m.features[0](2*Y - 1)
    torch.testing.assert_close(ours[..., 1:-1, 1:-1], ref[..., 1:-1, 1:-1], rtol=1e-4, atol=1e-4)
    with torch.device('meta'): build_model('hypercolumn', {'pretrained': True, 'width': 1})   # shapes only: no download
    assert calls == [1]


def test_pretrained_download_failure_is_clear(monkeypatch):
    def offline(*a, **k): raise OSError('no network')
    monkeypatch.setattr(tv_api, 'load_state_dict_from_url', offline)
    with pytest.raises(PretrainedWeightsError) as e: H.Hypercolumn(pretrained=True, width=1)
    msg = str(e.value)
    assert 'VGG16_BN_Weights.IMAGENET1K_V1' in msg and 'no network' in msg and '--no-pretrained' in msg
    with pytest.raises(ValueError, match='VGG state dict'): H.gray_conv1({'features.0.weight': torch.zeros(64, 1, 3, 3)})


@pytest.mark.parametrize('kw', [dict(), dict(space='lab', head='tanh'), dict(head='softmax', bn_update=False, width=0.125)])
def test_save_load_round_trip(tmp_path, kw):
    torch.manual_seed(0)
    m = H.Hypercolumn(**kw)
    with torch.no_grad(): m.train()(torch.randn(4, 1, 32, 32))   # running statistics that differ from their init
    m.eval()
    cfg = {**kw, 'size': 32, 'input': m.io[0], 'output': m.io[1]}
    p = save_model(m, tmp_path/'hc.pth', 'hypercolumn', cfg)
    m2, cfg2 = load_model(p, device='cpu')
    assert type(m2) is H.Hypercolumn and m2.io == m.io and cfg2 == {'input': m.io[0], 'output': m.io[1], **cfg}
    x = torch.randn(2, 1, 24, 40)
    with torch.no_grad(): torch.testing.assert_close(m2(x), m(x))
    assert all(b.momentum == (0. if kw.get('bn_update') is False else 0.1) for b in m2.modules() if isinstance(b, nn.BatchNorm2d))
    # and it colorizes through the protocol its file declares
    L, _ = rgb_to_lab_norm(sample_batch(2, 32))
    rgb = model_colorizer(m2, cfg2)(L)
    assert rgb.shape == (2, 3, 32, 32) and torch.isfinite(rgb).all()


def test_cli_train_eval_colorize(tmp_path):
    "`colorize-train --arch hypercolumn` for a moment, then `colorize-eval` and `colorize` load the YUV model without flags."
    photos = tmp_path/'photos'; photos.mkdir()
    for p in sample_photos()[:6]: shutil.copy(p, photos/p.name)
    out = tmp_path/'hc.pth'
    r = run('colorize-train', '--arch', 'hypercolumn', '--data', str(photos), '--out', str(out), '--epochs', '1',
            '--size', '32', '--bs', '4', '--workers', '0', '--device', 'cpu', '--no-pretrained')
    assert r.returncode == 0, r.stderr
    assert f'Saved {out} (hypercolumn, size 32)' in r.stdout
    m, cfg = load_model(out, device='cpu')
    assert (cfg['input'], cfg['output'], cfg['head'], cfg['space'], cfg['width'], cfg['pretrained']) == \
           ('yuv_y', 'yuv_uv', 'linear', 'yuv', 0.25, False)
    r = run('colorize-eval', '--model', str(out), '--data', str(photos), '--size', '32', '--json')
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)
    assert res['n'] == 6 and 5 < res['psnr'] < 60 and res['cf_ratio'] is not None and 'baseline' in res
    r = run('colorize', str(photos/sample_photos()[0].name), '--model', str(out), '--out', str(tmp_path/'colored'), '--render-size', '32')
    assert r.returncode == 0, r.stderr
    assert (tmp_path/'colored'/(sample_photos()[0].stem + '.png')).exists()
    # bad options: one line, exit 1, no model file
    one_line_error(run('colorize-train', '--arch', 'hypercolumn', '--data', str(photos), '--out', str(tmp_path/'bad.pth'),
                       '--epochs', '1', '--size', '32', '--workers', '0', '--device', 'cpu', '--opts', 'head=bogus'),
                   "head must be one of linear, tanh, softmax, got 'bogus'")
    with pytest.raises(CliError, match="depth: not an option of architecture 'hypercolumn'"):   # in this process: seconds cheaper
        colorize_train(arch='hypercolumn', data=str(photos), out=str(tmp_path/'bad.pth'), epochs=1, opts='depth=3')
    with pytest.raises(CliError, match='pretrained=True needs width=1'):
        colorize_train(arch='hypercolumn', data=str(photos), out=str(tmp_path/'bad.pth'), epochs=1, size=32, workers=0,
                       device='cpu', pretrained=True)
    assert not (tmp_path/'bad.pth').exists()
