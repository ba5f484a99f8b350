"""Scores of `colorize_nbdev.metrics` (known values computed by hand, scikit-image references) and `evaluate`.

In-process and fast (small crops of the bundled photos and tiny synthetic images); the command `colorize-eval`
is tested in test_eval_cli.py.
"""
import math, warnings

import numpy as np
import pytest
import torch
from PIL import Image
from skimage.color import lab2rgb, rgb2lab
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from colorize_nbdev.color import rgb_to_lab, rgb_to_lab_norm
from colorize_nbdev.data.samples import center_crop_resize, load_sample, sample_batch, sample_photos
from colorize_nbdev.metrics import (AUC_MAX_T, PSNR_MAX, EvalError, ab_error, auc, before_after_grid, colorfulness,
                                    evaluate, gray_baseline, gray_colorizer, metrics_table, model_colorizer, psnr,
                                    score_batch, ssim, summarize, to_uint8)


def u8(*rgb, h=4, w=4):
    "A uniform uint8 image (3,h,w) of colour `rgb`."
    return torch.tensor(rgb, dtype=torch.uint8).reshape(3, 1, 1).expand(3, h, w).contiguous()


@pytest.fixture(scope='module')
def xs(): return sample_batch(8, 64)


def hwc(t): return t.permute(1, 2, 0).numpy()


# ---- identity and hand-computed values ----

def test_identity_gives_max_scores(xs):
    s = score_batch(xs, xs.clone())
    assert s['psnr'].tolist() == [PSNR_MAX]*8          # +inf, reported as the cap
    assert s['ssim'].tolist() == [1.0]*8
    assert s['auc'].tolist() == [100.0]*8
    torch.testing.assert_close(s['cf_pred'], s['cf_gt'])
    r = summarize(s)
    assert r['n'] == 8 and r['psnr_capped'] == 8 and r['cf_ratio'] == pytest.approx(1)


def test_psnr_by_hand():
    a, b = u8(100, 100, 100), u8(110, 110, 110)                 # every value off by 10: MSE 100
    assert psnr(a, b).item() == pytest.approx(10*math.log10(255**2/100), abs=1e-12)   # 28.1308 dB
    one = a.clone(); one[0] += 10                              # one channel of three off by 10: MSE 100/3
    assert psnr(a, one).item() == pytest.approx(10*math.log10(255**2*3/100), abs=1e-12)
    assert psnr(u8(0, 0, 0), u8(255, 255, 255)).item() == pytest.approx(0, abs=1e-12)


def test_psnr_matches_skimage_and_cap(xs):
    g = gray_baseline(xs)
    ref = [peak_signal_noise_ratio(hwc(a), hwc(b), data_range=255) for a, b in zip(xs, g)]
    np.testing.assert_allclose(psnr(xs, g).numpy(), ref, rtol=0, atol=1e-9)
    assert psnr(xs[3], g[3]).ndim == 0 and psnr(xs[3], g[3]).item() == pytest.approx(ref[3], abs=1e-9)   # one photo
    near = xs[0].clone(); near[0, 0, 0] ^= 1                     # one value off by one: finite, below the cap
    assert psnr(xs[0], near).item() < PSNR_MAX
    assert psnr(xs[0], near, max_db=80.).item() == 80.          # the cap is a choice: max_db
    assert psnr(xs[0], near, max_db=float('inf')).item() == pytest.approx(10*math.log10(255**2*xs[0].numel()), abs=1e-9)
    assert psnr(xs[0], xs[0], max_db=float('inf')).item() == float('inf')


@pytest.mark.parametrize('h,w', [(128, 128), (256, 256), (1080, 1920)])
def test_psnr_cap_changes_only_identical_photos(h, w):
    "The closest two different photos of n values (one value one level off) score 10 log10(255^2 n) dB, below the cap."
    z = torch.zeros(2, 3, h, w, dtype=torch.uint8)
    close = z.clone(); close[1, 0, 0, 0] = 1                      # photo 0 identical, photo 1 one level off in one value
    p = psnr(z, close)
    assert p[0].item() == PSNR_MAX
    assert p[1].item() == pytest.approx(10*math.log10(255**2*3*h*w), abs=1e-9) and p[1].item() < PSNR_MAX
    s = summarize({'psnr': p, 'ssim': torch.ones(2), 'cf_pred': torch.zeros(2), 'cf_gt': torch.zeros(2), 'auc': torch.ones(2)})
    assert s['psnr_capped'] == 1                                 # only the identical photo is at the cap
    if (h, w) == (256, 256): assert p[1].item() > 101              # 101.07 dB: a cap at 100 dB would have changed it


