"Cross-checks of `colorize_nbdev.color` against scikit-image, on real photos and on every sRGB colour."
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from skimage import color as skcolor

import colorize_nbdev.color as C
from colorize_nbdev.data.samples import load_sample, sample_batch, sample_photos

ROOT = Path(__file__).resolve().parents[1]


def _t(a): return torch.from_numpy(np.array(a)).permute(2, 0, 1).contiguous()


@pytest.fixture(scope='module')
def cube():
    "All 2**24 sRGB colours as one uint8 image (1,3,4096,4096)."
    i = torch.arange(2**24, dtype=torch.int32)
    return torch.stack([i >> 16, (i >> 8) & 255, i & 255]).to(torch.uint8).reshape(1, 3, 4096, 4096)


@pytest.mark.parametrize('p', sample_photos(), ids=lambda p: p.stem[-24:])
def test_lab_matches_skimage_on_photos(p):
    im = np.asarray(load_sample(p))              # full resolution
    ref = skcolor.rgb2lab(im)
    for x in (_t(im), _t(im).float()/255, _t(im).double()/255):
        got = C.rgb_to_lab(x).permute(1, 2, 0).double().numpy()
        assert np.abs(got - ref).max() <= 0.01


def test_yuv_matches_skimage_on_photos():
    for p in sample_photos()[::4]:
        im = np.asarray(load_sample(p))
        got = C.rgb_to_yuv(_t(im)).permute(1, 2, 0).double().numpy()
        assert np.abs(got - skcolor.rgb2yuv(im)).max() <= 1e-4


def test_lab2rgb_matches_skimage():
    lab = C.rgb_to_lab(sample_batch(4, 96)).double()
    for l in lab:
        ref = skcolor.lab2rgb(l.permute(1, 2, 0).numpy())
        assert np.abs(C.lab_to_rgb(l).permute(1, 2, 0).numpy() - ref).max() <= 1e-4


def test_round_trips_every_srgb_colour(cube):
    "Lab and YUV round trips of all 16.7M colours stay within 1/255."
    for fwd, back in ((C.rgb_to_lab, C.lab_to_rgb), (C.rgb_to_yuv, C.yuv_to_rgb)):
        err = (back(fwd(cube))*255 - cube.float()).abs().max().item()
        assert err <= 1.0, (fwd.__name__, err)
    assert C.lab_in_gamut(C.rgb_to_lab(cube)).all()


def test_srgb_gamut_fits_model_scaling(cube):
    "Every sRGB colour maps into [-1,1] under the model scaling."
    L, ab = C.rgb_to_lab_norm(cube)
    assert L.min() >= -1 - 1e-6 and L.max() <= 1 + 1e-6 and ab.abs().max() < 1


def test_known_values():
    px = lambda *v: torch.tensor(v, dtype=torch.uint8).reshape(3, 1, 1)
    torch.testing.assert_close(C.rgb_to_lab(px(255, 0, 0)).flatten(), torch.tensor([53.2408, 80.0925, 67.2032]), atol=1e-3, rtol=0)
    torch.testing.assert_close(C.rgb_to_lab(px(0, 0, 0)).flatten(), torch.zeros(3), atol=1e-4, rtol=0)
    gray = torch.arange(256, dtype=torch.uint8).repeat(3, 1)[:, :, None]
    assert C.rgb_to_lab(gray)[1:].abs().max() < 0.01          # gray is ab ~ 0
    assert C.rgb_to_yuv(gray)[1:].abs().max() < 1e-6          # and exactly UV = 0


def test_blocking_gives_same_result(monkeypatch):
    "CPU cache blocking (small images grouped, big images split) changes nothing but speed."
    for shape in ((5, 3, 100, 70), (1, 3, 700, 400)):
        x = torch.randint(0, 256, shape, dtype=torch.uint8)
        monkeypatch.setattr(C, 'CHUNK_PIXELS', 0)
        ref = C.rgb_to_lab(x), C.lab_to_rgb(C.rgb_to_lab(x)), C.rgb_to_yuv(x)
        monkeypatch.setattr(C, 'CHUNK_PIXELS', 2**12 + 7)   # odd size: ragged last block
        got = C.rgb_to_lab(x), C.lab_to_rgb(C.rgb_to_lab(x)), C.rgb_to_yuv(x)
        for r, g in zip(ref, got): torch.testing.assert_close(g, r, atol=1e-4, rtol=1e-5)  # float32 rounding of other matmul shapes


def test_shapes_and_dtypes():
    x = sample_batch(2, 32)
    assert C.rgb_to_lab(x).dtype == torch.float32 and C.rgb_to_lab(x).shape == (2, 3, 32, 32)
    torch.testing.assert_close(C.rgb_to_lab(x[0]), C.rgb_to_lab(x)[0])
    assert C.rgb_to_lab(x.double()/255).dtype == torch.float64
    assert C.rgb_to_lab(x.half()/255).dtype == torch.float32       # half input is computed in float32
    assert C.lab_in_gamut(C.rgb_to_lab(x)).shape == (2, 32, 32)
    torch.testing.assert_close(C.rgb_to_lab(x.float()/255), C.rgb_to_lab(x), atol=2e-3, rtol=0)


