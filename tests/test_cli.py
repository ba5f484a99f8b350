"The console scripts, run as a user runs them: as commands, in a subprocess."
import json
from pathlib import Path

import pytest
from PIL import Image

from clitools import run   # tests/clitools.py


def test_demo_trains_colorizes_held_out_and_reuses(tmp_path):
    "A tiny budget: trains, colorizes the 8 held-out photos at their size, prints the table; a second run reuses the model."
    out = tmp_path/'demo'
    out.mkdir()
    (out/'keep.txt').write_text('keep')                                                  # the user's file in --out
    r = run('colorize-demo', '--out', str(out), '--train', '--minutes', '0.05', '--size', '32', '--n', '3')
    assert r.returncode == 0, r.stderr
    assert 'Training the lesson 03 regressor' in r.stdout and 'Traceback' not in r.stderr
    assert '| gray baseline (ab = 0) | 8 |' in r.stdout and '| demo regressor | 8 |' in r.stdout
    rep = json.loads((out/'report.json').read_text())
    held = rep['held_out']
    assert len(held) == 8 and not set(held) & set(rep['training']['train_photos'])     # held out: never trained on
    assert rep['scores']['model']['n'] == rep['scores']['gray']['n'] == 8
    assert rep['scores']['gray']['cf_ratio'] < 0.01 < rep['scores']['model']['cf_ratio']  # the model adds colour
    from colorize_nbdev.data.samples import sample_dir
    for name in held:                                                                    # full resolution
        assert Image.open(out/'held_out'/(Path(name).stem + '.png')).size == Image.open(sample_dir()/name).size
    w, h = Image.open(out/'demo_grid.jpg').size
    assert h > 3*160 and w > 3*160                                                       # 3 rows of gray | prediction | truth
    assert (out/'lab_grid.jpg').stat().st_size > 0 and (out/'demo_model.pth').stat().st_size > 0
    assert (out/'keep.txt').read_text() == 'keep'                                        # left alone
    assert not [p for p in out.iterdir() if p.name.startswith('.')]                     # no temporary model or checkpoint left
    r2 = run('colorize-demo', '--out', str(out), '--train', '--n', '3', '--size', '32')
    assert r2.returncode == 0, r2.stderr
    assert 'Reusing the model trained earlier' in r2.stdout and 'Training' not in r2.stdout
    assert json.loads((out/'report.json').read_text())['scores'] == rep['scores']
    (out/'demo_model.pth').write_bytes((out/'demo_model.pth').read_bytes()[:500])       # a damaged cache: clear error
    r3 = run('colorize-demo', '--out', str(out), '--train', '--n', '3')
    assert r3.returncode == 1 and '--retrain' in r3.stderr and 'Traceback' not in r3.stderr


def test_demo_shows_the_bundled_model_and_says_where_it_beats_gray(tmp_path):
    "No training by default: the day-one model on the 8 held-out photos, with a plain verdict naming PSNR, SSIM and AuC."
    out = tmp_path/'demo'
    r = run('colorize-demo', '--out', str(out), '--n', '3')
    assert r.returncode == 0, r.stderr
    assert 'Training' not in r.stdout and '| day-one model | 8 |' in r.stdout
    rep = json.loads((out/'report.json').read_text())
    assert rep['training'] is None and set(rep['beats_gray']) == {'psnr', 'ssim', 'auc'}
    v = rep['verdict']
    assert v in r.stdout and all(w in v for w in ('PSNR', 'SSIM', 'AuC', 'Colourfulness ratio'))
    for k in ('psnr', 'ssim', 'auc'):   # the words follow the numbers
        better = rep['scores']['model'][k] > rep['scores']['gray'][k]
        assert (f"({'better' if better else 'not better'})" in v.split(k.upper() if k != 'auc' else 'AuC', 1)[1][:40]), (k, v)
    assert not (out/'demo_model.pth').exists()
    r = run('colorize-demo', '--out', str(tmp_path/'y'), '--train', '--model', 'x.pth')
    assert r.returncode == 1 and 'not both' in r.stderr and 'Traceback' not in r.stderr