def test_psnr_max_is_above_any_different_photo_below_5_gigapixels():
    n = 3*5_000_000_000                                           # values of a 5-gigapixel RGB photo
    assert 10*math.log10(255**2*n) < PSNR_MAX


def test_gray_baseline_psnr_by_hand():
    "Pure red: L = 53.24 -> Y = 0.2126 -> sRGB 0.498 -> 127; gray (127,127,127) vs (255,0,0)."
    red = u8(255, 0, 0)
    g = gray_baseline(red)
    assert g.unique().tolist() == [127]
    mse = ((255 - 127)**2 + 127**2 + 127**2)/3
    assert psnr(red, g).item() == pytest.approx(10*math.log10(255**2/mse), abs=1e-9)   # 6.03 dB


def test_ssim_is_skimage(xs):
    g = gray_baseline(xs)
    ref = [structural_similarity(hwc(a), hwc(b), channel_axis=2, data_range=255) for a, b in zip(xs, g)]
    np.testing.assert_allclose(ssim(xs, g).numpy(), ref, rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match='at least 7 x 7'): ssim(u8(1, 2, 3), u8(1, 2, 3))


def test_colorfulness_by_hand():
    # uniform pure red: sigma = 0, mean |R-G| = 255, mean |(R+G)/2-B| = 127.5 -> 0.3 * hypot(255, 127.5)
    assert colorfulness(u8(255, 0, 0)).item() == pytest.approx(0.3*math.hypot(255, 127.5), abs=1e-3)
    # red next to black: rg = [255, 0], yb = [127.5, 0] -> sigma = mu = (127.5, 63.75) -> 1.3 * hypot(127.5, 63.75)
    two = torch.tensor([[255, 0], [0, 0], [0, 0]], dtype=torch.uint8).reshape(3, 1, 2)
    assert colorfulness(two).item() == pytest.approx(1.3*math.hypot(127.5, 63.75), abs=1e-3)
    # absolute values: blue (0,0,255) has (R+G)/2-B = -255, counted as 255
    assert colorfulness(u8(0, 0, 255)).item() == pytest.approx(0.3*255, abs=1e-3)


def test_colorfulness_of_gray_is_zero(xs):
    gray = xs[:, :1].expand(-1, 3, -1, -1)                    # R = G = B exactly
    assert colorfulness(gray).abs().max().item() == 0
    assert colorfulness(gray_baseline(xs)).max().item() < 0.2   # ab = 0 rounds a hair off neutral at a few pixels


def test_colorfulness_matches_numpy(xs):
    def ref(im):
        r, g, b = (im[..., i].astype(np.float64) for i in range(3))
        rg, yb = np.abs(r - g), np.abs((r + g)/2 - b)
        return np.sqrt(rg.std()**2 + yb.std()**2) + 0.3*np.sqrt(rg.mean()**2 + yb.mean()**2)
    np.testing.assert_allclose(colorfulness(xs).numpy(), [ref(hwc(x)) for x in xs], rtol=0, atol=1e-3)


def test_auc_perfect_and_by_hand():
    x = sample_batch(2, 32)
    assert auc(x, x).tolist() == [100.0, 100.0]
    # pure red vs its gray baseline: the error is red's chroma, hypot(80.09, 67.20) = 104.55 (published Lab of sRGB red),
    # so t = 105..150 count: 46 of 151 thresholds
    red = u8(255, 0, 0, h=8, w=8)
    err = ab_error(red, gray_baseline(red))
    assert err.min().item() == pytest.approx(math.hypot(80.09, 67.20), abs=0.05)
    assert auc(red, gray_baseline(red)).item() == pytest.approx(46/151*100, abs=1e-4)
    # half the pixels wrong by more than 150: they count at no threshold
    blue = u8(0, 0, 255, h=8, w=8)
    half = red.clone(); half[:, :4] = blue[:, :4]
    half_pred = red.clone(); half_pred[:, :4] = u8(255, 255, 0, h=8, w=8)[:, :4]   # blue predicted as yellow: ~ 220 apart
    assert ab_error(half, half_pred)[:4].min() > AUC_MAX_T
    assert auc(half, half_pred).item() == pytest.approx(50, abs=1e-4)


