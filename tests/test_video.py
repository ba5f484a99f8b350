"""`colorize-video` (run as a user runs it: a command in a subprocess) and the functions behind it.

Clips are made from the bundled sample photos with `make_test_clip`; the model is lesson 03's regressor trained for
40 steps here (seconds), so that its colours react to the grain of each frame as a real model's do.
"""
import signal, subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from colorize_nbdev.color import rgb_to_lab_norm
from colorize_nbdev.data.core import open_rgb, to_uint8_tensor
from colorize_nbdev.data.samples import center_crop_resize, sample_photos
from colorize_nbdev.modelfile import save_model
from colorize_nbdev.models.regressor import Regressor
from fastcore.script import CliError

from colorize_nbdev.cli import colorize_video_cli
from colorize_nbdev.video import (ABSmoother, colorize_frames, colorize_video, clip_frames, flicker, frame_ab, frame_l, make_test_clip,
                                  probe_video, read_frames, write_clip)

from clitools import command, one_line_error, run as run_cli   # tests/clitools.py

pytestmark = pytest.mark.usefixtures('one_thread')
PHOTOS = [sample_photos()[7], sample_photos()[20]]
SIZE = (256, 144)
ONE = {'OMP_NUM_THREADS': '1'}   # small frames on a shared 2-core machine: with 2 threads a busy neighbour made a run 20x slower


def run(*args): return run_cli(*args, env=ONE)


def run_all(*calls):
    "Run several commands at once (each is a tuple of arguments to `run`): their results, in order."
    with ThreadPoolExecutor(2) as ex: return list(ex.map(lambda a: run(*a), calls))


@pytest.fixture(scope='module')
def model(one_thread):
    "Lesson 03's regressor after 40 steps of L1 on the bundled photos at 64 px."
    xs = torch.stack([to_uint8_tensor(center_crop_resize(open_rgb(f), 64)) for f in sample_photos()])
    L, ab = rgb_to_lab_norm(xs)
    torch.manual_seed(0)
    m = Regressor()
    opt, g = torch.optim.AdamW(m.parameters(), 3e-3), torch.Generator().manual_seed(0)
    for _ in range(40):
        i = torch.randint(0, len(L), (8,), generator=g)
        loss = F.l1_loss(m(L[i]), ab[i])
        opt.zero_grad(); loss.backward(); opt.step()
    return m.eval()


@pytest.fixture(scope='module')
def model_file(model, tmp_path_factory):
    return save_model(model, tmp_path_factory.mktemp('model')/'regressor.pth', 'regressor')


@pytest.fixture(scope='module')
def clips(tmp_path_factory):
    d = tmp_path_factory.mktemp('clips')
    return {'static': make_test_clip(d/'static.mp4', 'static', PHOTOS, n=20, size=SIZE, noise=12, fps=25),
            'pan': make_test_clip(d/'pan.mp4', 'pan', PHOTOS, n=16, size=SIZE, noise=8, fps=25)}


def test_round_trip(model_file, clips, tmp_path):
    "Frame count, size, rate and audio kept; each frame's L kept (lossless --crf 0: within 8-bit RGB rounding); progress lines in a log."
    out = tmp_path/'pan_colour.mkv'
    r = run('colorize-video', clips['pan'], '--out', out, '--model', model_file, '--crf', 0, '--render-size', 96)
    assert r.returncode == 0, r.stderr
    src, got = probe_video(clips['pan']), probe_video(out)
    assert (got['width'], got['height'], got['fps']) == (*SIZE, 25)
    assert sum(1 for _ in read_frames(out)) == 16
    assert got['audio'] == src['audio'] == 'aac'
    import av
    def audio_packets(p):
        with av.open(str(p)) as c: return [bytes(k) for k in c.demux(audio=0) if k.size]
    assert audio_packets(out) == audio_packets(clips['pan'])            # the audio is copied, packet by packet
    Lin = torch.stack([frame_l(f) for f in read_frames(clips['pan'])])
    Lout = torch.stack([frame_l(f) for f in read_frames(out)])
    d = (Lin - Lout).abs()
    print(f"|L out - L in|: mean {d.mean():.3f}, max {d.max():.3f}")
    assert d.mean() < 0.3 and d.max() < 1.5, (d.mean(), d.max())
    assert 'Colored 16 frames (256 x 144, 25 frames/s, audio copied)' in r.stdout
    lines = r.stderr.strip().splitlines()                                # stderr is not a terminal: plain lines
    assert lines[-1].startswith('16/16 frames (100%)') and 'frames/s' in lines[-1] and '\r' not in r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ['pan_colour.mkv']   # no temporary file left


