"""Images per second of one GAN training step (lesson 04): fp32 vs bf16 autocast + channels_last, in one run.

One step = the generator's forward, one discriminator update on (L, ab) real vs (L, prediction) fake, the generator's
adversarial term through the frozen discriminator, and the generator's backward and Adam step: what `GANTrainer` does
per batch. Each setting is warmed up, then timed over --steps steps (CUDA synchronised), alternating the settings
--rounds times; the medians are reported. Prints one JSON object (and writes it to --json).

    python benchmarks/bench_gan.py --device cuda --size 256 --bs 16 --nf 64 --json benchmarks/results/gan_step_h100.json
    python benchmarks/bench_gan.py --device cpu --size 64 --bs 4 --nf 8 --steps 2 --rounds 1      # a quick check anywhere
"""
import argparse, json, platform, statistics, time
from contextlib import nullcontext

import torch

from colorize_nbdev.models.gan import Pix2PixUnet, PatchDiscriminator, GANLoss


def gan_step_timer(device, size, bs, nf, d_nf, n_down, amp, channels_last):
    "A function that runs `n` GAN steps and returns their seconds."
    torch.manual_seed(0)
    G, D = Pix2PixUnet(1, 2, nf=nf, n_down=n_down).to(device), PatchDiscriminator(3, nf=d_nf).to(device)
    mf = torch.channels_last if channels_last else torch.contiguous_format
    G, D = G.to(memory_format=mf), D.to(memory_format=mf)
    og = torch.optim.Adam(G.parameters(), 2e-4, betas=(0.5, 0.999))
    od = torch.optim.Adam(D.parameters(), 2e-4, betas=(0.5, 0.999))
    crit = GANLoss('bce')
    L = (torch.rand(bs, 1, size, size, device=device)*2 - 1).contiguous(memory_format=mf)
    ab = (torch.rand(bs, 2, size, size, device=device)*2 - 1).contiguous(memory_format=mf)
    ctx = (lambda: torch.autocast(device.type, dtype=torch.bfloat16)) if amp else nullcontext
    def sync():
        if device.type == 'cuda': torch.cuda.synchronize()
    def steps(n):
        sync(); t = time.perf_counter()
        for _ in range(n):
            with ctx():
                fake = G(L)
                l1 = (fake.float() - ab).abs().mean()
                d = 0.5*(crit(D(torch.cat([L, ab], 1)), 1.) + crit(D(torch.cat([L, fake.detach()], 1)), 0.))
            od.zero_grad(set_to_none=True); d.backward(); od.step()
            D.requires_grad_(False)
            with ctx(): adv = crit(D(torch.cat([L, fake], 1)), 1.)
            D.requires_grad_(True)
            og.zero_grad(set_to_none=True); (l1 + adv/100).backward(); og.step()
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
    p.add_argument('--json', default=None)
    a = p.parse_args()
    dev = torch.device(a.device)
    if dev.type == 'cuda' and not torch.cuda.is_available(): raise SystemExit("--device cuda: no CUDA GPU here")
    settings = {'fp32': (False, False), 'bf16_channels_last': (True, True)}
    timers = {k: gan_step_timer(dev, a.size, a.bs, a.nf, a.d_nf, a.n_down, *v) for k, v in settings.items()}
    for f in timers.values(): f(2)   # warm-up (cuDNN autotuning, allocator)
    times = {k: [] for k in settings}
    for _ in range(a.rounds):
        for k, f in timers.items(): times[k].append(f(a.steps))
    ips = {k: a.bs*a.steps/statistics.median(v) for k, v in times.items()}
    res = dict(device=torch.cuda.get_device_name(dev) if dev.type == 'cuda' else platform.processor() or 'cpu',
               torch=torch.__version__, size=a.size, bs=a.bs, nf=a.nf, d_nf=a.d_nf, n_down=a.n_down, steps=a.steps,
               rounds=a.rounds, images_per_s={k: round(v, 2) for k, v in ips.items()},
               speedup=round(ips['bf16_channels_last']/ips['fp32'], 3), all_seconds=times)
    print(json.dumps(res, indent=1))
    if a.json:
        with open(a.json, 'w') as f: json.dump(res, f, indent=1)


if __name__ == '__main__':
    main()
