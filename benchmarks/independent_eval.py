"""An independent implementation of `colorize-eval --gray`: the same definitions, written again without colorize_nbdev.

Only numpy, scikit-image (its Lab conversion and SSIM) and PIL (reading and the centre crop). Nothing is imported
from colorize_nbdev, so a bug in the library's batched torch code (colour conversion, PSNR, colourfulness, AuC) shows
up as a disagreement. The definitions (see nbs/02_metrics.ipynb):

* photos: every .jpg/.jpeg/.png/.webp/.bmp/.tif/.tiff file under DIR (recursive), EXIF orientation applied,
  transparency composited on white, converted to 8-bit RGB; unreadable files are skipped and listed;
* centre crop: resize so the short side is SIZE (LANCZOS), keeping the central square (PIL's resize with a `box`);
* gray baseline: Lab of the photo with a = b = 0, back to sRGB, rounded to uint8;
* PSNR: 10 log10(255^2 / MSE) per photo on uint8 RGB, identical photos 100 dB; mean over photos;
* SSIM: skimage.metrics.structural_similarity(gt, pred, channel_axis=2, data_range=255); mean over photos;
* CF (Hasler & Suesstrunk 2003 on |R-G| and |(R+G)/2-B|): sqrt(std_rg^2 + std_yb^2) + 0.3 sqrt(mean_rg^2 + mean_yb^2);
  cf_ratio = mean CF(pred) / mean CF(gt);
* AuC: per photo, for t = 0, 1, ..., 150 the fraction of pixels whose ab distance (Lab of gt vs Lab of pred) is <= t,
  averaged over the 151 thresholds, times 100; mean over photos.

Usage:
    python benchmarks/independent_eval.py DIR [--size 256] [--check OURS.json] [--variants]
prints one JSON object; with --check, compares it with `colorize-eval --json` output saved in OURS.json and exits 1
if any score differs by more than the tolerances (PSNR 0.05 dB, SSIM 0.005, CF 0.5, AuC 0.5). With --variants, it
prints the gray baseline's scores under nearby definitions that are not the course's (pooled PSNR, signed CF,
trapezoid AuC, Gaussian-window SSIM), to show how far such a slip would move each score.
"""
import argparse, json, sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps
from skimage.color import lab2rgb, rgb2lab
from skimage.metrics import structural_similarity

EXTS = {'.jpg', '.jpeg', '.png', '.webp', '.bmp', '.tif', '.tiff'}
TOLERANCES = {'psnr': 0.05, 'ssim': 0.005, 'cf_pred': 0.5, 'cf_gt': 0.5, 'auc': 0.5}


def read_photo(path, size):
    "uint8 (size, size, 3) centre crop of the photo at `path`."
    with Image.open(path) as im:
        im.load()
        im = ImageOps.exif_transpose(im)
        if im.mode in ('RGBA', 'LA', 'PA', 'P') or 'transparency' in im.info:
            rgba = im.convert('RGBA')
            im = Image.alpha_composite(Image.new('RGBA', rgba.size, (255, 255, 255, 255)), rgba)
        im = im.convert('RGB')
    w, h = im.size
    s = min(w, h)
    left, top = (w - s)/2, (h - s)/2
    return np.asarray(im.resize((size, size), Image.Resampling.LANCZOS, box=(left, top, left + s, top + s)))


def gray_baseline(img):
    lab = rgb2lab(img)
    lab[..., 1:] = 0
    return np.round(np.clip(lab2rgb(lab), 0, 1)*255).astype(np.uint8)


def psnr(gt, pred):
    mse = np.mean((gt.astype(np.float64) - pred.astype(np.float64))**2)
    return 100.0 if mse == 0 else 10*np.log10(255.0**2/mse)


def colourfulness(img):
    r, g, b = (img[..., i].astype(np.float64) for i in range(3))
    rg, yb = np.abs(r - g), np.abs(0.5*(r + g) - b)
    return np.sqrt(rg.std()**2 + yb.std()**2) + 0.3*np.sqrt(rg.mean()**2 + yb.mean()**2)


def auc(gt, pred, max_t=150):
    a, b = rgb2lab(gt), rgb2lab(pred)
    err = np.sqrt(((a[..., 1:] - b[..., 1:])**2).sum(-1))
    return 100*np.mean([np.mean(err <= t) for t in range(max_t + 1)])


