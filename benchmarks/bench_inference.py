"""Speed and memory of `colorize` (colorize_nbdev.inference) on the CPU: seconds per photo after the model is loaded, peak RSS.

Goal (issue 4): a 1024x768 photo in <= 1 s on 2 CPU threads, <= 1.5 GB peak RSS; a 4000x3000 photo within the same memory.
The model is the lesson 03 'regressor' with untrained weights (speed and memory do not depend on the weights; the
out-of-gamut share does a little, see the README). Test photos are bundled sample photos upscaled (bicubic) to the size.
Each measurement runs in a fresh subprocess, so its peak RSS (`resource.getrusage(...).ru_maxrss`) is its own.

    python benchmarks/bench_inference.py --threads 2 --json benchmarks/results/inference_cpu2_run1.json
"""
import argparse, json, os, platform, resource, statistics, subprocess, sys, tempfile, time
from pathlib import Path


def _rss_mb(): return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss/1024   # Linux: KiB


def child(args):
    "One measurement in this (fresh) process: time `reps` photos of one size through read -> colorize -> PNG."
    import torch
    torch.set_num_threads(args.threads)
    from colorize_nbdev.modelfile import load_model
    import colorize_nbdev.inference as inf
    rss_import = _rss_mb()
    model, cfg = load_model(args.model, device='cpu')
    rss_model = _rss_mb()
    out = Path(args.out)
    photo = Path(args.photo)
    times, parts = [], []
    for i in range(args.reps + 1):                                   # the first call is a warm-up, not counted
        t0 = time.perf_counter()
        L, small = inf.prepare(photo, args.render_size)
        t1 = time.perf_counter()
        ab = inf.run_model(model, small)
        t2 = time.perf_counter()
        a = inf.recombine(L, ab)
        t3 = time.perf_counter()
        inf._save_png(a, out/f'{photo.stem}_{i}.png')
        t4 = time.perf_counter()
        del L, small, ab, a
        if i: times.append(t4 - t0); parts.append(dict(read_and_L=t1 - t0, model=t2 - t1, recombine=t3 - t2, png=t4 - t3))
    res = dict(photo=photo.name, render_shape=list(inf.render_shape(*reversed(_size(photo)), args.render_size)),
               size=list(_size(photo)), threads=torch.get_num_threads(), reps=args.reps,
               s_per_photo_median=statistics.median(times), s_per_photo_all=[round(t, 4) for t in times],
               parts_median={k: round(statistics.median(p[k] for p in parts), 4) for k in parts[0]},
               peak_rss_mb=round(_rss_mb(), 1), rss_after_imports_mb=round(rss_import, 1), rss_after_model_mb=round(rss_model, 1))
    print(json.dumps(res))


def folder_child(args):
    "Seconds per photo for `colorize_paths` on a folder, with batch size `bs`."
    import torch, warnings
    torch.set_num_threads(args.threads)
    from colorize_nbdev.modelfile import load_model
    from colorize_nbdev.inference import colorize_paths
    model, cfg = load_model(args.model, device='cpu')
    colorize_paths(model, cfg, [sorted(Path(args.photo).iterdir())[0]], Path(args.out)/'warm')
    t = time.perf_counter()
    rep = colorize_paths(model, cfg, args.photo, Path(args.out)/f'bs{args.bs}', bs=args.bs, overwrite=True)
    dt = time.perf_counter() - t
    print(json.dumps(dict(bs=args.bs, n=len(rep['written']), s_per_photo=dt/len(rep['written']), peak_rss_mb=round(_rss_mb(), 1))))


def _size(p):
    from PIL import Image
    with Image.open(p) as im: return im.size


def _run(mode, threads, **kw):
    cmd = [sys.executable, __file__, f"--{mode.replace('_', '-')}", '--threads', str(threads)] + [x for k, v in kw.items() for x in (f"--{k.replace('_', '-')}", str(v))]
    env = {**os.environ, 'OMP_NUM_THREADS': str(threads)}
    r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if r.returncode: raise RuntimeError(r.stderr)
    return json.loads(r.stdout.strip().splitlines()[-1])


def main(args):
    import torch
    from PIL import Image
    from colorize_nbdev.data.samples import sample_photos
    from colorize_nbdev.data.core import open_rgb
    from colorize_nbdev.modelfile import build_model, save_model
    import colorize_nbdev.models.regressor  # noqa: registers 'regressor'
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        torch.manual_seed(0)
        cfg = {'pretrained': False, 'size': 128}
        model = save_model(build_model('regressor', cfg), d/'regressor.pth', 'regressor', cfg)
        src = open_rgb(sample_photos()[args.photo_index])
        photos = {}
        for w, h in [(1024, 768), (4000, 3000)]:
            photos[(w, h)] = d/f'photo_{w}x{h}.jpg'
            src.resize((w, h), Image.BICUBIC).save(photos[(w, h)], quality=92)
        (d/'folder').mkdir()
        for i, p in enumerate(sample_photos()[:8]): open_rgb(p).resize((1024, 768), Image.BICUBIC).save(d/'folder'/f'{i}.jpg', quality=92)
        (d/'out').mkdir()
        res = dict(machine=dict(cpu=_cpu(), cores=os.cpu_count(), python=platform.python_version(), torch=torch.__version__),
                   model='regressor (untrained weights, pretrained=False)', render_size=args.render_size, threads=args.threads,
                   source_photo=sample_photos()[args.photo_index].name, date=time.strftime('%Y-%m-%d %H:%M'))
        res['photo_1024x768'] = _run('child', args.threads, model=model, photo=photos[(1024, 768)], out=d/'out', reps=args.reps, render_size=args.render_size)
        res['photo_4000x3000'] = _run('child', args.threads, model=model, photo=photos[(4000, 3000)], out=d/'out', reps=max(2, args.reps//3), render_size=args.render_size)
        res['folder_8x1024x768'] = [_run('folder_child', args.threads, model=model, photo=d/'folder', out=d/'out', bs=bs) for bs in (1, 8)]
    a, b = res['photo_1024x768'], res['photo_4000x3000']
    res['goals'] = dict(s_per_1024x768_photo_le_1=a['s_per_photo_median'] <= 1, peak_rss_le_1536_mb=a['peak_rss_mb'] <= 1536,
                        peak_rss_4000x3000_le_1536_mb=b['peak_rss_mb'] <= 1536)
    print(json.dumps(res, indent=2))
    if args.json: Path(args.json).write_text(json.dumps(res, indent=2) + '\n')


def _cpu():
    try: return next(l.split(':', 1)[1].strip() for l in open('/proc/cpuinfo') if l.startswith('model name'))
    except Exception: return platform.processor()


if __name__ == '__main__':
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--threads', type=int, default=2)
    p.add_argument('--reps', type=int, default=7, help='timed photos per size (after one warm-up)')
    p.add_argument('--render-size', type=int, default=256)
    p.add_argument('--photo-index', type=int, default=7, help='which bundled sample photo to upscale')
    p.add_argument('--json', help='write the results here')
    p.add_argument('--child', action='store_true', help=argparse.SUPPRESS)
    p.add_argument('--folder-child', action='store_true', help=argparse.SUPPRESS)
    p.add_argument('--model', help=argparse.SUPPRESS); p.add_argument('--photo', help=argparse.SUPPRESS)
    p.add_argument('--out', help=argparse.SUPPRESS); p.add_argument('--bs', type=int, default=8, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child: child(args)
    elif args.folder_child: folder_child(args)
    else: main(args)
