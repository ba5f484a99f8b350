"""Running the console scripts as a user runs them (commands, in a subprocess), shared by the test files."""
import os, shutil, subprocess, sys
from pathlib import Path

BIN = Path(sys.executable).parent
QUIET = {'OMP_NUM_THREADS': '1', 'PYTHONWARNINGS': 'ignore'}   # tiny runs on a shared 2-core machine, no warning noise


def command(*args, env=None)->tuple:
    "(argv, environment) for console script `args[0]` of this environment with arguments `args[1:]`; `env` adds variables."
    exe = shutil.which(args[0], path=str(BIN)) or shutil.which(args[0])
    assert exe, f'{args[0]} is not installed: pip install -e . declares it in [project.scripts]'
    return [exe, *map(str, args[1:])], {**os.environ, 'OMP_NUM_THREADS': '2', **(env or {})}


def run(*args, cwd=None, env=None):
    "Run console script `args[0]`; the `CompletedProcess` (text output captured)."
    c, e = command(*args, env=env)
    return subprocess.run(c, capture_output=True, text=True, cwd=cwd, env=e, timeout=300)


def one_line_error(r, *words, after_progress:bool=False):
    """The command failed with exit status 1 and a one-line message containing `words`, no traceback.
    `after_progress`: download progress lines may come before that line (it must then be the last one)."""
    assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
    lines = [l for l in r.stderr.strip().splitlines() if l.strip()]
    assert lines and 'Traceback' not in r.stderr, r.stderr
    if not after_progress: assert len(lines) == 1, r.stderr
    assert all(w in lines[-1] for w in words), lines[-1]
