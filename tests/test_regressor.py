"""The regressor architectures (`colorize_nbdev.models.regressor`): shapes, sizes, pretrained conv1 summing, the
model file round trip and `metrics.evaluate`."""
import shutil, warnings

import pytest
import torch
from torch import nn
from torchvision.models import resnet18

import colorize_nbdev.models.regressor as R
from colorize_nbdev.data.samples import sample_photos
from colorize_nbdev.metrics import evaluate, model_colorizer
from colorize_nbdev.modelfile import ARCHS, build_model, load_model, save_model

ARCH_NAMES = ('regressor', 'regressor_unet')
n_params = lambda m: sum(p.numel() for p in m.parameters())


pytestmark = pytest.mark.usefixtures('one_thread')   # tests/conftest.py


@pytest.fixture(scope='module')
def nets(one_thread):
    torch.manual_seed(0)
    return {a: build_model(a).eval() for a in ARCH_NAMES}


@pytest.fixture
def fake_imagenet(monkeypatch):
    "Replace the download by a random RGB ResNet-18's state dict; count the calls."
    torch.manual_seed(1)
    rgb = resnet18(weights=None)
    calls = []
    def fake():
        calls.append(1)
        return rgb.state_dict()
    monkeypatch.setattr(R, 'resnet18_imagenet_state', fake)
    return rgb, calls


def test_registered():
    assert ARCHS['regressor'] is R.Regressor and ARCHS['regressor_unet'] is R.UnetRegressor


@pytest.mark.parametrize('arch', ARCH_NAMES)
@pytest.mark.parametrize('hw', [(64, 64), (32, 96), (50, 37), (8, 8)])
def test_shapes_any_size(nets, arch, hw):
    with torch.no_grad(): out = nets[arch](torch.randn(2, 1, *hw))
    assert out.shape == (2, 2, *hw) and out.dtype == torch.float32 and torch.isfinite(out).all()


@pytest.mark.parametrize('arch', ARCH_NAMES)
def test_bad_input(nets, arch):
    with pytest.raises(ValueError, match=r'\(B,1,H,W\)'): nets[arch](torch.randn(1, 3, 64, 64))
    with pytest.raises(ValueError, match=r'\(B,1,H,W\)'): nets[arch](torch.randn(1, 64, 64))


def test_pad_to_multiple():
    "Other sizes are padded up to the next multiple; a multiple is left alone."
    x, _ = R.pad_to_multiple(torch.randn(1, 1, 61, 30), 8)
    assert x.shape[-2:] == (64, 32)
    y = torch.randn(1, 1, 64, 32)
    z, hw = R.pad_to_multiple(y, 8)
    assert z is y and hw == (64, 32)
    t, hw = R.pad_to_multiple(torch.randn(1, 1, 5, 3), 32)   # smaller than the padding: replicate instead of reflect
    assert t.shape[-2:] == (32, 32) and hw == (5, 3)


def test_param_counts(nets):
    rgb = resnet18(weights=None)
    reg, unet = nets['regressor'], nets['regressor_unet']
    assert n_params(reg.body) == n_params(nn.Sequential(*list(rgb.children())[:6])) - 2*64*7*7
    assert n_params(unet.unet[0]) == n_params(nn.Sequential(*list(rgb.children())[:-2])) - 2*64*7*7
    assert list(reg.body.children())[-1][-1].conv2.out_channels == 128      # S4: 128 channels at 1/8
    assert 0.5e6 < n_params(reg) < 2e6 and n_params(unet) > 10*n_params(reg)


def test_no_sigmoid_anywhere(nets):
    for a in ARCH_NAMES: assert not any(isinstance(m, (nn.Sigmoid, nn.Tanh)) for m in nets[a].modules())
    assert any(isinstance(m, nn.Tanh) for m in build_model('regressor', {'tanh': True}).modules())