def test_demo_bad_arguments_are_one_line_errors(tmp_path):
    mine = tmp_path/'notes.txt'
    mine.write_text('my notes')
    r = run('colorize-demo', '--out', str(mine))
    assert r.returncode == 1 and 'is not a folder' in r.stderr and 'Traceback' not in r.stderr
    assert mine.read_text() == 'my notes'        # nothing the user made is touched
    r = run('colorize-demo', '--out', str(tmp_path/'x'), '--n', '99')
    assert r.returncode == 1 and '--n must be between 1 and 8' in r.stderr


def test_demo_verdict_never_calls_muted_colour_full():
    "colorize-demo's plain words: a CF ratio below 0.8 is called muted, with its share; beating gray on both scores or not is said."
    from colorize_nbdev.cli import verdict
    gray = dict(psnr=17.0, ssim=0.9, auc=81.0)
    v = verdict(dict(psnr=20.0, ssim=0.91, auc=86.0, cf_ratio=0.65, n=8), gray)
    assert 'muted: about 65% of it' in v and 'not better' not in v and 'treat its colours as guesses' not in v
    assert 'about as colourful as the photos' in verdict(dict(psnr=20.0, ssim=0.91, auc=86.0, cf_ratio=0.9, n=8), gray)
    assert 'nearly gray' in verdict(dict(psnr=17.1, ssim=0.9, auc=80.0, cf_ratio=0.1, n=8), gray)
    assert 'treat its colours as guesses' in verdict(dict(psnr=17.1, ssim=0.9, auc=80.0, cf_ratio=0.1, n=8), gray)
    assert 'garish' in verdict(dict(psnr=16.0, ssim=0.8, auc=79.0, cf_ratio=1.6, n=8), gray)


def test_every_console_script_lives_in_the_cli_module():
    "One CLI module: every [project.scripts] entry points into colorize_nbdev.cli, and each is a function there."
    import tomllib
    import colorize_nbdev.cli as cli
    root = Path(__file__).resolve().parents[1]
    scripts = tomllib.loads((root/'pyproject.toml').read_text())['project']['scripts']
    assert len(scripts) == 7
    for name, target in scripts.items():
        mod, fn = target.split(':')
        assert mod == 'colorize_nbdev.cli', (name, target)
        assert callable(getattr(cli, fn)), (name, fn)


@pytest.mark.parametrize('cmd', ['colorize', 'colorize-eval', 'colorize-train', 'colorize-demo', 'colorize-video', 'colorize-app'])
def test_help_shows_names_not_placeholders(cmd):
    "Every command's --help names its values (FOLDER, PX, MODEL, ...), never fastcore's '(str)'/'(int)', nor '(default: False)' on flags."
    r = run(cmd, '--help')
    assert r.returncode == 0, r.stderr
    for bad in ('(str)', '(int)', '(float)', 'default: False', 'default: None'): assert bad not in r.stdout, (cmd, bad)
    assert '--device DEVICE' in r.stdout or cmd in ('colorize-demo',)


@pytest.mark.parametrize('args,words', [
    (['colorize', 'x.jpg', '--out', 'o', '--device', 'gpu0'], ['--device gpu0']),
    (['colorize', 'x.jpg', '--out', 'o', '--render-size', '5000'], ['--render-size must be between 32 and 2048 pixels']),
    (['colorize-eval', 'nowhere', '--gray'], ['no such folder']),
    (['colorize-eval', '.', '--gray', '--size', '99999'], ['--size must be between 8 and 2048']),
    (['colorize-video', 'in.mp4', '--out', 'o.mp4', '--crf', '99'], ['--crf must be between 0 and 51']),
    (['colorize-app', '--port', '0'], ['--port must be between 1 and 65535']),
])
def test_the_shared_argument_checks_give_one_line(args, words, tmp_path):
    "The same checks in every command: one line, exit status 1, no traceback."
    from clitools import one_line_error
    one_line_error(run(*args, cwd=tmp_path), *words)
