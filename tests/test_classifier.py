"""Colour as classification (`colorize_nbdev.models.classifier`, lesson 07): the in-gamut bins, soft encoding, the
annealed mean, the rebalancing weights, the model's two modes and its loss, the model file round trip, resume, and
`colorize-train --arch classifier` followed by `colorize-eval` and `colorize` on its model file."""
import json, math

import pytest
import torch
import torch.nn.functional as F

import colorize_nbdev.models.classifier as C
from colorize_nbdev.color import AB_SCALE, rgb_to_lab, rgb_to_lab_norm
from colorize_nbdev.data.samples import sample_batch, sample_photos
from colorize_nbdev.modelfile import ARCHS, build_model, load_model, save_model

from clitools import QUIET, run as run_cli   # tests/clitools.py


def run(*args, cwd=None): return run_cli(*args, cwd=cwd, env=QUIET)

CPU = dict(num_workers=0, device='cpu', progress=False, verbose=False)
SMALL = dict(size=32, bs=4, pretrained=False, **CPU)


pytestmark = pytest.mark.usefixtures('one_thread')   # tests/conftest.py


@pytest.fixture(scope='module')
def bins(): return C.ab_bins()


def random_srgb_ab(n=20000, seed=0):
    "ab (n,2) of random sRGB colours, plus the 8 corners of the RGB cube."
    g = torch.Generator().manual_seed(seed)
    rgb = torch.cat([torch.randint(0, 256, (3, n), generator=g, dtype=torch.uint8),
                     torch.tensor([[r, g_, b] for r in (0, 255) for g_ in (0, 255) for b in (0, 255)], dtype=torch.uint8).T], 1)
    return rgb_to_lab(rgb[:, :, None])[1:, :, 0].T


# --- bins, soft encoding, decoding, weights

def test_bins_count_and_gamut(bins):
    assert bins.shape == (262, 2) and bins.dtype == torch.float32
    assert (bins.remainder(10) == 0).all() and len(torch.unique(bins, dim=0)) == 262
    assert torch.equal(bins, bins[torch.argsort(bins[:, 0]*1000 + bins[:, 1])])          # sorted by a, then b
    assert bins[:, 0].min() == -90 and bins[:, 0].max() == 100 and bins[:, 1].min() == -110 and bins[:, 1].max() == 90
    ab = random_srgb_ab()
    cells = {tuple(c) for c in (torch.round(ab/10)*10).tolist()}
    assert cells <= {tuple(b) for b in bins.tolist()}                                     # every sRGB colour has its bin
    assert (ab - bins[C.nearest_bin(ab, bins)]).norm(dim=1).max() <= 5*math.sqrt(2) + 1e-4
    # a much denser sampling of the cube's surface finds no other bin
    dense = rgb_to_lab(C._cube_surface(385, 100001)[None, :, :, None])[0, 1:, :, 0]
    assert torch.equal(torch.unique(torch.round(dense.T/10), dim=0).float()*10, bins)
    assert C.ab_bins() is not C.ab_bins() and len(C.ab_bins(20)) < 262                   # a copy each time; other grids
    with pytest.raises(ValueError, match='grid'): C.ab_bins(0)


def test_soft_encoding(bins):
    ab = random_srgb_ab(492, seed=1).reshape(5, 10, 10, 2)   # 492 + the 8 corners
    z = C.soft_encode(ab, bins)
    assert z.shape == (5, 10, 10, 262)
    torch.testing.assert_close(z.sum(-1), torch.ones(5, 10, 10))
    assert ((z > 0).sum(-1) == 5).all() and (z >= 0).all()
    assert torch.equal(z.argmax(-1), C.nearest_bin(ab, bins))                             # the peak is the nearest bin
    one = C.soft_encode(torch.tensor([[0., 0.]]), bins)[0]                                # on a bin centre: e^0 vs four e^-2
    assert one.max() == pytest.approx(1/(1 + 4*math.exp(-2)), abs=1e-5)
    assert bins[one.argmax()].tolist() == [0., 0.]
    assert C.soft_encode(torch.tensor([[33., -12.]]), bins, k=1)[0].max() == 1            # k=1: one-hot
    with pytest.raises(ValueError, match=r'\(\.\.\., 2\)'): C.soft_encode(torch.zeros(4, 3), bins)
    with pytest.raises(ValueError, match='k must be'): C.soft_encode(torch.zeros(4, 2), bins, k=0)