def test_norm_functions_invert():
    L, ab = torch.rand(2, 1, 4, 4)*100, torch.randn(2, 2, 4, 4)*40
    torch.testing.assert_close(C.denorm_l(C.norm_l(L)), L)
    torch.testing.assert_close(C.denorm_ab(C.norm_ab(ab)), ab)
    assert C.norm_l(torch.tensor(0.)) == -1 and C.norm_l(torch.tensor(100.)) == 1


def test_out_of_gamut():
    oog = torch.tensor([50., 100, -100]).reshape(3, 1, 1)
    assert not C.lab_in_gamut(oog).item()
    rgb = C.lab_to_rgb(oog)
    assert rgb.min() >= 0 and rgb.max() <= 1
    ext = C.lab_to_rgb(oog, clip=False)
    assert ext.min() < 0 or ext.max() > 1                 # unclipped extended sRGB leaves [0,1]


@pytest.mark.parametrize('call,match', [
    (lambda: C.rgb_to_lab(torch.rand(2, 4, 8, 8)), '3 channels'),
    (lambda: C.rgb_to_lab(torch.rand(1, 8, 8, 3)), 'channels last'),
    (lambda: C.rgb_to_lab(torch.rand(8, 8)), r'shape \(B,3,H,W\)'),
    (lambda: C.rgb_to_lab(torch.rand(1, 1, 3, 8, 8)), r'got shape \(1, 1, 3, 8, 8\)'),
    (lambda: C.rgb_to_lab(torch.rand(1, 3, 8, 8)*255), 'divide by 255'),
    (lambda: C.rgb_to_lab(torch.rand(1, 3, 8, 8) - 0.5), r'in \[-0.02, 1.02\]'),
    (lambda: C.rgb_to_lab(torch.randint(0, 255, (1, 3, 8, 8))), 'dtype torch.int64'),
    (lambda: C.rgb_to_lab(torch.ones(1, 3, 2, 2, dtype=torch.bool)), 'dtype torch.bool'),
    (lambda: C.rgb_to_lab(torch.full((1, 3, 2, 2), float('inf'))), 'NaN or inf'),
    (lambda: C.rgb_to_lab(np.zeros((8, 8, 3))), 'torch.Tensor'),
    (lambda: C.lab_to_rgb(torch.zeros(1, 3, 4, 4, dtype=torch.uint8)), 'float Lab'),
    (lambda: C.lab_to_rgb(torch.linspace(-1, 1, 48).view(1, 3, 4, 4)), 'model-scaled L'),
    (lambda: C.lab_to_rgb(torch.full((1, 3, 2, 2), float('nan'))), 'NaN or inf'),
    (lambda: C.rgb_to_yuv(torch.rand(3, 3, 3, 3)*300), 'divide by 255'),
    (lambda: C.yuv_to_rgb(torch.linspace(0, 4, 48).view(1, 3, 4, 4)), 'Y values'),
    (lambda: C.yuv_to_rgb(torch.zeros(1, 3, 4, 4, dtype=torch.uint8)), 'float YUV'),
])
def test_bad_input_errors(call, match):
    with pytest.raises((ValueError, TypeError), match=match): call()


def test_check_false_skips_range_check():
    x = torch.rand(1, 3, 4, 4)*3          # out of range, but the caller vouches for it: clamped, no error
    assert C.rgb_to_lab(x, check=False).shape == (1, 3, 4, 4)


def test_gradients():
    x = (torch.rand(1, 3, 5, 5, dtype=torch.float64)*0.9 + 0.05).requires_grad_()
    assert torch.autograd.gradcheck(C.rgb_to_lab, (x,))
    assert torch.autograd.gradcheck(lambda t: C.lab_to_rgb(C.rgb_to_lab(t)), (x,))
    assert torch.autograd.gradcheck(lambda t: C.yuv_to_rgb(C.rgb_to_yuv(t)), (x,))
    # black and white pixels (the cube root's and the sRGB curve's kinks) give finite gradients
    y = torch.tensor([0., 1.]).reshape(1, 1, 1, 2).expand(1, 3, 1, 2).clone().requires_grad_()
    C.lab_to_rgb(C.rgb_to_lab(y)).sum().backward()
    assert torch.isfinite(y.grad).all()


def test_scaling_numbers_live_only_in_color():
    "The model scaling (L/50-1, ab/110) is written once, in color.py; everything else calls norm_l/norm_ab."
    pat = re.compile(r'(/|\*)\s*110\b|\b110\.?\s*\*|/\s*50\.?\s*-\s*1\b|\+\s*1\)\s*\*\s*50\b')
    offenders = [f'{p.relative_to(ROOT)}:{i}' for p in (ROOT/'colorize_nbdev').rglob('*.py') if p.name != 'color.py'
                 for i, line in enumerate(p.read_text().splitlines(), 1) if pat.search(line)]
    assert not offenders, offenders


