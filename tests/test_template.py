"""The template model (nbs/89_template.ipynb): it keeps the contract and goes through the three commands with nothing else."""
import json, shutil

from colorize_nbdev.contract import check_colorizer
from colorize_nbdev.data.samples import sample_photos
from colorize_nbdev.modelfile import load_model
import colorize_nbdev.models.template  # noqa: F401  (registers 'template')

from clitools import QUIET, run


def test_template_keeps_the_contract():
    info = check_colorizer('template')
    assert info['multiple'] == 4 and info['train_defaults']['size'] == 64


def test_template_through_train_colorize_eval(tmp_path):
    photos = tmp_path/'photos'; photos.mkdir()
    for p in sample_photos()[:8]: shutil.copy(p, photos)
    r = run('colorize-train', '--arch', 'template', '--data', photos, '--out', tmp_path/'t.pth', '--epochs', 1, '--size', 32, env=QUIET)
    assert r.returncode == 0, r.stderr
    net, cfg = load_model(tmp_path/'t.pth', device='cpu')
    assert type(net).__name__ == 'TemplateColorizer' and cfg['size'] == 32 and cfg['width'] == 32
    r = run('colorize', sample_photos()[0], '--model', tmp_path/'t.pth', '--out', tmp_path/'out', env=QUIET)
    assert r.returncode == 0, r.stderr
    assert len(list((tmp_path/'out').glob('*.png'))) == 1
    r = run('colorize-eval', photos, '--model', tmp_path/'t.pth', '--json', env=QUIET)
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)
    assert res['n'] == 8 and res['baseline']['n'] == 8