def test_annealed_mean(bins):
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 262, 3, 4, generator=g)*3
    top = logits.argmax(1, keepdim=True)
    logits.scatter_(1, top, logits.gather(1, top) + 1)                                         # a clear winner everywhere
    mode = bins[logits.argmax(1)].permute(0, 3, 1, 2)
    torch.testing.assert_close(C.annealed_mean(logits, bins, 0.), mode)                        # T = 0: the mode
    err = [(C.annealed_mean(logits, bins, T) - mode).abs().max().item() for T in (1., 0.3, 0.1, 0.03)]
    assert err == sorted(err, reverse=True) and err[-1] < 1e-3                                 # T -> 0 approaches it
    mean = torch.einsum('bqhw,qc->bchw', logits.softmax(1), bins)
    torch.testing.assert_close(C.annealed_mean(logits, bins, 1.), mean)                        # T = 1: the mean
    onehot = torch.full((1, 262, 1, 1), -30.); onehot[0, 123] = 30.
    torch.testing.assert_close(C.annealed_mean(onehot, bins, 0.38)[0, :, 0, 0], bins[123])    # one-hot: the bin centre
    # lower T, more colour: the chroma of the decoded colour grows as T falls (for this two-peak distribution)
    two = torch.full((1, 262, 1, 1), -1e4); i, j = C.nearest_bin(torch.tensor([[60., 40.], [-40., 30.]]), bins)
    two[0, i], two[0, j] = math.log(0.6), math.log(0.4)
    chroma = [C.annealed_mean(two, bins, T).norm(dim=1).item() for T in (1., 0.38, 0.1)]
    assert chroma[0] < chroma[1] < chroma[2]
    with pytest.raises(ValueError, match='temperature'): C.annealed_mean(logits, bins, -1.)


def test_rebalancing_weights(bins):
    counts = torch.zeros(262, dtype=torch.float64)
    counts[C.nearest_bin(torch.tensor([[0., 0.], [10., 10.], [-30., 50.]]), bins)] = torch.tensor([1000., 300., 5.], dtype=torch.float64)
    p = C.smooth_prior(counts, bins)
    assert p.sum().item() == pytest.approx(1) and (p > 0).all() and p.argmax() == counts.argmax()
    w = C.rebalance_weights(p, 0.5)
    assert (p*w).sum().item() == pytest.approx(1)                                         # E_p~[w] = 1
    raw = 1/(0.5*p + 0.5/262)
    torch.testing.assert_close(w, raw/(p*raw).sum())                                      # w ∝ ((1-λ)p~ + λ/Q)^-1
    assert w.argmin() == p.argmax() and (w[torch.argsort(-p)].diff() >= 0).all()           # rarer, heavier
    torch.testing.assert_close(C.rebalance_weights(p, 1.), torch.ones(262, dtype=torch.float64))   # λ = 1: no rebalancing
    with pytest.raises(ValueError, match='lam'): C.rebalance_weights(p, 0.)
    with pytest.raises(ValueError, match='no pixel'): C.smooth_prior(torch.zeros(262), bins)
    # counted from photos: every pixel lands in a bin
    n = C.ab_histogram(sample_photos()[:3], bins, size=32)
    assert n.shape == (262,) and n.sum() > 3*32*16 and n.sum() <= 3*32*32


# --- the model

@pytest.fixture(scope='module')
def net(one_thread):
    torch.manual_seed(0)
    m = build_model('classifier').eval()
    m.set_prior(C.ab_histogram(sample_photos()[:4], m.bins, size=32))
    return m


