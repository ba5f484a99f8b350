"""Benchmark and accuracy check of `colorize_nbdev.color` against scikit-image.

    python benchmarks/bench_color.py [--dir PHOTOS] [--n 64] [--size 256] [--threads 2] [--device cpu|cuda]

Speed: `n` photos centre-cropped to size x size (uint8), converted as one batch by `rgb_to_lab`, against
`skimage.color.rgb2lab` called per image (scikit-image has no batch API); the two are timed in alternation,
`reps` times, and compared by their median times. Variants show where the time goes:
float input (no 256-entry table for the sRGB curve) and CHUNK_PIXELS=0 (no cache blocking).
Accuracy: max |rgb_to_lab - rgb2lab| over every photo in --dir at full resolution, and the Lab/YUV round trips.
Prints one JSON object. Recorded results: benchmarks/README.md.
"""
import argparse, json, platform, time
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps
from skimage import color as skcolor

import colorize_nbdev.color as C
from colorize_nbdev.data.samples import center_crop_resize, sample_dir

EXTS = {'.jpg', '.jpeg', '.png', '.webp', '.bmp', '.tif', '.tiff'}


def times(f, reps, sync=lambda: None):
    "Wall times of `reps` calls of `f`."
    ts = []
    for _ in range(reps):
        t = time.perf_counter(); f(); sync(); ts.append(time.perf_counter() - t)
    return ts


def best(f, reps, sync=lambda: None):
    "Median wall time of `reps` calls after one warm-up (medians: this machine's timings are noisy)."
    f(); sync()
    return float(np.median(times(f, reps, sync)))


def load(p):
    with Image.open(p) as im: return ImageOps.exif_transpose(im).convert('RGB')


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--dir', default=str(sample_dir()), help='photo folder (default: the bundled sample)')
    ap.add_argument('--n', type=int, default=64)
    ap.add_argument('--size', type=int, default=256)
    ap.add_argument('--threads', type=int, default=2)
    ap.add_argument('--reps', type=int, default=15)
    ap.add_argument('--device', default='cpu')
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    files = sorted(p for p in Path(a.dir).rglob('*') if p.suffix.lower() in EXTS)
    if not files: raise SystemExit(f'no photos in {a.dir}')

    crops = [np.asarray(center_crop_resize(load(p), a.size)) for p in files[:a.n]]
    while len(crops) < a.n: crops += [c[:, ::-1].copy() for c in crops[:a.n - len(crops)]]   # mirror to fill
    arr = np.stack(crops)
    x = torch.from_numpy(arr).permute(0, 3, 1, 2).contiguous()
    res = dict(photos_dir=a.dir, n=a.n, size=a.size, threads=a.threads, torch=torch.__version__,
               cpu=platform.processor() or platform.machine())

    # Headline: scikit-image and rgb_to_lab timed in alternation, so both see the same machine state.
    sk, ours = lambda: [skcolor.rgb2lab(im) for im in arr], lambda: C.rgb_to_lab(x)
    sk(); ours()
    t_sk, t_ours = [], []
    for _ in range(a.reps):
        t_sk += times(sk, 1); t_ours += times(ours, 1)
    res['skimage_rgb2lab_img_s'] = a.n/float(np.median(t_sk))
    res['rgb_to_lab_uint8_alternating_img_s'] = a.n/float(np.median(t_ours))
    res['speedup_uint8_vs_skimage_median'] = float(np.median(t_sk)/np.median(t_ours))
    res['speedup_uint8_vs_skimage_best'] = min(t_sk)/min(t_ours)
    chunk = C.CHUNK_PIXELS
    variants = {'uint8': lambda: C.rgb_to_lab(x), 'float': lambda: C.rgb_to_lab(xf)}
    xf = x.float()/255
    for blocking in (True, False):
        C.CHUNK_PIXELS = chunk if blocking else 0
        for k, f in variants.items():
            t = best(f, a.reps)
            res[f'rgb_to_lab_{k}{"" if blocking else "_noblocking"}_img_s'] = a.n/t
    C.CHUNK_PIXELS = chunk
    lab = C.rgb_to_lab(x)
    labs = [l.permute(1, 2, 0).double().numpy() for l in lab]
    res['skimage_lab2rgb_img_s'] = a.n/best(lambda: [skcolor.lab2rgb(l) for l in labs], max(1, a.reps//3))
    res['lab_to_rgb_img_s'] = a.n/best(lambda: C.lab_to_rgb(lab), a.reps)

    if a.device.startswith('cuda'):
        xg, sync = x.to(a.device), torch.cuda.synchronize
        res['gpu'] = torch.cuda.get_device_name()
        res['cuda_rgb_to_lab_uint8_img_s'] = a.n/best(lambda: C.rgb_to_lab(xg), a.reps, sync)
        res['cuda_rgb_to_lab_uint8_nocheck_img_s'] = a.n/best(lambda: C.rgb_to_lab(xg, check=False), a.reps, sync)
        lg = C.rgb_to_lab(xg)
        res['cuda_lab_to_rgb_img_s'] = a.n/best(lambda: C.lab_to_rgb(lg), a.reps, sync)

    worst_u8 = worst_f = rt_lab = rt_yuv = 0.
    for p in files:
        im = np.asarray(load(p))
        ref = skcolor.rgb2lab(im)
        t = torch.from_numpy(im.copy()).permute(2, 0, 1).contiguous()
        worst_u8 = max(worst_u8, np.abs(C.rgb_to_lab(t).permute(1, 2, 0).double().numpy() - ref).max())
        worst_f = max(worst_f, np.abs(C.rgb_to_lab(t.float()/255).permute(1, 2, 0).double().numpy() - ref).max())
        rt_lab = max(rt_lab, (C.lab_to_rgb(C.rgb_to_lab(t))*255 - t.float()).abs().max().item())
        rt_yuv = max(rt_yuv, (C.yuv_to_rgb(C.rgb_to_yuv(t))*255 - t.float()).abs().max().item())
    res.update(accuracy_photos=len(files), max_abs_diff_uint8=worst_u8, max_abs_diff_float=worst_f,
               max_round_trip_lab_uint8_steps=rt_lab, max_round_trip_yuv_uint8_steps=rt_yuv)
    print(json.dumps({k: round(v, 6) if isinstance(v, float) else v for k, v in res.items()}, indent=1))


if __name__ == '__main__': main()
