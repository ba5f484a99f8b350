#!/usr/bin/env python
"""Caution that depends on the pixel, for the colour classifier: decode each pixel with a `debias` that grows with the
entropy of its predicted distribution, debias = lo + (hi - lo) * H (H: entropy / log Q, in [0, 1]), at temperature T.
An uncertain pixel leans towards common, dull colours; a confident one keeps its colour. Scores every setting of the grid
on the run's validation photos and on its held-out photos (as decode_grid.py), first printing the mean entropy of each
set: the gate can only help where the model is less sure on unfamiliar photos.

    python benchmarks/entropy_gate.py --card colorize_nbdev/weights/dayone.json --photos PHOTOS --json benchmarks/results/entropy_gate_dayone.json
    python benchmarks/entropy_gate.py --work runs/no_animals_cls --photos PHOTOS --json benchmarks/results/entropy_gate_no_animals.json
"""
import argparse, json, math, sys
from pathlib import Path

import torch
import torch.nn.functional as F

from decode_grid import add_run_args, run_sets   # the same run, read the same way (benchmarks/ is on the path when run as a script)


class EntropyGated(torch.nn.Module):
    "A trained `Classifier` decoded with a per-pixel debias that grows with the entropy of its predicted distribution."
    def __init__(self, net, lo:float, hi:float, T:float):
        super().__init__()
        self.net, self.lo, self.hi, self.T = net, lo, hi, T
    def forward(self, L):
        from colorize_nbdev.color import AB_SCALE
        from colorize_nbdev.models.classifier import annealed_mean
        z = getattr(self.net, 'infer_logits', self.net.logits)(L).float()   # (B,Q,h/4,w/4), as the model sees the photo (its view and mirror image)
        p = torch.softmax(z, 1)
        H = -(p*torch.log(p.clamp_min(1e-12))).sum(1, keepdim=True)/math.log(z.shape[1])      # (B,1,h,w) in [0, 1]
        d = self.lo + (self.hi - self.lo)*H
        zd = z - d*self.net.class_weights.log().to(z.device)[None, :, None, None]
        ab = annealed_mean(zd, self.net.bins, self.T)/AB_SCALE
        return F.interpolate(ab, size=L.shape[-2:], mode='bilinear', align_corners=False)


def mean_entropy(net, files, size):
    from colorize_nbdev.data.samples import crop_tensor
    from colorize_nbdev.color import rgb_to_lab_norm
    hs = []
    with torch.no_grad():
        for f in files:
            L, _ = rgb_to_lab_norm(crop_tensor(f, size)[None].float()/255)
            z = getattr(net, 'infer_logits', net.logits)(L).float()
            p = torch.softmax(z, 1)
            hs.append((-(p*torch.log(p.clamp_min(1e-12))).sum(1)/math.log(z.shape[1])).mean().item())
    return sum(hs)/len(hs)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    add_run_args(ap)
    ap.add_argument('--gates', default='0.5:0.5,0:2,0:3,0.5:3,0.5:4,1:3', help='lo:hi pairs (0.5:0.5 is the shipped fixed debias)')
    ap.add_argument('--temps', default='0.38,1.0')
    ap.add_argument('--size', type=int, default=256)
    ap.add_argument('--json', type=Path)
    a = ap.parse_args(argv)
    from colorize_nbdev.metrics import evaluate, model_colorizer
    from colorize_nbdev.modelfile import load_model
    sets, model = run_sets(ap, a)
    net, config = load_model(model, device='cpu')
    out = dict(command='python benchmarks/entropy_gate.py ' + ' '.join(sys.argv[1:] if argv is None else map(str, argv)), sets={})
    for name, files in sets.items():
        g = evaluate(files, None, size=a.size)
        H = mean_entropy(net, files, a.size)
        rows = out['sets'][name] = dict(n=len(files), mean_entropy=H, gray={k: g[k] for k in ('psnr', 'ssim', 'auc', 'cf_ratio')}, grid=[])
        print(f"{name:8} {len(files)} photos, mean normalised entropy {H:.3f}, gray PSNR {g['psnr']:.2f} AuC {g['auc']:.2f}", flush=True)
        for gate in a.gates.split(','):
            lo, hi = map(float, gate.split(':'))
            for t in map(float, a.temps.split(',')):
                r = evaluate(files, model_colorizer(EntropyGated(net, lo, hi, t), config), size=a.size)
                rows['grid'].append(dict(lo=lo, hi=hi, T=t, **{k: r[k] for k in ('psnr', 'ssim', 'auc', 'cf_ratio')}))
                print(f"{name:8} debias {lo:g}..{hi:g} T {t:<5g} PSNR {r['psnr'] - g['psnr']:+.2f}  AuC {r['auc'] - g['auc']:+.2f}  "
                      f"CF ratio {r['cf_ratio']:.2f}", flush=True)
    if a.json: a.json.write_text(json.dumps(out, indent=1) + '\n')


if __name__ == '__main__': main()