def test_modes_and_shapes(net):
    assert ARCHS['classifier'] is C.Classifier
    x = torch.randn(2, 1, 64, 64)
    with torch.no_grad():
        assert net.train()(x).shape == (2, 262, 16, 16)                                    # training mode: logits at 1/4
        net.eval()
        ab = net(x)
        assert ab.shape == (2, 2, 64, 64) and torch.isfinite(ab).all() and ab.abs().max() <= 1
        assert net(torch.randn(1, 1, 50, 37)).shape == (1, 2, 50, 37)                     # any size
        assert net.logits(torch.randn(1, 1, 50, 37)).shape == (1, 262, 13, 10)
        up = F.interpolate(net.decode(net.logits(x)), size=(64, 64), mode='bilinear', align_corners=False)
        torch.testing.assert_close(ab, up)                                                # eval: the decoded logits, upsampled
    with pytest.raises(ValueError, match=r'\(B,1,H,W\)'): net(torch.randn(1, 3, 64, 64))
    with pytest.raises(ValueError, match=r'\(B,1,H,W\)'): net.logits(torch.randn(1, 64, 64))


def test_debias_at_decoding(net, bins):
    "decode divides the distribution by class_weights**debias before the annealed mean; 0 is the paper's decoding."
    z = torch.randn(1, 262, 2, 2, generator=torch.Generator().manual_seed(2))
    logw = net.class_weights.log()[:, None, None]
    assert net.debias == 0.5 and net.T == 1.                                             # the defaults (lesson 07, section 9)
    torch.testing.assert_close(net.decode(z, debias=0.), C.annealed_mean(z, bins, 1.)/AB_SCALE)
    torch.testing.assert_close(net.decode(z, 0.38, 0.), C.annealed_mean(z, bins, 0.38)/AB_SCALE)   # the paper's decoding
    torch.testing.assert_close(net.decode(z, 0.2, 1.), C.annealed_mean(z - logw, bins, 0.2)/AB_SCALE)
    torch.testing.assert_close(net.decode(z), C.annealed_mean(z - 0.5*logw, bins, 1.)/AB_SCALE)
    plain = build_model('classifier')                                                    # weights all 1: debias changes nothing
    torch.testing.assert_close(plain.decode(z), plain.decode(z, debias=0.))


def test_loss_in_both_modes(net):
    L, ab = rgb_to_lab_norm(sample_batch(2, 32))
    loss = C.RebalancedCE(net)
    with torch.no_grad():
        ref = C.rebalanced_ce(net.logits(L), ab, net.bins, net.class_weights)
        net.keep_logits = True
        try:
            v = loss(net(L), ab)                                                          # eval: the kept logits
            assert net.last_logits is None and v.item() == pytest.approx(ref.item(), rel=1e-5)
        finally: net.keep_logits = False
        with pytest.raises(RuntimeError, match='kept no logits'): loss(net(L), ab)        # never a silent wrong value
    assert 0 < ref.item() < 2*math.log(262)
    with pytest.raises(ValueError, match=r'\(B,262,h,w\)'): C.rebalanced_ce(torch.zeros(1, 5, 4, 4), ab[:1], net.bins)