def test_exact_inside_autocast():
    "Mixed precision (AMP) regions do not degrade the conversion: it runs in float32 there."
    x = sample_batch(2, 64)
    ref = C.rgb_to_lab(x)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        got = C.rgb_to_lab(x)
        back = C.lab_to_rgb(got)
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, ref, atol=1e-4, rtol=0)
    assert (back*255 - x.float()).abs().max() <= 1


def test_gradients_through_blocks(monkeypatch):
    "Blocked evaluation (results copied into one output) is differentiable too."
    monkeypatch.setattr(C, 'CHUNK_PIXELS', 16)
    x = (torch.rand(3, 3, 5, 6, dtype=torch.float64)*0.9 + 0.05).requires_grad_()
    assert torch.autograd.gradcheck(lambda t: C.lab_to_rgb(C.rgb_to_lab(t)), (x,))


def _child_convert(q):
    torch.set_num_threads(1)          # what DataLoader workers do: torch's own pool does not survive a fork
    x = torch.randint(0, 256, (4, 3, 256, 256), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    q.put(C.rgb_to_lab(x).numpy())    # plain pickle, not shared memory


def test_blocks_work_in_forked_worker():
    "A worker forked after the parent used the block thread pool (as DataLoader workers are) converts correctly."
    import multiprocessing as mp
    x = torch.randint(0, 256, (4, 3, 256, 256), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    ref = C.rgb_to_lab(x)             # starts the parent's thread pool
    ctx = mp.get_context('fork')
    q = ctx.Queue()
    p = ctx.Process(target=_child_convert, args=(q,))
    p.start()
    got = q.get(timeout=60)
    p.join(10)
    torch.testing.assert_close(torch.from_numpy(got), ref, atol=1e-4, rtol=1e-5)


def test_gradient_at_cube_edges_is_one_sided_derivative():
    "Channels exactly at 0 or 1 get the derivative from inside the cube (a plain clamp would give them 0)."
    import torch
    from colorize_nbdev.color import rgb_to_lab, rgb_to_yuv
    edge = torch.tensor([0., 1., 0.5], dtype=torch.float64).view(1, 3, 1, 1)
    for ch, f in [(c, lambda t, c=c: rgb_to_lab(t)[:, c]) for c in range(3)] + [(c, lambda t, c=c: rgb_to_yuv(t)[:, c]) for c in range(3)]:
        x = edge.clone().requires_grad_()
        f(x).sum().backward()
        h = 1e-7
        fd = torch.stack([(f(edge + h*d*torch.eye(3, dtype=torch.float64)[i].view(1, 3, 1, 1)) - f(edge)).sum()/(h*d)
                          for i, d in enumerate((1, -1, 1))])
        assert (x.grad.flatten() - fd).abs().max() <= 1e-4*max(1., fd.abs().max().item()), (ch, x.grad.flatten(), fd)
        assert x.grad[0, 0].abs().item() > 0 or fd[0].abs().item() < 1e-9   # the channel at 0 is not cut off


def test_gradient_outside_cube_is_zero():
    "Values a little outside [0,1] (within the tolerance) are clamped: no gradient pushes them further."
    import torch
    from colorize_nbdev.color import rgb_to_lab
    x = torch.tensor([-0.01, 1.01, 0.5], dtype=torch.float64).view(1, 3, 1, 1).requires_grad_()
    rgb_to_lab(x)[:, 0].sum().backward()
    assert x.grad[0, 0].item() == 0 and x.grad[0, 1].item() == 0 and x.grad[0, 2].item() != 0


def test_out_of_gamut_lab_matches_scikit_image():
    "Random Lab values, most out of gamut and many with negative f(Z): lab_to_rgb equals skimage's lab2rgb."
    import warnings
    import numpy as np, torch
    from skimage import color as skcolor
    from colorize_nbdev.color import lab_to_rgb, lab_in_gamut
    g = torch.Generator().manual_seed(1)
    lab = torch.stack([torch.rand(10000, generator=g)*100, torch.rand(10000, generator=g)*300 - 150,
                       torch.rand(10000, generator=g)*400 - 200]).reshape(3, 100, 100).double()
    assert (~lab_in_gamut(lab)).float().mean() > 0.5
    assert ((lab[0] + 16)/116 - lab[2]/200 < 0).any()
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        ref = skcolor.lab2rgb(lab.permute(1, 2, 0).numpy())
    for t in (lab, lab.float()):
        assert np.abs(lab_to_rgb(t).permute(1, 2, 0).double().numpy() - ref).max() < 1e-4   # scikit-image rounds the constant κ/116 to 7.787: about 2e-6 apart
