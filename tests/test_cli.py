"The console scripts, run as a user runs them: as commands, in a subprocess."
import json, os, shutil, subprocess, sys
from pathlib import Path

import pytest
from PIL import Image

BIN = Path(sys.executable).parent


def run(*args, cwd=None):
    exe = shutil.which(args[0], path=str(BIN)) or shutil.which(args[0])
    assert exe, f'{args[0]} is not installed: pip install -e . declares it in [project.scripts]'
    env = {**os.environ, 'OMP_NUM_THREADS': '2'}
    return subprocess.run([exe, *args[1:]], capture_output=True, text=True, cwd=cwd, env=env, timeout=300)


def test_demo_writes_grid_and_report(tmp_path):
    out = tmp_path/'demo'
    r = run('colorize-demo', '--out', str(out), '--n', '3', '--size', '64')
    assert r.returncode == 0, r.stderr
    rep = json.loads((out/'report.json').read_text())
    assert rep['n'] == 32 and rep['size'] == 64
    assert rep['max_abs_diff_vs_skimage'] <= 0.01 and rep['max_round_trip_error_uint8_steps'] <= 1
    assert rep['rgb_to_lab_img_per_s'] > 0 and rep['speedup_vs_skimage'] > 0
    w, h = Image.open(out/'lab_grid.jpg').size
    assert h > 3*64 and w > 5*64                 # 3 rows of 5 panels
    assert json.loads(r.stdout[:r.stdout.rindex('}') + 1]) == rep


def test_demo_bad_arguments_are_one_line_errors(tmp_path):
    mine = tmp_path/'notes.txt'
    mine.write_text('my notes')
    r = run('colorize-demo', '--out', str(mine))
    assert r.returncode == 1 and 'is not a folder' in r.stderr and 'Traceback' not in r.stderr
    assert mine.read_text() == 'my notes'        # nothing the user made is touched
    r = run('colorize-demo', '--out', str(tmp_path/'x'), '--n', '99')
    assert r.returncode == 1 and '--n must be between 1 and 32' in r.stderr


def test_demo_keeps_other_files_in_out(tmp_path):
    (tmp_path/'keep.txt').write_text('keep')
    assert run('colorize-demo', '--out', str(tmp_path), '--n', '1', '--size', '32').returncode == 0
    assert (tmp_path/'keep.txt').read_text() == 'keep'