def test_auc_matches_threshold_loop(xs):
    g = gray_baseline(xs)
    err = (rgb_to_lab(xs)[:, 1:] - rgb_to_lab(g)[:, 1:]).norm(dim=1)
    loop = torch.stack([(err <= t).double().mean((-2, -1)) for t in range(151)], -1).mean(-1)*100
    torch.testing.assert_close(auc(xs, g), loop, atol=1e-4, rtol=0)


def test_gray_baseline_agrees_with_skimage(xs):
    ims = xs.permute(0, 2, 3, 1).numpy()
    ref = []
    for im in ims:
        lab = rgb2lab(im); lab[..., 1:] = 0
        ref.append(np.round(np.clip(lab2rgb(lab), 0, 1)*255).astype(np.uint8))
    d = np.abs(gray_baseline(xs).permute(0, 2, 3, 1).numpy().astype(int) - np.stack(ref))
    assert d.max() <= 1 and (d > 0).mean() < 0.001


def test_bad_input_is_a_clear_error(xs):
    with pytest.raises(TypeError, match='to_uint8'): psnr(xs.float()/255, xs)
    with pytest.raises(ValueError, match='differ in shape'): auc(xs, xs[:2])
    with pytest.raises(ValueError, match=r'\(B,3,H,W\)'): colorfulness(xs[:, :2])
    with pytest.raises(TypeError, match='torch.Tensor'): colorfulness(hwc(xs[0]))


def test_summarize_edge_cases():
    s = summarize({'psnr': torch.tensor([PSNR_MAX, 20.]), 'ssim': torch.tensor([1., .5]), 'cf_pred': torch.zeros(2),
                   'cf_gt': torch.zeros(2), 'auc': torch.tensor([100., 50.])})
    assert s == dict(psnr=(PSNR_MAX + 20)/2, ssim=.75, cf_pred=0., cf_gt=0., cf_ratio=None, auc=75., n=2, psnr_capped=1)


def test_to_uint8_rounds_and_clips():
    x = torch.tensor([-0.1, 0, 0.5/255, 0.4999, 1.2]).reshape(1, 1, 5)
    assert to_uint8(x).flatten().tolist() == [0, 0, 0, 127, 255]


# ---- colorizers and evaluate ----

def _photos(tmp_path, n=3):
    d = tmp_path/'photos'
    (d/'sub').mkdir(parents=True)
    for i, p in enumerate(sample_photos()[:n]): (d/('sub' if i == 0 else '')/p.name).write_bytes(p.read_bytes())
    return d


def test_evaluate_equals_score_batch(tmp_path):
    d = _photos(tmp_path, 3)
    r = evaluate(d, gray_colorizer, size=48, device='cpu', per_photo=True, bs=2)
    files = sorted(d.rglob('*.jpg'))
    x = torch.stack([torch.from_numpy(np.array(center_crop_resize(load_sample(f), 48))).permute(2, 0, 1) for f in files])
    ref = summarize(score_batch(x, to_uint8(gray_colorizer(rgb_to_lab_norm(x)[0]))))
    for k in ('psnr', 'ssim', 'cf_pred', 'cf_gt', 'cf_ratio', 'auc', 'n'): assert r[k] == pytest.approx(ref[k], abs=1e-9), k
    assert [p['file'] for p in r['photos']] == [str(f) for f in files]
    assert r['skipped'] == [] and r['size'] == 48
    assert evaluate(files, size=48, device='cpu')['psnr'] == pytest.approx(r['psnr'], abs=1e-12)   # a list of files
    # gray baseline through the colorizer protocol = gray_baseline on the crops, up to norm_l rounding
    assert (to_uint8(gray_colorizer(rgb_to_lab_norm(x)[0])).int() - gray_baseline(x).int()).abs().max() <= 1


def test_evaluate_skips_awkward_files_with_one_warning(tmp_path):
    d = _photos(tmp_path, 2)
    (d/'empty.jpg').write_bytes(b'')
    (d/'truncated.jpg').write_bytes(sample_photos()[5].read_bytes()[:2000])
    (d/'notes.png').write_text('not an image')
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter('always')
        r = evaluate(d, size=32, device='cpu')
    assert r['n'] == 2
    assert sorted(s['file'].rsplit('/', 1)[-1] for s in r['skipped']) == ['empty.jpg', 'notes.png', 'truncated.jpg']
    msgs = [str(x.message) for x in w if 'Skipped' in str(x.message)]
    assert len(msgs) == 1 and all(n in msgs[0] for n in ('empty.jpg', 'notes.png', 'truncated.jpg'))


