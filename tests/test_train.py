"""Training machinery (`colorize_nbdev.train`): resume after SIGKILL, atomic checkpoints, NaN stop, time budget, exact resume,
and `colorize-train`'s argument errors. Tiny sizes and a few bundled photos: seconds each."""
import os, signal, subprocess, time, warnings

import pytest
import torch
from torch import nn

warnings.filterwarnings('ignore', message='.*torch.jit.script.* is deprecated', category=FutureWarning)
from fastai.callback.core import Callback
from fastcore.script import CliError
from colorize_nbdev.data.samples import sample_batch
from colorize_nbdev.color import rgb_to_lab_norm
from colorize_nbdev.metrics import model_colorizer
from colorize_nbdev.modelfile import load_model, register_arch
from colorize_nbdev import train as T
from colorize_nbdev import cli as C

from clitools import QUIET, command, one_line_error, run as run_cli   # tests/clitools.py


def run(*args, cwd=None): return run_cli(*args, cwd=cwd, env=QUIET)

CPU = dict(num_workers=0, device='cpu', progress=False, verbose=False)

# an architecture defined outside the package, for the command-line runs (imported with --module); `delay` slows each
# training forward pass so that a run can be killed between its checkpoints
SLOW_ARCH = '''
import time, torch
from colorize_nbdev.modelfile import register_arch

class Slow(torch.nn.Module):
    def __init__(self, hidden=4, delay=0.1):
        super().__init__()
        self.delay = delay
        self.net = torch.nn.Sequential(torch.nn.Conv2d(1, hidden, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(hidden, 2, 3, padding=1))
    def forward(self, x):
        if self.training: time.sleep(self.delay)
        return self.net(x)

register_arch('test-train-slow')(Slow)
'''


@register_arch('test-train-tiny')
def tiny(hidden: int = 4):
    return nn.Sequential(nn.Conv2d(1, hidden, 3, padding=1), nn.ReLU(), nn.Conv2d(hidden, 2, 3, padding=1))


def colorizes(model_path, size=32):
    "The model file loads without flags and colorizes photos: RGB of the right shape, not gray."
    net, cfg = load_model(model_path, device='cpu')
    L, _ = rgb_to_lab_norm(sample_batch(4, size))
    rgb = model_colorizer(net, cfg)(L)
    assert rgb.shape == (4, 3, size, size) and torch.isfinite(rgb).all()
    return cfg


