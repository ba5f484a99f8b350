"""Lesson 04's GAN (`colorize_nbdev.models.gan`) through the course's trainer and CLIs: `colorize-train --arch gan|unet`,
checkpoints with both networks and both optimizers, exact resume, the collapse warning, and loading without flags."""
import json, warnings

import pytest
import torch

warnings.filterwarnings('ignore', message='.*torch.jit.script.* is deprecated', category=FutureWarning)
from fastai.callback.core import Callback
from fastcore.script import CliError
from colorize_nbdev.data.samples import sample_photos
from colorize_nbdev.modelfile import load_model
from colorize_nbdev.models.gan import GANColorizer, UnetColorizer, PatchDiscriminator
from colorize_nbdev import train as T
from colorize_nbdev import cli as C

from clitools import QUIET, run as run_cli   # tests/clitools.py


def run(*args, cwd=None): return run_cli(*args, cwd=cwd, env=QUIET)

CPU = dict(num_workers=0, device='cpu', progress=False, verbose=False)
TINY = dict(nf=8, n_down=4, d_nf=8)


def test_cli_trains_gan_and_unet_then_eval_and_colorize_load_them(photos, tmp_path):
    for arch in ('gan', 'unet'):
        out = tmp_path/f'{arch}.pth'
        r = run('colorize-train', '--arch', arch, '--data', str(photos), '--out', str(out), '--epochs', '2', '--size', '32',
                '--bs', '4', '--workers', '0', '--device', 'cpu', '--opts', 'nf=8,n_down=4' + (',d_nf=8' if arch == 'gan' else ''))
        assert r.returncode == 0, r.stderr
        assert f'Saved {out} ({arch}, size 32)' in r.stdout
        if arch == 'gan': assert 'd_loss' in r.stdout and 'd_real' in r.stdout   # the GAN's columns in the epoch table
        net, cfg = load_model(out, device='cpu')
        assert type(net) is {'gan': GANColorizer, 'unet': UnetColorizer}[arch] and cfg['nf'] == 8
        # only the generator is in the model file: the discriminator lives in the checkpoint
        assert not any(k.startswith('disc') for k in net.state_dict())
    r = run('colorize-eval', '--model', str(tmp_path/'gan.pth'), '--data', str(photos), '--size', '32', '--json', '--device', 'cpu')
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)
    assert res['n'] == 12 and res['baseline']['cf_ratio'] < 0.01 and res['psnr'] > 10
    r = run('colorize', str(photos/sample_photos()[0].name), '--model', str(tmp_path/'gan.pth'), '--out', str(tmp_path/'out'), '--device', 'cpu')
    assert r.returncode == 0, r.stderr
    assert len(list((tmp_path/'out').glob('*.png'))) == 1


def test_checkpoint_holds_both_networks_and_optimizers(photos, tmp_path):
    T.fit_colorizer('gan', photos, tmp_path/'g.pth', epochs=1, size=32, bs=4, arch_kwargs={**TINY, 'adv_start': 0.}, **CPU)
    ck = T.load_checkpoint(tmp_path/'g.ckpt'/T.CKPT_NAME)
    g = ck['extra']['gan']
    assert set(ck['model']) == set(GANColorizer(**TINY).state_dict())              # the generator ...
    assert set(g['disc']) == set(PatchDiscriminator(3, nf=8).state_dict())          # ... and the discriminator
    assert ck['opt']['state'] and g['d_opt']['state'] and g['n_batches'] == 2       # both optimizers, with their moments


class Disconnect(Exception): pass

class StopAt(Callback):
    order = 90
    def __init__(self, n): self.n = n
    def after_batch(self):
        if self.training and self.train_iter == self.n: raise Disconnect('session lost')


def test_resume_equals_uninterrupted_run(photos, tmp_path):
    kw = dict(epochs=2, size=32, bs=4, ckpt_minutes=0, arch_kwargs={**TINY, 'adv_start': 0.25}, **CPU)
    a = T.fit_colorizer('gan', photos, tmp_path/'a.pth', **kw)
    with pytest.raises(Disconnect): T.fit_colorizer('gan', photos, tmp_path/'b.pth', cbs=[StopAt(3)], **kw)
    b = T.fit_colorizer('gan', photos, tmp_path/'b.pth', resume=True, **CPU)
    assert b.report['resumed']['train_iter'] == 3 and b.report['iterations'] == a.report['iterations'] == 4
    for name in ('a', 'b'): assert (tmp_path/f'{name}.pth').exists()
    sa, sb = load_model(tmp_path/'a.pth', 'cpu')[0].state_dict(), load_model(tmp_path/'b.pth', 'cpu')[0].state_dict()
    for k in sa: torch.testing.assert_close(sa[k], sb[k], rtol=1e-5, atol=1e-6)
    da = T.load_checkpoint(tmp_path/'a.ckpt'/T.CKPT_NAME)['extra']['gan']['disc']
    db = T.load_checkpoint(tmp_path/'b.ckpt'/T.CKPT_NAME)['extra']['gan']['disc']
    for k in da: torch.testing.assert_close(da[k], db[k], rtol=1e-5, atol=1e-6)
    assert b.report['d_loss'] == pytest.approx(a.report['d_loss'], abs=1e-5)


def test_collapse_warning(photos, tmp_path):
    "A discriminator that keeps winning in the adversarial phase is reported, once; before that phase it is not watched."
    with pytest.warns(UserWarning, match='discriminator'):
        T.fit_colorizer('gan', photos, None, epochs=2, size=32, bs=4, arch_kwargs={**TINY, 'adv_start': 0.}, cbs=[_Lower()], **CPU)
    with warnings.catch_warnings(record=True) as seen:   # L1 phase only (adv_start near 1): no collapse warning
        warnings.simplefilter('always')
        T.fit_colorizer('gan', photos, None, epochs=2, size=32, bs=4, arch_kwargs={**TINY, 'adv_start': 0.99}, cbs=[_Lower()], **CPU)
    assert not [w for w in seen if 'discriminator' in str(w.message)]


class _Lower(Callback):
    "Make the collapse test quick: warn after 3 low steps, at a generous threshold."
    order = 0
    def before_fit(self): self.learn.gan.collapse_steps, self.learn.gan.collapse_loss = 3, 10.   # every step counts as "low"


def test_bad_options_are_one_line_errors(photos, tmp_path):
    def err(**kw):
        with pytest.raises(CliError) as e: C.colorize_train(**{'arch': 'gan', 'data': str(photos), 'out': str(tmp_path/'m.pth'), **kw})
        return str(e.value)
    assert err(opts='d_ratio=3:2') .startswith("d_ratio must look like")
    assert err(opts='generator=vgg').startswith("generator must be one of")
    assert err(opts='wings=2').startswith("--opts: wings: not an option of architecture 'gan'")
    assert err(opts='nf').startswith("--opts: 'nf' is not key=value")
    assert not (tmp_path/'m.pth').exists()
