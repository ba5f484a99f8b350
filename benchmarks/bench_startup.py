#!/usr/bin/env python
"""What one `colorize` costs a user, against the floor any PyTorch program pays: wall time of

    colorize PHOTO --out DIR                        (no --model: the bundled day-one model, a timm classifier)
    colorize PHOTO --model MODEL --out DIR          (a ResNet-18 regressor, the course's first model; 256 px render)
    python -c "import torch, torchvision"           (the bare import)

run alternately (so both see the same machine load), `--trials` times each; the JSON has every time, both medians and
their ratios. The model is an untrained regressor built here (its weights do not change the time); the photo is the
first bundled sample photo.

    python benchmarks/bench_startup.py --trials 9 --json benchmarks/results/startup_cpu2.json
"""
import argparse, json, os, platform, shutil, statistics, subprocess, sys, tempfile, time
from pathlib import Path


def timed(cmd, env)->float:
    t = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--trials', type=int, default=9)
    ap.add_argument('--json', type=Path, default=None, help='write the results here')
    a = ap.parse_args(argv)
    import torch
    import colorize_nbdev.models.regressor  # noqa: F401  (registers 'regressor')
    from colorize_nbdev.modelfile import build_model, save_model
    from colorize_nbdev.data.samples import sample_photos
    exe = shutil.which('colorize', path=str(Path(sys.executable).parent)) or shutil.which('colorize')
    if not exe: sys.exit("bench_startup: the `colorize` command is not installed (pip install -e .)")
    env = {**os.environ, 'PYTHONWARNINGS': 'ignore'}
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        model = save_model(build_model('regressor', {'pretrained': False}), d/'regressor.pth', 'regressor', {'pretrained': False})
        photo = sample_photos()[0]
        bare_cmd = [sys.executable, '-c', 'import torch, torchvision']
        times = {'bare_import': [], 'colorize': [], 'colorize_default_model': []}
        for i in range(a.trials):
            times['bare_import'].append(timed(bare_cmd, env))
            times['colorize'].append(timed([exe, str(photo), '--model', str(model), '--out', str(d/f'out{i}')], env))
            times['colorize_default_model'].append(timed([exe, str(photo), '--out', str(d/f'def{i}')], env))
    med = {k: statistics.median(v) for k, v in times.items()}
    res = dict(trials=a.trials, seconds=times, median_seconds=med, ratio=med['colorize']/med['bare_import'],
               ratio_default_model=med['colorize_default_model']/med['bare_import'],
               photo=photo.name, render_size=256, model='regressor (untrained, ResNet-18 body)',
               command=' '.join(['python', 'benchmarks/bench_startup.py'] + (argv if argv is not None else sys.argv[1:])),
               machine=dict(cpu=_cpu(), cores=len(os.sched_getaffinity(0)), python=platform.python_version(),
                            torch=str(torch.__version__)))
    print(f"bare `import torch, torchvision`: median {med['bare_import']:.2f} s; colorize one photo: median "
          f"{med['colorize']:.2f} s (ratio {res['ratio']:.2f}); with the bundled model: {med['colorize_default_model']:.2f} s "
          f"(ratio {res['ratio_default_model']:.2f}); {a.trials} trials each, alternated")
    if a.json:
        a.json.parent.mkdir(parents=True, exist_ok=True)
        a.json.write_text(json.dumps(res, indent=1) + '\n')
    return res


def _cpu()->str:
    try:
        for l in Path('/proc/cpuinfo').read_text().splitlines():
            if l.startswith('model name'): return l.split(':', 1)[1].strip()
    except OSError: pass
    return platform.processor() or platform.machine()


if __name__ == '__main__': main()