def test_sigkill_after_first_checkpoint_then_resume(photos, tmp_path, monkeypatch):
    plug = tmp_path/'plug'; plug.mkdir()
    (plug/'cz_train_slow.py').write_text(SLOW_ARCH)
    out = tmp_path/'slow.pth'
    ck = tmp_path/'slow.ckpt'/T.CKPT_NAME
    args = ('colorize-train', '--arch', 'test-train-slow', '--module', 'cz_train_slow', '--data', str(photos), '--out', str(out),
            '--epochs', '4', '--size', '32', '--bs', '4', '--workers', '0', '--device', 'cpu', '--ckpt-minutes', '0.002')
    c, env = command(*args, env=QUIET)
    p = subprocess.Popen(c, cwd=plug, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    t = time.monotonic()
    while not ck.exists() and p.poll() is None and time.monotonic() - t < 120: time.sleep(0.01)
    assert p.poll() is None, f"the run ended before it could be killed: {p.communicate()}"
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    st = T.load_checkpoint(ck)['state']
    assert not st['done'] and st['train_iter'] < 4*2 and not out.exists()   # killed part way: 4 epochs of 2 batches
    r = run(*args, '--resume', cwd=plug)
    assert r.returncode == 0, r.stderr
    assert f"Resumed from {ck}: epoch {st['epoch']}" in r.stdout and f"(iteration {st['train_iter']})" in r.stdout, r.stdout
    done = T.load_checkpoint(ck)['state']
    assert done['done'] and done['epoch'] == 4 and done['train_iter'] == 8
    monkeypatch.syspath_prepend(str(plug))
    import cz_train_slow                                   # registers the architecture in this process too
    assert colorizes(out)['delay'] == 0.1


class Disconnect(Exception): pass


class StopAt(Callback):
    "A lost session after training iteration `n` (its checkpoint written first)."
    order = 90
    def __init__(self, n): self.n = n
    def after_batch(self):
        if self.training and self.train_iter == self.n: raise Disconnect('session lost')


@pytest.mark.parametrize('stop', [2, 3])   # 2 batches an epoch. 2: killed at epoch 1's end, before its epoch checkpoint; 3: within epoch 2
def test_resume_equals_uninterrupted_run(photos, tmp_path, stop):
    kw = dict(epochs=2, size=32, bs=4, lr=3e-3, ckpt_minutes=0, **CPU)   # ckpt_minutes=0: a checkpoint after every batch
    a = T.fit_colorizer('test-train-tiny', photos, tmp_path/'a.pth', **kw)
    with pytest.raises(Disconnect): T.fit_colorizer('test-train-tiny', photos, tmp_path/'b.pth', cbs=[StopAt(stop)], **kw)
    assert not (tmp_path/'b.pth').exists()
    b = T.fit_colorizer('test-train-tiny', photos, tmp_path/'b.pth', resume=True, **CPU)
    assert b.report['resumed']['train_iter'] == (stop if stop % 2 else stop - 1) and b.report['iterations'] == a.report['iterations']
    sa, sb = load_model(tmp_path/'a.pth', 'cpu')[0].state_dict(), load_model(tmp_path/'b.pth', 'cpu')[0].state_dict()
    for k in sa: torch.testing.assert_close(sa[k], sb[k], rtol=1e-5, atol=1e-6)
    assert b.report['psnr'] == pytest.approx(a.report['psnr'], abs=1e-4)


def test_checkpoint_survives_a_killed_save(photos, tmp_path, monkeypatch):
    T.fit_colorizer('test-train-tiny', photos, tmp_path/'m.pth', epochs=1, size=32, bs=4, **CPU)
    ck = tmp_path/'m.ckpt'/T.CKPT_NAME
    good = ck.read_bytes()
    (ck.parent/f'.{T.CKPT_NAME}.12345.tmp').write_bytes(good[:100])   # a save killed half way, in another process
    def dies_half_way(obj, f, *a, **k):
        f.write(good[:len(good)//2]); raise OSError('disk full')
    monkeypatch.setattr(T.torch, 'save', dies_half_way)
    with pytest.raises(OSError, match='disk full'): T.atomic_save({'format': T.CKPT_FORMAT}, ck)
    monkeypatch.undo()
    assert ck.read_bytes() == good and [p.name for p in ck.parent.iterdir()] == [T.CKPT_NAME]
    r = T.fit_colorizer('test-train-tiny', photos, tmp_path/'m.pth', resume=True, **CPU)   # the finished run, resumed
    assert r.report['resumed']['done'] and r.report['resumed']['epoch'] == 1
    # a damaged checkpoint is a clear error, not a pickle traceback
    ck.write_bytes(good[:len(good)//3])
    with pytest.raises(T.CheckpointError, match='damaged checkpoint'): T.fit_colorizer('test-train-tiny', photos, tmp_path/'m.pth', resume=True, **CPU)


class Poison(Callback):
    "The loss turns NaN in the second epoch (as with a learning rate far too high)."
    order = 20
    def after_pred(self):
        if self.training and self.epoch == 1: self.learn.pred = self.pred*float('nan')


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(photos, tmp_path):
    with pytest.raises(T.NonFiniteLossError) as e:
        T.fit_colorizer('test-train-tiny', photos, tmp_path/'n.pth', epochs=3, size=32, bs=4, cbs=[Poison()], **CPU)
    msg = str(e.value)
    assert msg.startswith('Training stopped: the training loss became nan at epoch 2, batch 1') and '\n' not in msg
    assert 'the last good checkpoint is kept' in msg and '(1 epochs + 0 batches done)' in msg
    ck = T.load_checkpoint(tmp_path/'n.ckpt'/T.CKPT_NAME)
    assert ck['state']['epoch'] == 1 and all(torch.isfinite(v).all() for v in ck['model'].values())
    assert not (tmp_path/'n.pth').exists()


class FakeClock:
    "Stands in for the `time` module in `colorize_nbdev.train`: its clock moves only when `Tick` says so."
    def __init__(self): self.t = 0.
    def monotonic(self): return self.t


class Tick(Callback):
    "Advance a `FakeClock` by `dt` seconds at the end of every training batch (before `Budget` reads it)."
    order = 60
    def __init__(self, clock, dt): self.clock, self.dt = clock, dt
    def after_batch(self):
        if self.training: self.clock.t += self.dt


def test_minutes_budget(photos, tmp_path, monkeypatch):
    """`minutes`: stops at the budget, the schedule warmed up then annealed by the clock, a usable model. The clock is a fake
    one that moves 0.25 s per batch, so the outcome is exact on any machine, however fast or loaded."""
    clock = FakeClock()
    monkeypatch.setattr(T, 'time', clock)
    out = tmp_path/'timed.pth'
    learn = T.fit_colorizer('test-train-tiny', photos, out, minutes=0.05, size=32, bs=4, cbs=[Tick(clock, 0.25)], **CPU)
    st, h = T.load_checkpoint(tmp_path/'timed.ckpt'/T.CKPT_NAME)['state'], learn.recorder
    assert st['done'] and st['elapsed'] == 3 and st['train_iter'] == 12   # a 3 s budget is 12 batches of 0.25 s
    assert st['stopped_at'] >= 3                                         # the clock reading that stopped it, kept in the checkpoint
    assert h.lrs[-1] < h.lrs[0] < max(h.lrs) and h.lrs[-1] < 0.05*max(h.lrs)   # warmed up, then annealed to the end
    assert all(len(v) == 4 for v in h.values)                               # train loss kept for the epoch cut short
    assert learn.report['train_loss'] is not None and learn.report['psnr'] is not None
    assert colorizes(out)['size'] == 32


def test_the_lessons_regressor_trains_and_colorizes(photos, tmp_path):
    T.import_archs()
    if 'regressor' not in T.ARCHS: pytest.skip('colorize_nbdev.models has no regressor yet')
    learn = T.fit_colorizer('regressor', photos, tmp_path/'reg.pth', epochs=1, size=32, bs=4, pretrained=False, **CPU)
    assert learn.report['psnr'] > 0 and learn.report['cf_ratio'] is not None
    cfg = colorizes(tmp_path/'reg.pth')
    assert cfg['size'] == 32 and cfg['pretrained'] is False   # loading never downloads: the weights are in the file


def test_after_the_run_the_learner_is_a_plain_fastai_learner(photos, tmp_path):
    "fit_colorizer's Learner validates, predicts and trains on afterwards; the run's checkpoint is left as the run wrote it."
    T.import_archs()
    learn = T.fit_colorizer('regressor', photos, tmp_path/'reg.pth', epochs=1, size=32, bs=4, pretrained=False, **CPU)
    ck = tmp_path/'reg.ckpt'/'checkpoint.pth'
    before = ck.read_bytes()
    assert not any(isinstance(cb, (T.Budget, T.Checkpoint)) for cb in learn.cbs)
    loss, psnr, cf = learn.validate()
    assert abs(loss - learn.report['valid_loss']) < 1e-4*max(1., abs(loss)) and abs(psnr - learn.report['psnr']) < 1e-3
    preds, targs = learn.get_preds()
    assert preds.shape == targs.shape and preds.shape[1] == 2
    learn.fit_one_cycle(1, 1e-4)
    assert len(learn.recorder.values) == 1 and ck.read_bytes() == before


def test_bad_arguments_are_one_line_errors(photos, tmp_path):
    mine = tmp_path/'notes.pth'
    mine.write_text('my notes')
    # as a command: one line on stderr, exit status 1, the user's file untouched
    one_line_error(run('colorize-train', '--arch', 'regressor', '--data', str(photos), '--out', str(mine)),
                   'notes.pth', 'is not a colorize-nbdev model file')
    assert mine.read_text() == 'my notes'
    # the other checks, in this process (a command costs seconds of imports): the same `CliError`s
    def err(**kw):
        with pytest.raises(CliError) as e: C.colorize_train(**{'arch': 'regressor', 'data': str(photos), 'out': str(tmp_path/'m.pth'), **kw})
        return str(e.value)
    assert err(epochs=2, minutes=1) == 'give --epochs or --minutes, not both'
    assert err(data=str(tmp_path/'nowhere')) == f"--data {tmp_path/'nowhere'}: no such folder"
    assert err(data=str(mine)).endswith('is not a folder (give the folder that holds the photos)')
    assert err(arch='nope').startswith('--arch nope: unknown architecture; registered:')
    assert err(pretrained=True, no_pretrained=True) == 'give --pretrained or --no-pretrained, not both'
    assert err(loss='l3').startswith("--loss must be one of l1, mse, huber")
    assert not (tmp_path/'m.pth').exists()


def test_resume_with_other_settings_is_refused(photos, tmp_path):
    T.fit_colorizer('test-train-tiny', photos, tmp_path/'s.pth', epochs=1, size=32, bs=4, **CPU)
    with pytest.raises(FileExistsError, match='pass resume=True'):
        T.fit_colorizer('test-train-tiny', photos, tmp_path/'s.pth', epochs=1, size=32, bs=4, **CPU)
    with pytest.raises(ValueError, match='size=48'):
        T.fit_colorizer('test-train-tiny', photos, tmp_path/'s.pth', size=48, resume=True, **CPU)


@pytest.mark.parametrize('cap,want', [((6, 0), 'fp16'), ((7, 0), 'fp16'), ((7, 5), 'fp16'), ((8, 0), 'bf16'), ((9, 0), 'bf16')])
def test_amp_mode_bf16_only_where_native(cap, want, monkeypatch):
    "P100/V100/T4 get fp16 with a GradScaler even though `is_bf16_supported()` says True there (emulation); A100+ get bf16."
    monkeypatch.setattr(torch.cuda, 'get_device_capability', lambda d=None: cap)
    monkeypatch.setattr(torch.cuda, 'is_bf16_supported', lambda including_emulation=True: True)
    assert T.amp_mode('cuda') == want and T.amp_mode(torch.device('cuda:0'), True) == want
    assert T.amp_mode('cuda', amp=False) is None and T.amp_mode('cpu') is None


def test_command_into_a_log_file_prints_the_epoch_table_not_progress_bars(photos, tmp_path):
    "colorize-train > train.log: one header and one row per epoch, no redrawn bars (carriage returns, bar glyphs)."
    T.import_archs()
    if 'regressor' not in T.ARCHS: pytest.skip('colorize_nbdev.models has no regressor yet')
    r = run('colorize-train', '--arch', 'regressor', '--data', str(photos), '--out', str(tmp_path/'r.pth'), '--epochs', '2',
            '--size', '32', '--bs', '4', '--no-pretrained', '--workers', '0')
    assert r.returncode == 0, r.stderr
    assert '\r' not in r.stdout + r.stderr and '█' not in r.stdout + r.stderr
    rows = [l.split() for l in r.stdout.splitlines() if l.split() and l.split()[0] in ('0', '1')]
    assert len(rows) == 2 and 'train_loss' in r.stdout


def test_device_cuda_without_a_gpu_is_one_line(photos, tmp_path):
    if torch.cuda.is_available(): pytest.skip('a CUDA GPU is present')
    one_line_error(run('colorize-train', '--arch', 'regressor', '--data', str(photos), '--out', str(tmp_path/'r.pth'),
                       '--device', 'cuda'), '--device cuda', 'no CUDA GPU')


def test_fine_tuning_starts_from_the_init_file(photos, tmp_path):
    "init=MODEL: the run starts from that file's weights and constructor options; arch=None takes the file's architecture."
    T.fit_colorizer('test-train-tiny', photos, tmp_path/'a.pth', epochs=1, size=32, bs=4, arch_kwargs=dict(hidden=6), **CPU)
    seen = {}
    class Grab(Callback):
        def before_fit(self): seen['w'] = {k: v.detach().clone() for k, v in self.learn.model.state_dict().items()}
    learn = T.fit_colorizer(None, photos, tmp_path/'b.pth', init=tmp_path/'a.pth', epochs=1, size=32, bs=4, cbs=[Grab()], **CPU)
    start = load_model(tmp_path/'a.pth', device='cpu')[0].state_dict()
    assert all(torch.equal(seen['w'][k], v) for k, v in start.items())          # the first step starts from a.pth's weights
    net, cfg = load_model(tmp_path/'b.pth', device='cpu')
    assert cfg['hidden'] == 6 and learn.report['arch'] == 'test-train-tiny'
    assert not all(torch.equal(net.state_dict()[k], v) for k, v in start.items())   # and it trained
    with pytest.raises(ValueError, match="is a 'test-train-tiny' model; fine-tuning keeps the architecture"):
        T.fit_colorizer('regressor', photos, tmp_path/'c.pth', init=tmp_path/'a.pth', epochs=1, **CPU)
    with pytest.raises(ValueError, match='give arch, or init'): T.fit_colorizer(None, photos, tmp_path/'c.pth', epochs=1, **CPU)


def test_colorize_train_init_by_name_and_its_errors(photos, tmp_path):
    "colorize-train --init NAME|FILE: the architecture comes from the model; a wrong --arch, a bad name or file is one line."
    def err(**kw):
        with pytest.raises(CliError) as e: C.colorize_train(**{'data': str(photos), 'out': str(tmp_path/'m.pth'), **kw})
        return str(e.value)
    assert err(init='nosuchmodel').startswith('--init nosuchmodel: unknown model')
    assert 'not --arch regressor; leave --arch out' in err(init='dayone', arch='regressor')
    notes = tmp_path/'notes.pth'; notes.write_text('mine')
    assert 'notes.pth' in err(init=str(notes))
    assert err() == '--arch is required (e.g. regressor), or --init MODEL to fine-tune a model'
    assert not (tmp_path/'m.pth').exists() and notes.read_text() == 'mine'


def test_help_names_every_architecture_and_real_defaults(capsys):
    "colorize-train --help lists the registered architectures and no fastcore placeholders; --defaults prints an architecture's."
    T.import_archs()
    ours = sorted(a for a in T.ARCHS if not a.startswith('test-'))
    assert sorted(a.strip() for a in C.ARCH_NAMES.split(',')) == ours
    r = run('colorize-train', '--help')
    assert r.returncode == 0
    assert '(str)' not in r.stdout and '(int)' not in r.stdout and 'default: False' not in r.stdout and 'TRAIN_DEFAULTS' not in r.stdout
    d = C.colorize_train(arch='template', defaults=True)
    assert d == T.train_defaults('template') and d['size'] == 64
    assert 'size         64' in capsys.readouterr().out


def test_too_few_readable_photos_is_one_line_and_warnings_are_plain(tmp_path):
    "A folder where one photo is readable: the skipped files as one plain warning, then one line saying why, exit status 1."
    from colorize_nbdev.data.samples import sample_photos
    d = tmp_path/'ph'; d.mkdir()
    (d/'ok.jpg').write_bytes(sample_photos()[0].read_bytes())
    for i in range(4): (d/f'bad{i}.jpg').write_text('not a photo')
    r = run_cli('colorize-train', '--arch', 'template', '--data', d, '--out', tmp_path/'m.pth', '--epochs', 1, '--size', 32,
                env={'OMP_NUM_THREADS': '1'})   # warnings on, as a user sees them
    assert r.returncode == 1 and 'Traceback' not in r.stderr, r.stderr
    lines = r.stderr.strip().splitlines()
    assert lines[0] == 'Warning: Skipped 4 photos that could not be read:' and '.py:' not in r.stderr
    assert 'only 1 of 5 photos can be used' in lines[-1] and 'training needs at least one of each' in lines[-1]
    assert not (tmp_path/'m.pth').exists()


@register_arch('test-train-bn')
def tiny_bn(hidden: int = 4):
    return nn.Sequential(nn.Conv2d(1, hidden, 3, padding=1), nn.BatchNorm2d(hidden), nn.ReLU(), nn.Conv2d(hidden, 2, 3, padding=1))


def test_fine_tuning_keeps_batch_norm_statistics(photos, tmp_path):
    "With init, batch norm keeps the running statistics the model learned (a few photos would overwrite them); its weights train."
    T.fit_colorizer('test-train-bn', photos, tmp_path/'a.pth', epochs=1, size=32, bs=4, **CPU)
    a = load_model(tmp_path/'a.pth', device='cpu')[0].state_dict()
    T.fit_colorizer(None, photos, tmp_path/'b.pth', init=tmp_path/'a.pth', epochs=1, size=32, bs=4, lr=1e-2, **CPU)
    b = load_model(tmp_path/'b.pth', device='cpu')[0].state_dict()
    assert torch.equal(a['1.running_mean'], b['1.running_mean']) and torch.equal(a['1.running_var'], b['1.running_var'])
    assert not torch.equal(a['1.weight'], b['1.weight'])
    T.fit_colorizer(None, photos, tmp_path/'c.pth', init=tmp_path/'a.pth', keep_bn_stats=False, epochs=1, size=32, bs=4, **CPU)
    c = load_model(tmp_path/'c.pth', device='cpu')[0].state_dict()
    assert not torch.equal(a['1.running_mean'], c['1.running_mean'])


def test_one_set_of_defaults():
    "No conflicting duplicates: the data loaders' defaults are the training defaults, and the GAN callback's are the gan model's."
    import inspect
    from colorize_nbdev.data.core import photo_dls, split_by_file
    from colorize_nbdev.models.gan import GAN_DEFAULTS, GANColorizer, GANTrainer
    p = inspect.signature(photo_dls).parameters
    for k in ('size', 'bs', 'valid_pct'): assert p[k].default == T.TRAIN_DEFAULTS[k], k
    assert inspect.signature(split_by_file).parameters['valid_pct'].default == T.TRAIN_DEFAULTS['valid_pct']
    tr, gc = inspect.signature(GANTrainer).parameters, inspect.signature(GANColorizer).parameters
    for k, v in GAN_DEFAULTS.items():
        assert tr[k].default == v, k
        if k in gc: assert gc[k].default == v, k
    assert GANTrainer(torch.nn.Conv2d(3, 1, 1)).adv_start == GAN_DEFAULTS['adv_start']
