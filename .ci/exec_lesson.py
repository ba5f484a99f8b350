"""Run every code cell of one notebook, top to bottom, as "Run all" does on Colab or Kaggle: nbdev's flags
(`#| slow`, `#| cuda`, `#| eval: false`) are ignored, IPython magics and `!` commands work. Stops at the first
error, printing the cell and its traceback, and exits 1. Used by .ci/student_run.py, with a fresh venv's Python.

    python exec_lesson.py LESSON.ipynb [--timeout SECONDS]
"""
import sys, time
from pathlib import Path
from execnb.shell import CaptureShell, read_nb

def main(argv):
    nb_path = Path(argv[0]).resolve()
    timeout = int(argv[argv.index('--timeout') + 1]) if '--timeout' in argv else None
    nb = read_nb(nb_path)
    sh = CaptureShell()
    sh.set_path(str(nb_path.parent))
    code = [(i, c) for i, c in enumerate(nb.cells) if c.cell_type == 'code']
    t0 = time.time()
    for n, (i, c) in enumerate(code):
        t = time.time()
        sh.cell(c, timeout=timeout)
        err = [o for o in c.get('outputs', []) if o.get('output_type') == 'error']
        if sh.exc is not None or err:
            tb = '\n'.join(err[0].get('traceback', [])) if err else repr(sh.exc)
            print(f"FAILED: {nb_path.name}, cell {i} (code cell {n + 1} of {len(code)}):\n{c.source}\n---\n{tb}", flush=True)
            return 1
        print(f"  cell {i:3d}: {time.time() - t:6.1f} s", flush=True)
    print(f"OK: {nb_path.name}: {len(code)} code cells in {time.time() - t0:.0f} s", flush=True)
    return 0

if __name__ == '__main__': sys.exit(main(sys.argv[1:]))
