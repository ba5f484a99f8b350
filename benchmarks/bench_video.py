"""`colorize-video` (colorize_nbdev.video, lesson 08): flicker, warp error, leak at a cut, and frames/s at 640x360.

Goals (issue 13): the temporal smoothing at least halves the flicker of per-frame colouring on a static grainy shot,
does not smear a pan, leaks no colour across a hard cut; >= 5 frames/s at 640x360 on 2 CPU threads.

The model is `--model` (default `dayone`, the model bundled in the package, which never trained on the bundled photos
the clips are made from; a file or any registry name works), or with `--model quick-regressor` lesson 03's 'regressor'
trained for a short time here (`fit_colorizer`, random start, the 32 bundled photos at 64 px, --epochs epochs: seconds). Clips are made from two bundled photos with
`make_test_clip`/`clip_frames` (a static shot with fresh grain on every frame, a pan of --shift pixels per frame, a hard
cut in the middle). The quality figures are computed on the coloured frames before encoding (no codec noise); the
frames/s are end to end (decode, colour, smooth, encode with x264 at crf 18), the median of --repeat runs.

    python benchmarks/bench_video.py --threads 2 --json benchmarks/results/video_cpu2_run1.json
"""
import argparse, datetime, json, os, platform, statistics, subprocess, sys, tempfile, time, warnings
from pathlib import Path


def cpu_model()->str:
    try:
        out = subprocess.run(['lscpu'], capture_output=True, text=True).stdout
        return next(l.split(':', 1)[1].strip() for l in out.splitlines() if l.startswith('Model name'))
    except Exception: return platform.processor() or 'unknown'


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--threads', type=int, default=2)
    ap.add_argument('--frames', type=int, default=48, help='frames of each quality clip')
    ap.add_argument('--speed-frames', type=int, default=96, help='frames of the clip timed for frames/s')
    ap.add_argument('--size', default='640x360')
    ap.add_argument('--render-size', type=int, default=256)
    ap.add_argument('--noise', type=float, default=8.0, help='grain std (0-255 scale)')
    ap.add_argument('--shift', type=int, default=4, help='pan: pixels per frame')
    ap.add_argument('--model', default='dayone', help="model file or registry name; 'quick-regressor': train lesson 03's regressor here")
    ap.add_argument('--epochs', type=int, default=20, help='training epochs of the quick regressor')
    ap.add_argument('--repeat', type=int, default=3, help='timed runs of colorize_video (median reported)')
    ap.add_argument('--json', default=None)
    a = ap.parse_args()
    warnings.filterwarnings('ignore')
    import torch
    torch.set_num_threads(a.threads)
    import colorize_nbdev.models.regressor  # noqa: F401  (registers 'regressor')
    from colorize_nbdev.data.samples import sample_photos
    from colorize_nbdev.modelfile import load_model
    from colorize_nbdev.train import fit_colorizer
    from colorize_nbdev.video import (SMOOTH, ABSmoother, clip_frames, colorize_frames, colorize_video, flicker, frame_ab,
                                      make_test_clip, warp_error)
    W, H = map(int, a.size.split('x'))
    tmp = Path(tempfile.mkdtemp())
    train_s = steps = None
    if a.model == 'quick-regressor':
        torch.set_num_threads(1)   # tiny batches: one thread trains fastest on a shared machine; --threads is for the colouring
        t0 = time.time()
        learn = fit_colorizer('regressor', sample_photos(), out=tmp/'regressor.pth', epochs=a.epochs, size=64, bs=8, lr=1e-3,
                              loss='l1', pretrained=False, num_workers=0, progress=False, verbose=False, seed=0)
        train_s, steps = time.time() - t0, learn.report['iterations']
        model_file = tmp/'regressor.pth'
    else:
        from colorize_nbdev.zoo import resolve_model
        model_file = resolve_model(a.model)
    torch.set_num_threads(a.threads)
    model, config = load_model(model_file, device='cpu')
    photos = [sample_photos()[7], sample_photos()[20]]
    n, cut_at = a.frames, a.frames//2
    frames = {k: list(clip_frames(k, photos, n, (W, H), a.noise, a.shift, cut_at)) for k in ('static', 'pan', 'cut')}
    col = lambda k, **kw: list(colorize_frames(model, config, frames[k], a.render_size, **kw))
    per, smo = {k: col(k, smooth=0) for k in frames}, {k: col(k, smooth=SMOOTH) for k in frames}
    blind = col('cut', smoother=ABSmoother(SMOOTH, cut_hist=2, cut_mad=3))
    leak = lambda out: (frame_ab(out[cut_at]) - frame_ab(per['cut'][cut_at])).abs().mean().item()

    class Constant(torch.nn.Module):
        def forward(self, L): return torch.tensor([0.1, 0.2]).view(1, 2, 1, 1).expand(len(L), 2, *L.shape[-2:])
    const = list(colorize_frames(Constant(), None, frames['static'], a.render_size, smooth=0))
    quality = {
        'flicker_static_block8': {'per_frame': flicker(per['static']), 'smoothed': flicker(smo['static']),
                                  'constant_colour_floor': flicker(const)},
        'flicker_static_pixel': {'per_frame': flicker(per['static'], block=1), 'smoothed': flicker(smo['static'], block=1),
                                 'constant_colour_floor': flicker(const, block=1)},
        'warp_error_pan_block8': {'per_frame': warp_error(per['pan'], a.shift), 'smoothed': warp_error(smo['pan'], a.shift)},
        'leak_at_cut_ab': {'smoothed': leak(smo['cut']), 'smoothed_without_cut_detection': leak(blind)},
    }
    q = quality['flicker_static_block8']
    q['ratio'] = q['per_frame']/q['smoothed']
    big = make_test_clip(tmp/'speed.mp4', 'static', photos, n=a.speed_frames, size=(W, H), noise=a.noise)
    runs = []
    for i in range(a.repeat):
        load0 = os.getloadavg()[0]
        rep = colorize_video(model, config, big, tmp/f'out{i}.mp4', render_size=a.render_size, progress=False)
        runs.append({'frames_per_s': rep['frames_per_s'], 'seconds': rep['seconds'], 'loadavg_1min_before': load0})
    res = {'benchmark': 'bench_video', 'date': datetime.datetime.now().isoformat(timespec='seconds'),
           'command': ' '.join(['python', 'benchmarks/bench_video.py', *sys.argv[1:]]),
           'machine': {'cpu': cpu_model(), 'cpus_visible': len(os.sched_getaffinity(0)), 'python': platform.python_version(),
                       'torch': torch.__version__, 'torch_threads': torch.get_num_threads()},
           'model': ({'arch': 'regressor', 'trained': f'fit_colorizer, {a.epochs} epochs ({steps} steps of 8 photos at 64 px, '
                                                      f'random start), {train_s:.0f} s'} if a.model == 'quick-regressor' else
                     {'model': a.model, 'arch': type(model).__name__, 'file': model_file.name}),
           'clips': {'size': [W, H], 'frames': n, 'noise': a.noise, 'shift': a.shift, 'cut_at': cut_at,
                     'render_size': a.render_size, 'smooth': SMOOTH},
           'quality': quality,
           'speed': {'frames': a.speed_frames, 'size': [W, H], 'runs': runs,
                     'median_frames_per_s': statistics.median(r['frames_per_s'] for r in runs)}}
    print(json.dumps(res, indent=1))
    if a.json:
        Path(a.json).parent.mkdir(parents=True, exist_ok=True)
        Path(a.json).write_text(json.dumps(res, indent=1) + '\n')


if __name__ == '__main__': main()