def test_smoothing_halves_flicker(model_file, clips, tmp_path):
    """On a static grainy shot, the default smoothing at least halves the flicker of per-frame colouring.

    Written losslessly (--crf 0, RGB): at --crf 18, H.264's own chroma noise on grainy frames is larger than this
    small model's flicker and would be measured instead."""
    outs = {s: tmp_path/f'static_{s}.mp4' for s in (0, None)}
    rs = run_all(*[('colorize-video', clips['static'], '--out', o, '--model', model_file, '--render-size', 160, '--crf', 0,
                    *(('--smooth', s) if s is not None else ())) for s, o in outs.items()])
    assert all(r.returncode == 0 for r in rs), [r.stderr for r in rs]
    fl = {s: flicker(read_frames(o)) for s, o in outs.items()}
    assert fl[None] <= 0.5*fl[0], fl


def test_no_leak_across_cut(model):
    "The first frame after a hard cut is coloured exactly as if nothing came before; without the reset, colour leaks."
    frames = list(clip_frames('cut', PHOTOS, n=8, size=SIZE, cut_at=4))
    per_frame = list(colorize_frames(model, None, frames, 96, smooth=0))
    smoothed = list(colorize_frames(model, None, frames, 96))
    blind = list(colorize_frames(model, None, frames, 96, smoother=ABSmoother(cut_hist=2, cut_mad=3)))
    assert np.array_equal(smoothed[4], per_frame[4])
    assert not np.array_equal(smoothed[3], per_frame[3])                 # it does smooth before the cut
    leak = (frame_ab(blind[4]) - frame_ab(per_frame[4])).abs().mean().item()
    print(f"leak without the reset: {leak:.3f}")
    assert leak > 0.1                                                    # what the reset prevents (ab units)


def test_a_cautious_model_holds_one_caution_per_shot(tmp_path):
    """A model that decodes by familiarity (lesson 09's CautiousClassifier, the bundled model's kind) measures its caution
    once per shot, on the shot's first frame, and decodes each photo at its own caution again afterwards."""
    from colorize_nbdev.modelfile import load_model, read_model_file
    from colorize_nbdev.models.pretrained import TimmClassifier, make_cautious
    torch.manual_seed(0)
    path = save_model(TimmClassifier(pretrained=True), tmp_path/'c.pth', 'timm_classifier', dict(encoder='efficientnet_lite0', size=64))
    torch.save(make_cautious(read_model_file(path), sample_photos()[:3]), path)
    net, config = load_model(path, device='cpu')
    seen, caution = [], net.caution
    net.caution = lambda L: seen.append(tuple(L.shape)) or caution(L)
    clip = make_test_clip(tmp_path/'cut.mp4', 'cut', PHOTOS, n=6, size=SIZE, cut_at=3)
    rep = colorize_video(net, config, clip, tmp_path/'out.mp4', render_size=96, progress=False)
    assert (rep['frames'], rep['cuts'], len(seen), net.held_caution()) == (6, 1, 2, None)
    list(colorize_frames(net, config, clip_frames('cut', PHOTOS, n=6, size=SIZE, cut_at=3), 96, smooth=0))
    assert (len(seen), net.held_caution()) == (4, None)       # without smoothing too: the shots, not the frames
    x = torch.zeros(2, 1, 64, 64)
    def colour():
        with torch.no_grad(): net(x)
    net.hold_caution(0.25)
    colour()
    assert len(seen) == 4                                     # a held caution is not measured again
    with ThreadPoolExecutor(1) as ex: ex.submit(colour).result()
    assert len(seen) == 5                                     # ... in this thread only: a photo coloured in another gets its own
    net.hold_caution(None)
    colour()
    assert len(seen) == 6


def test_smoother_weights():
    "Grain keeps the weight of the past near the strength; where an object appeared it falls to 0; strength 0 passes ab through."
    g = torch.Generator().manual_seed(0)
    L = torch.linspace(-0.8, 0.8, 64).expand(1, 1, 64, 64).clone()
    grain = L + 0.04*torch.randn(L.shape, generator=g)
    moved = L.clone(); moved[..., 16:48, 16:48] += 0.5                     # something bright entered the middle
    sm = ABSmoother(0.8)
    assert sm.weight(L, grain).mean() > 0.7
    w = sm.weight(L, moved)
    assert w[..., 20:44, 20:44].max() < 0.01 and w[..., :10, :].min() > 0.79
    ab = torch.randn(1, 2, 64, 64, generator=g)
    assert torch.equal(ABSmoother(0)(L, ab), ab)
    with pytest.raises(ValueError, match='in \\[0, 1\\)'): ABSmoother(1.0)


class _Breaks(torch.nn.Module):
    "Returns gray for 3 frames, then fails like a crash would."
    def __init__(self): super().__init__(); self.n = 0
    def forward(self, L):
        self.n += 1
        if self.n > 3: raise RuntimeError('simulated failure')
        return torch.zeros(len(L), 2, *L.shape[-2:])


