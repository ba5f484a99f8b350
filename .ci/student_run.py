#!/usr/bin/env python
"""Do what a student does, for every lesson: build the wheel, install it into a fresh venv, copy the lesson alone
into an empty folder, and run every cell top to bottom on a CPU ("Run all" on Colab or Kaggle without a GPU:
nbdev's `#| slow` / `#| cuda` / `eval: false` flags are ignored). Fails if any cell of any lesson fails.

    python .ci/student_run.py [--jobs N] [--timeout S] [nbs/03_regressor.ipynb ...]   (default: every lesson, nbs/0_*.ipynb and nbs/[0-8][0-9]_*.ipynb)

What is real and what is not:
- the wheel is built from the files a fresh clone has (tracked + untracked-not-ignored), installed with --no-deps
  into a new venv; the dependencies (torch, fastai, ...) are not installed again but read from CI's own venv (a
  `.pth` entry appended to the new venv's path: installing torch anew would cost minutes and gigabytes; the
  package's own code, data files and entry points come from the wheel only, which the run asserts);
- each lesson runs in its own empty folder with a fresh HOME, no GPU (CUDA_VISIBLE_DEVICES=''), one torch thread per
  lesson, and no network (HTTP(S) proxies point at a closed port), so a lesson that needs the repository, a GPU or a
  download fails here as it would on a student's runtime.
"""
import argparse, os, shutil, subprocess, sys, sysconfig, tempfile, time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent

def sh(cmd, **kw):
    r = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if r.returncode: sys.exit(f"FAILED: {' '.join(map(str, cmd))}\n{r.stdout}\n{r.stderr}")
    return r.stdout

def source_copy(dest: Path) -> Path:
    "The files a fresh clone has: git's tracked and untracked-but-not-ignored files."
    out = subprocess.run(['git', 'ls-files', '-z', '--cached', '--others', '--exclude-standard'], cwd=ROOT,
                         capture_output=True, check=True).stdout.decode()
    for f in filter(None, out.split('\0')):
        if (ROOT/f).is_file():
            (dest/f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT/f, dest/f)
    return dest

def fresh_venv(tmp: Path) -> Path:
    "A new venv with the wheel installed (no deps) and CI's site-packages appended for the dependencies; its python."
    src = source_copy(tmp/'src')
    sh([sys.executable, '-m', 'pip', 'wheel', '.', '--no-deps', '--no-build-isolation', '-q', '-w', str(tmp/'dist')],
       cwd=src, env={**os.environ, 'PIP_NO_INPUT': '1'})
    wheel, = (tmp/'dist').glob('colorize_nbdev-*.whl')
    venv = tmp/'venv'
    sh([sys.executable, '-m', 'venv', str(venv)])
    py = venv/'bin'/'python'
    site = Path(sh([str(py), '-c', 'import sysconfig; print(sysconfig.get_paths()["purelib"])']).strip())
    deps = {sysconfig.get_paths()['purelib'], sysconfig.get_paths()['platlib']}
    (site/'zz_ci_dependencies.pth').write_text(''.join(f"{p}\n" for p in sorted(deps)))
    sh([str(py), '-m', 'pip', 'install', '-q', '--no-deps', '--no-index', str(wheel)], env={**os.environ, 'PIP_NO_INPUT': '1'})
    where = sh([str(py), '-c', 'import colorize_nbdev, os; print(os.path.realpath(colorize_nbdev.__file__))'], cwd=tmp).strip()
    if not where.startswith(str(venv.resolve())): sys.exit(f"FAILED: colorize_nbdev comes from {where}, not from the wheel in {venv}")
    print(f"wheel {wheel.name} installed in a fresh venv ({where})", flush=True)
    return py

def run_lesson(py: Path, nb: Path, tmp: Path, timeout: int) -> tuple:
    work, home = tmp/'lessons'/nb.stem, tmp/'homes'/nb.stem
    work.mkdir(parents=True); home.mkdir(parents=True)
    shutil.copy2(nb, work/nb.name)                       # the lesson alone
    env = {k: v for k, v in os.environ.items() if not k.startswith(('VIRTUAL_ENV', 'PYTHON', 'KAGGLE_', 'CONDA'))}
    dead = 'http://127.0.0.1:9'                          # nothing listens there: any download fails at once
    env.update(HOME=str(home), CUDA_VISIBLE_DEVICES='', OMP_NUM_THREADS='1', MKL_NUM_THREADS='1', MPLBACKEND='Agg',
               PATH=f"{py.parent}:{env.get('PATH', '')}", http_proxy=dead, https_proxy=dead, HTTP_PROXY=dead,
               HTTPS_PROXY=dead, no_proxy='', NO_PROXY='', PIP_NO_INDEX='1', PYTHONUNBUFFERED='1')
    t = time.time()
    try:
        r = subprocess.run([str(py), str(HERE/'exec_lesson.py'), str(work/nb.name), '--timeout', str(timeout)],
                           cwd=work, env=env, capture_output=True, text=True, timeout=timeout + 60)
        ok, log = r.returncode == 0, r.stdout + r.stderr
    except subprocess.TimeoutExpired as e:
        ok, log = False, f"FAILED: {nb.name} took more than {timeout + 60} s\n{e.stdout or ''}"
    left = sorted(p.name for p in work.iterdir() if p.name != nb.name)
    return nb.name, ok, time.time() - t, log, left

def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('lessons', nargs='*', help='notebooks (default: the lessons, nbs/0_*.ipynb and nbs/[0-8][0-9]_*.ipynb)')
    ap.add_argument('--jobs', type=int, default=len(os.sched_getaffinity(0)))
    ap.add_argument('--timeout', type=int, default=600, help='seconds per cell')
    a = ap.parse_args()
    lessons = [Path(p).resolve() for p in a.lessons] or sorted(ROOT.glob('nbs/0_*.ipynb')) + sorted(ROOT.glob('nbs/[0-8][0-9]_*.ipynb'))
    with tempfile.TemporaryDirectory(prefix='student-run-') as d:
        tmp = Path(d)
        py = fresh_venv(tmp)
        t0, res = time.time(), []
        with ThreadPoolExecutor(a.jobs) as ex:
            for name, ok, secs, log, left in ex.map(lambda nb: run_lesson(py, nb, tmp, a.timeout), lessons):
                res.append((name, ok, secs))
                print(f"{'ok    ' if ok else 'FAILED'} {name:32s} {secs:6.0f} s" + (f"  (left in its folder: {', '.join(left[:6])})" if left else ''), flush=True)
                if not ok: print(log[-6000:], flush=True)
        print(f"{sum(ok for _, ok, _ in res)} of {len(res)} lessons ran top to bottom from the wheel in {time.time() - t0:.0f} s "
              f"({a.jobs} at a time)")
        return 0 if all(ok for _, ok, _ in res) else 1

if __name__ == '__main__': sys.exit(main())
