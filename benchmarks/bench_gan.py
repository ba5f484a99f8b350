"""Images per second and peak GPU memory of one GAN training step (lesson 04): fp32 vs mixed precision + channels_last.

One step = the generator's forward, one discriminator update on (L, ab) real vs (L, prediction) fake, the generator's
adversarial term through the frozen discriminator, and the generator's backward and Adam step: what `GANTrainer` does
per batch. The mixed precision is what `fit_colorizer` uses (`colorize_nbdev.train.amp_mode`): bf16 on GPUs of compute
capability >= 8.0, fp16 with a GradScaler per optimizer below that (T4, V100); `--amp` overrides it. Each setting is
warmed up, then timed over --steps steps (CUDA synchronised), alternating the settings --rounds times; the medians are
reported, with the peak GPU memory (`torch.cuda.max_memory_allocated`) of the timed steps. Prints one JSON object (and
writes it to --json). Lesson 04's `#| cuda` cell makes the same measurement inside the notebook.

    python benchmarks/bench_gan.py --device cuda --size 256 --bs 16 --nf 64 --json benchmarks/results/gan_step_h100.json
    python benchmarks/bench_gan.py --device cpu --size 64 --bs 4 --nf 8 --steps 2 --rounds 1      # a quick check anywhere
"""
import argparse, json, platform, statistics, time

import torch

from colorize_nbdev.models.gan import Pix2PixUnet, PatchDiscriminator, GANLoss
from colorize_nbdev.train import amp_mode

DTYPES = {'bf16': torch.bfloat16, 'fp16': torch.float16}


def gan_step_timer(device, size, bs, nf, d_nf, n_down, mode, channels_last):
    "A function that runs `n` GAN steps in precision `mode` ('bf16', 'fp16' or None: fp32) and returns their seconds."
    torch.manual_seed(0)
    mf = torch.channels_last if channels_last else torch.contiguous_format
    G = Pix2PixUnet(1, 2, nf=nf, n_down=n_down).to(device, memory_format=mf)
    D = PatchDiscriminator(3, nf=d_nf).to(device, memory_format=mf)
    og = torch.optim.Adam(G.parameters(), 2e-4, betas=(0.5, 0.999))
    od = torch.optim.Adam(D.parameters(), 2e-4, betas=(0.5, 0.999))
    sg, sd = (torch.amp.GradScaler(device.type, enabled=mode == 'fp16') for _ in range(2))   # fp16's small range
    crit = GANLoss('bce')
    L = (torch.rand(bs, 1, size, size, device=device)*2 - 1).contiguous(memory_format=mf)
    ab = (torch.rand(bs, 2, size, size, device=device)*2 - 1).contiguous(memory_format=mf)
    dtype = DTYPES.get(mode)
    ctx = lambda: torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None)
    def sync():
        if device.type == 'cuda': torch.cuda.synchronize(device)
    def steps(n):
        sync(); t = time.perf_counter()
        for _ in range(n):
            with ctx():
                fake = G(L)
                d = 0.5*(crit(D(torch.cat([L, ab], 1)), 1.) + crit(D(torch.cat([L, fake.detach()], 1)), 0.))
            od.zero_grad(set_to_none=True); sd.scale(d).backward(); sd.step(od); sd.update()
            D.requires_grad_(False)
            with ctx(): g = (fake.float() - ab).abs().mean() + crit(D(torch.cat([L, fake], 1)), 1.)/100
            D.requires_grad_(True)
            og.zero_grad(set_to_none=True); sg.scale(g).backward(); sg.step(og); sg.update()
        sync()
        return time.perf_counter() - t
    return steps


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    p.add_argument('--size', type=int, default=256)
    p.add_argument('--bs', type=int, default=16)
    p.add_argument('--nf', type=int, default=64)
    p.add_argument('--d-nf', type=int, default=64)
    p.add_argument('--n-down', type=int, default=8)
    p.add_argument('--steps', type=int, default=20)
    p.add_argument('--rounds', type=int, default=5)
    p.add_argument('--amp', choices=['auto', 'bf16', 'fp16'], default='auto',
                   help="mixed precision: 'auto' = what fit_colorizer uses on this device (amp_mode)")
    p.add_argument('--json', default=None)
    a = p.parse_args()
    dev = torch.device(a.device)
    if dev.type == 'cuda' and not torch.cuda.is_available(): raise SystemExit("--device cuda: no CUDA GPU here")
    mode = (amp_mode(dev) or 'bf16') if a.amp == 'auto' else a.amp   # on a CPU amp_mode says None: bf16 autocast then
    settings = {'fp32': (None, False), f'{mode}_channels_last': (mode, True)}
    timers = {k: gan_step_timer(dev, a.size, a.bs, a.nf, a.d_nf, a.n_down, *v) for k, v in settings.items()}
    for f in timers.values(): f(2)   # warm-up (cuDNN autotuning, allocator)
    times, peak = {k: [] for k in settings}, {k: 0. for k in settings}
    for _ in range(a.rounds):
        for k, f in timers.items():
            if dev.type == 'cuda': torch.cuda.reset_peak_memory_stats(dev)
            times[k].append(f(a.steps))
            if dev.type == 'cuda': peak[k] = max(peak[k], torch.cuda.max_memory_allocated(dev)/2**30)
    ips = {k: a.bs*a.steps/statistics.median(v) for k, v in times.items()}
    fast = f'{mode}_channels_last'
    res = dict(device=torch.cuda.get_device_name(dev) if dev.type == 'cuda' else platform.processor() or 'cpu',
               capability='.'.join(map(str, torch.cuda.get_device_capability(dev))) if dev.type == 'cuda' else None,
               torch=torch.__version__, size=a.size, bs=a.bs, nf=a.nf, d_nf=a.d_nf, n_down=a.n_down, steps=a.steps,
               rounds=a.rounds, amp=mode, images_per_s={k: round(v, 2) for k, v in ips.items()},
               speedup=round(ips[fast]/ips['fp32'], 3),
               peak_gib={k: round(v, 3) for k, v in peak.items()} if dev.type == 'cuda' else None, all_seconds=times)
    print(json.dumps(res, indent=1))
    if a.json:
        with open(a.json, 'w') as f: json.dump(res, f, indent=1)


if __name__ == '__main__':
    main()