def test_tanh_bounds():
    torch.manual_seed(0)
    for a in ARCH_NAMES:
        m = build_model(a, {'tanh': True}).eval()
        with torch.no_grad(): out = m(torch.randn(1, 1, 32, 32)*50)
        assert out.abs().max() <= 1 and isinstance(list(m.modules())[-1], nn.Tanh)


def test_sum_conv1():
    w = torch.randn(64, 3, 7, 7)
    sd = R.sum_conv1({'conv1.weight': w, 'fc.bias': torch.ones(3)})
    torch.testing.assert_close(sd['conv1.weight'], w.sum(1, keepdim=True))
    assert sd['fc.bias'].sum() == 3
    with pytest.raises(ValueError, match=r'\(64,3,7,7\)'): R.sum_conv1({'conv1.weight': torch.zeros(64, 1, 7, 7)})
    with pytest.raises(ValueError, match='conv1.weight'): R.sum_conv1({})


@pytest.mark.parametrize('arch', ARCH_NAMES)
def test_pretrained_sums_conv1(fake_imagenet, arch):
    rgb, calls = fake_imagenet
    m = build_model(arch, {'pretrained': True}).eval()
    conv1 = m.body[0] if arch == 'regressor' else m.unet[0][0]
    layer1 = m.body[4] if arch == 'regressor' else m.unet[0][4]
    torch.testing.assert_close(conv1.weight, rgb.conv1.weight.sum(1, keepdim=True))
    torch.testing.assert_close(layer1[0].conv1.weight, rgb.layer1[0].conv1.weight)
    assert calls == [1]
    # a gray RGB picture and its one channel give the same body features
    body1 = nn.Sequential(*list(R.resnet18_1ch(True, rgb.state_dict()).children())[:6]).eval()
    body3 = nn.Sequential(*list(rgb.children())[:6]).eval()
    x = torch.rand(2, 1, 32, 32)
    with torch.no_grad(): torch.testing.assert_close(body1(x), body3(x.expand(-1, 3, -1, -1)), atol=1e-4, rtol=1e-4)


def test_not_pretrained_never_downloads(monkeypatch):
    monkeypatch.setattr(R, 'resnet18_imagenet_state', lambda: pytest.fail('downloaded'))
    for a in ARCH_NAMES: build_model(a, {'pretrained': False})
    with torch.device('meta'): build_model('regressor', {'pretrained': True})   # shapes only: nothing to load


def test_pretrained_offline_error(monkeypatch):
    def no_net(self, *a, **k): raise OSError('network unreachable')
    monkeypatch.setattr(type(R.ResNet18_Weights.IMAGENET1K_V1), 'get_state_dict', no_net)
    with pytest.raises(R.PretrainedWeightsError) as e: build_model('regressor', {'pretrained': True})
    msg = str(e.value)
    assert 'IMAGENET1K_V1' in msg and 'network unreachable' in msg and 'pretrained=False' in msg and 'resnet18-' in msg


@pytest.mark.parametrize('arch', ARCH_NAMES)
def test_save_load_round_trip(tmp_path, nets, arch):
    p = save_model(nets[arch], tmp_path/'m.pth', arch, {'pretrained': False, 'size': 64})
    m2, cfg = load_model(p, device='cpu')
    assert type(m2) is type(nets[arch]) and cfg['size'] == 64 and cfg['input'] == 'lab_l'
    x = torch.randn(2, 1, 64, 64)
    with torch.no_grad(): torch.testing.assert_close(m2(x), nets[arch](x), rtol=0, atol=1e-6)


def test_evaluate_with_model_colorizer(tmp_path, nets):
    for f in sample_photos()[:3]: shutil.copy(f, tmp_path/f.name)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        res = evaluate(tmp_path, model_colorizer(nets['regressor']), size=32, device='cpu', baseline=True)
    assert res['n'] == 3 and res['baseline']['n'] == 3
    for k in ('psnr', 'ssim', 'auc', 'cf_pred'): assert res[k] == res[k]   # measured, not NaN