def test_atomic_write(clips, tmp_path):
    "A failure half-way leaves no OUTPUT and no temporary file; an existing OUTPUT is left as it was."
    out = tmp_path/'o.mp4'
    with pytest.raises(RuntimeError, match='simulated'):
        colorize_video(_Breaks(), None, clips['static'], out, render_size=64, progress=False)
    assert list(tmp_path.iterdir()) == []
    out.write_bytes(b'my own file')
    with pytest.raises(RuntimeError, match='simulated'):
        colorize_video(_Breaks(), None, clips['static'], out, render_size=64, overwrite=True, progress=False)
    assert out.read_bytes() == b'my own file' and list(tmp_path.iterdir()) == [out]


def test_killed_run_leaves_nothing(model_file, tmp_path):
    "SIGTERM in the middle of a run (a user's kill, a scheduler): the process exits, OUTPUT keeps its old content, no temp file."
    clip = make_test_clip(tmp_path/'long.mp4', 'static', PHOTOS, n=200, size=(128, 96), noise=4, audio=False)
    out = tmp_path/'out'/'o.mp4'
    out.parent.mkdir(); out.write_bytes(b'old')
    c, env = command('colorize-video', clip, '--out', out, '--model', model_file, '--overwrite', '--render-size', 64)
    p = subprocess.Popen(c, env={**env, **ONE}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first = p.stderr.readline()                                   # the first progress line: it is writing
        assert '/200 frames' in first, first
        p.send_signal(signal.SIGTERM)
        p.wait(timeout=60)
    finally:
        if p.poll() is None: p.kill()
    assert p.returncode != 0
    assert out.read_bytes() == b'old' and sorted(x.name for x in out.parent.iterdir()) == ['o.mp4']


def test_bad_input_is_one_line(model_file, clips, tmp_path):
    "Each bad input or output: exit status 1, one line naming the file and what is wrong, no traceback."
    import av
    text = tmp_path/'notes.mp4'; text.write_text('not a video')
    sound = tmp_path/'sound.m4a'
    with av.open(str(sound), 'w') as o:                               # audio only
        a = o.add_stream('aac', rate=48000, layout='stereo')
        for k in range(10):
            f = av.AudioFrame.from_ndarray(np.zeros((2, 1024), np.float32), format='fltp', layout='stereo')
            f.sample_rate, f.pts = 48000, k*1024
            for pk in a.encode(f): o.mux(pk)
        for pk in a.encode(None): o.mux(pk)
    mkv = write_clip(tmp_path/'ok.mkv', clip_frames('static', PHOTOS, n=3, size=(64, 64)), audio=False)
    b = mkv.read_bytes()
    assert b.count(b'V_MPEG4/ISO/AVC') == 1
    unknown = tmp_path/'unknown.mkv'; unknown.write_bytes(b.replace(b'V_MPEG4/ISO/AVC', b'V_QQQQQ/ISO/AVC'))  # a codec FFmpeg lacks
    exists = tmp_path/'exists.mp4'; exists.write_bytes(b'mine')
    blocker = tmp_path/'afile'; blocker.write_text('a file, not a folder')
    out = tmp_path/'a.mp4'
    cases = [(text, {'out': out}, ('notes.mp4', 'not a video')),                 # (input, options, words of the message)
             (sound, {'out': out}, ('sound.m4a', 'has no video stream')),
             (unknown, {'out': out}, ('unknown.mkv', 'codec is unknown')),
             (clips['static'], {'out': blocker/'a.mp4'}, ('a.mp4', 'cannot create its folder')),
             (PHOTOS[0], {'out': out}, (PHOTOS[0].name, 'still image')),
             (tmp_path/'nope.mp4', {'out': out}, ('nope.mp4', 'no such file')),
             (clips['static'], {'out': exists}, ('exists.mp4', 'not replacing it')),
             (clips['static'], {'out': clips['static'], 'overwrite': True}, ('static.mp4', 'is the input video')),
             (clips['static'], {'out': tmp_path/'a.gif'}, ('a.gif', 'unknown video type')),
             (clips['static'], {'out': out, 'model': tmp_path/'nope.pth'}, ('nope.pth',)),
             (clips['static'], {'out': out, 'smooth': 1.5}, ('--smooth',))]
    def argv(inp, kw):
        kw = {'model': model_file, **kw}
        return ('colorize-video', inp, *[a for k, v in kw.items() for a in ((f'--{k}',) if v is True else (f'--{k}', v))])
    # the four kinds the command meets most, as a user meets them (a command: exit status 1, one line on stderr) ...
    for r, (_, _, words) in zip(run_all(*[argv(i, kw) for i, kw, _ in cases[:4]]), cases[:4]): one_line_error(r, *words)
    # ... and every case through the same function, in this process (each command costs seconds of imports)
    for inp, kw, words in cases:
        kw = {'model': model_file, **kw}
        with pytest.raises(CliError) as e:
            colorize_video_cli(str(inp), **{k: v if isinstance(v, (bool, float)) else str(v) for k, v in kw.items()})
        assert '\n' not in str(e.value) and all(w in str(e.value) for w in words), (words, str(e.value))
    assert exists.read_bytes() == b'mine' and not out.exists()