def test_save_load_round_trip(net, tmp_path):
    p = save_model(net, tmp_path/'c.pth', 'classifier', {'pretrained': False, 'T': 0.2, 'size': 32})
    m2, cfg = load_model(p, device='cpu')
    assert type(m2) is C.Classifier and cfg['T'] == 0.2 and m2.T == 0.2 and cfg['size'] == 32
    for k in ('bins', 'prior', 'class_weights'): torch.testing.assert_close(getattr(m2, k), getattr(net, k))
    assert net.class_weights.std() > 0.1                                                  # real weights, not the initial ones
    x = torch.randn(1, 1, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(m2.logits(x), net.logits(x))
        net.T = 0.2
        try: torch.testing.assert_close(m2(x), net(x))
        finally: net.T = 1.


# --- training, resume and the command line

class Disconnect(Exception): pass


def test_resume_keeps_the_class_weights(photos, tmp_path, monkeypatch):
    from fastai.callback.core import Callback
    from colorize_nbdev.train import fit_colorizer

    class StopAfterEpoch(Callback):
        order = 90
        def after_epoch(self): raise Disconnect('session lost')

    with pytest.raises(Disconnect): fit_colorizer('classifier', photos, tmp_path/'r.pth', epochs=2, cbs=[StopAfterEpoch()], **SMALL)
    w0 = torch.load(tmp_path/'r.ckpt'/'checkpoint.pth', weights_only=True)['model']['class_weights']
    assert w0.std() > 0.1
    def no_histogram(*a, **k): raise AssertionError('the prior was measured again on resume')
    monkeypatch.setattr(C, 'ab_histogram', no_histogram)
    learn = fit_colorizer('classifier', photos, tmp_path/'r.pth', resume=True, **CPU)
    assert learn.report['resumed']['epoch'] == 1 and learn.report['epochs_done'] == 2
    assert learn.report['valid_loss'] is not None and math.isfinite(learn.report['valid_loss'])
    torch.testing.assert_close(load_model(tmp_path/'r.pth', 'cpu')[0].class_weights, w0)


def test_logits_are_kept_only_while_validating(photos, tmp_path):
    "After training, the model colours without keeping logits (no extra work per call), and the Learner still validates with the rebalanced loss."
    from colorize_nbdev.train import fit_colorizer
    learn = fit_colorizer('classifier', photos, tmp_path/'k.pth', epochs=1, **SMALL)
    m = learn.model
    assert m.keep_logits is False and m.last_logits is None
    m.eval()
    with torch.no_grad(): m(torch.zeros(1, 1, 32, 32, device=next(m.parameters()).device))
    assert m.last_logits is None
    loss = learn.validate()[0]
    assert math.isfinite(loss) and abs(loss - learn.report['valid_loss']) < 1e-3*max(1., abs(loss))
    assert m.keep_logits is False and m.last_logits is None


def test_wrong_loss_is_refused(photos, tmp_path):
    from fastcore.script import CliError
    from colorize_nbdev.cli import colorize_train
    with pytest.raises(CliError, match="its own loss.*'ce'"):
        colorize_train(arch='classifier', data=str(photos), out=str(tmp_path/'m.pth'), loss='l1', epochs=1, size=32,
                       no_pretrained=True, workers=0, device='cpu')
    assert not (tmp_path/'m.pth').exists()


def test_command_line(photos, tmp_path):
    "colorize-train --arch classifier, then colorize-eval and colorize load its model file without extra flags."
    out = tmp_path/'cls.pth'
    r = run('colorize-train', '--arch', 'classifier', '--data', str(photos), '--out', str(out), '--epochs', '1', '--size', '32',
            '--bs', '4', '--workers', '0', '--device', 'cpu', '--no-pretrained', '--opts', 'T=0.3')
    assert r.returncode == 0, r.stderr
    assert f"Saved {out} (classifier, size 32)" in r.stdout and (tmp_path/'cls.ckpt'/'checkpoint.pth').exists()
    cfg = load_model(out, 'cpu')[1]
    assert cfg['T'] == 0.3 and cfg['pretrained'] is False and cfg['lam'] == 0.5
    r = run('colorize-eval', '--model', str(out), '--data', str(photos), '--size', '32', '--json', '--device', 'cpu')
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)
    assert res['n'] == 12 and res['cf_ratio'] > 0 and 'baseline' in res and 5 < res['psnr'] < 60
    r = run('colorize', str(sample_photos()[20]), '--model', str(out), '--out', str(tmp_path/'col'), '--render-size', '32', '--device', 'cpu')
    assert r.returncode == 0, r.stderr
    assert (tmp_path/'col'/f"{sample_photos()[20].stem}.png").exists()