def test_evaluate_nothing_to_score(tmp_path):
    (tmp_path/'a.jpg').write_bytes(b'')
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        with pytest.raises(EvalError, match='No photo could be scored'): evaluate(tmp_path, size=32, device='cpu')
    (tmp_path/'a.jpg').unlink()
    with pytest.raises(EvalError, match='No image files'): evaluate(tmp_path, size=32, device='cpu')
    with pytest.raises(FileNotFoundError, match='nowhere'): evaluate(tmp_path/'nowhere', size=32, device='cpu')


def test_model_colorizer_and_colorizer_checks(tmp_path):
    d = _photos(tmp_path, 2)
    zero = torch.nn.Conv2d(1, 2, 1)
    torch.nn.init.zeros_(zero.weight); torch.nn.init.zeros_(zero.bias)
    a = evaluate(d, model_colorizer(zero), size=32, device='cpu', baseline=True)
    assert a['psnr'] == pytest.approx(a['baseline']['psnr'], abs=1e-12)     # ab = 0 everywhere is the gray baseline
    low = torch.nn.Sequential(torch.nn.AvgPool2d(4), torch.nn.Conv2d(1, 2, 1))   # ab at 1/4 resolution: upsampled
    assert evaluate(d, model_colorizer(low), size=32, device='cpu')['n'] == 2
    with pytest.raises(ValueError, match='must return RGB'): evaluate(d, lambda L: L, size=32, device='cpu')
    with pytest.raises(ValueError, match=r'expected \[0, 1\]'):
        evaluate(d, lambda L: gray_colorizer(L)*255, size=32, device='cpu')
    with pytest.raises(ValueError, match='must return model-scaled ab'):
        evaluate(d, model_colorizer(torch.nn.Conv2d(1, 3, 1)), size=32, device='cpu')


def test_evaluate_out_writes_and_protects(tmp_path):
    d = _photos(tmp_path, 3)
    before = {p: p.read_bytes() for p in d.rglob('*')  if p.is_file()}
    out = tmp_path/'preds'
    r = evaluate(d, size=32, device='cpu', out=out, grid_n=2)
    names = sorted(str(p.relative_to(out)) for p in out.rglob('*.png'))
    assert names == sorted(str(p.relative_to(d).with_suffix('.png')) for p in before)   # subfolders kept
    pred = np.asarray(Image.open(out/names[0]))
    assert pred.shape == (32, 32, 3)
    g = Image.open(out/'eval_grid.jpg')
    assert g.size[0] > 3*32 and g.size[1] > 2*32 and r['grid'] == str(out/'eval_grid.jpg')
    evaluate(d, size=32, device='cpu', out=out)                   # again: replaces its own files
    mine = out/names[0]
    mine.write_bytes(b'my own file')                              # a file evaluate did not write, in the way
    with pytest.raises(EvalError, match='not written by evaluate'): evaluate(d, size=32, device='cpu', out=out)
    assert mine.read_bytes() == b'my own file'
    for bad in (d, d/'sub'):
        with pytest.raises(EvalError, match='inside it'): evaluate(d, size=32, device='cpu', out=bad)
    assert {p: p.read_bytes() for p in d.rglob('*') if p.is_file()} == before   # the photos were never touched


def test_same_stem_gets_distinct_outputs(tmp_path):
    d = tmp_path/'photos'; d.mkdir()
    src = sample_photos()[0]
    (d/'x.jpg').write_bytes(src.read_bytes())
    load_sample(src).save(d/'x.png')
    evaluate(d, size=32, device='cpu', out=tmp_path/'o')
    assert sorted(p.name for p in (tmp_path/'o').glob('*.png')) == ['x.png', 'x_png.png']


def test_metrics_table_and_grid(xs):
    base = summarize(score_batch(xs, gray_baseline(xs)))
    half = summarize(score_batch(xs, xs//2))
    lines = metrics_table({'half': half}, baseline=base).splitlines()
    assert lines[0].startswith('| colorizer | n | PSNR (dB)') and len(lines) == 5
    assert lines[2].startswith('| gray baseline (ab = 0) | 8 |') and lines[3].startswith('| half | 8 |')
    assert lines[4].startswith('| truth | 8 | ∞ | 1 | 100 |')
    assert metrics_table({'m': {**half, 'baseline': base}}).splitlines()[2].startswith('| gray baseline')
    im = before_after_grid([[x, x, x] for x in xs[:2]], ['a', 'b', 'c'], pad=2)
    assert im.size[0] == 3*64 + 4*2 and im.size[1] > 2*64 + 3*2