def evaluate_gray(folder, size=256):
    files = sorted(p for p in Path(folder).rglob('*') if p.is_file() and p.suffix.lower() in EXTS)
    rows, skipped = [], []
    for f in files:
        try: gt = read_photo(f, size)
        except Exception as e:
            skipped.append({'file': str(f), 'reason': f'{type(e).__name__}: {e}'})
            continue
        pred = gray_baseline(gt)
        rows.append((psnr(gt, pred), structural_similarity(gt, pred, channel_axis=2, data_range=255),
                     colourfulness(pred), colourfulness(gt), auc(gt, pred)))
    if not rows: raise SystemExit(f'no photo could be read in {folder}')
    m = np.mean(np.array(rows), 0)
    return dict(psnr=m[0], ssim=m[1], cf_pred=m[2], cf_gt=m[3], cf_ratio=m[2]/m[3] if m[3] > 0 else None, auc=m[4],
                n=len(rows), size=size, skipped=skipped, data=str(folder), implementation='numpy + scikit-image + PIL')


def variants(folder, size=256):
    "Gray-baseline means under nearby definitions that are NOT the course's: how far a slip in a definition moves a score."
    files = sorted(p for p in Path(folder).rglob('*') if p.is_file() and p.suffix.lower() in EXTS)
    rows = []
    for f in files:
        gt = read_photo(f, size)
        pred = gray_baseline(gt)
        r, g, b = (gt[..., i].astype(np.float64) for i in range(3))
        rg, yb = r - g, 0.5*(r + g) - b                                   # signed, as in the 2003 paper
        err = np.sqrt(((rgb2lab(gt)[..., 1:] - rgb2lab(pred)[..., 1:])**2).sum(-1))
        curve = np.array([np.mean(err <= t) for t in range(151)])
        rows.append(dict(
            mse=np.mean((gt.astype(np.float64) - pred.astype(np.float64))**2),
            cf_gt_signed=np.sqrt(rg.std()**2 + yb.std()**2) + 0.3*np.sqrt(rg.mean()**2 + yb.mean()**2),
            auc_trapezoid=100*np.trapezoid(curve)/150,
            ssim_gaussian=structural_similarity(gt, pred, channel_axis=2, data_range=255, gaussian_weights=True,
                                                sigma=1.5, use_sample_covariance=False)))
    m = {k: float(np.mean([x[k] for x in rows])) for k in rows[0]}
    return {'psnr_of_pooled_mse': float(10*np.log10(255.0**2/m['mse'])), 'cf_gt_signed': m['cf_gt_signed'],
            'auc_trapezoid': m['auc_trapezoid'], 'ssim_gaussian_weights': m['ssim_gaussian'], 'n': len(rows)}


def compare(ours, ref):
    "Rows (score, ours, independent, |difference|, tolerance, ok)."
    return [(k, ours[k], ref[k], abs(ours[k] - ref[k]), tol, abs(ours[k] - ref[k]) <= tol) for k, tol in TOLERANCES.items()]


if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('data', help='folder of photos')
    ap.add_argument('--size', type=int, default=256)
    ap.add_argument('--check', help='JSON output of `colorize-eval --gray --json` on the same folder and size, to compare with')
    ap.add_argument('--variants', action='store_true', help='print the scores under nearby, wrong definitions instead')
    args = ap.parse_args()
    if args.variants: sys.exit(print(json.dumps(variants(args.data, args.size), indent=2)))
    res = {k: float(v) if isinstance(v, np.floating) else v for k, v in evaluate_gray(args.data, args.size).items()}
    print(json.dumps(res, indent=2))
    if args.check:
        ours = json.loads(Path(args.check).read_text())
        rows = compare(ours, res)
        print('\n| score | colorize-eval | independent | difference | tolerance |\n|:--|--:|--:|--:|--:|', file=sys.stderr)
        for k, a, b, d, tol, ok in rows:
            print(f'| {k} | {a:.4f} | {b:.4f} | {d:.4f} | {tol} {"ok" if ok else "FAIL"} |', file=sys.stderr)
        if ours['n'] != res['n']:
            print(f"n differs: colorize-eval scored {ours['n']} photos, this script {res['n']}", file=sys.stderr)
        sys.exit(0 if all(r[-1] for r in rows) and ours['n'] == res['n'] else 1)
