#!/usr/bin/env python
"""Other decodings of the same logits, on a selection run's fold: do they buy colour for less PSNR than `debias` and `T`?

    python benchmarks/decode_families.py --work runs/select_frozen --photos PHOTOS --json benchmarks/results/decode_families.json

Every photo of the fold is decoded alike (no caution), at the view and mirror setting the gate chose
(`--gate`, default `benchmarks/results/familiarity_gate_view.json`), by three families:
- `debias_T`: the model's own decoding (`decode`: the distribution divided by the rebalancing weights**debias, annealed mean at T);
- `chroma`: the same, with each pixel's chroma raised towards the distribution's expected chroma (the mean of |ab| over
  the bins at T = 1, not the |mean ab| the annealed mean gives): ab × (E|ab| / |ab|)**s, the ratio capped at 4;
- `gain`: the same, with ab multiplied by g.
For each family: the best fold PSNR among its settings whose fold CF ratio is at least 0.75 (the gate's colour rule), and every setting.
"""
import argparse, json, sys, time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import familiarity_gate as fg

DEBIAS, TEMPS = [0., 0.25, 0.5, 0.75, 1., 1.25, 1.5], [0.2, 0.38, 0.7, 1.]
CHROMA, GAIN = [0.25, 0.5, 1.], [1.15, 1.3, 1.6]


def decoder(net):
    "decode(z, debias, T, s=0, g=1) -> model-scaled ab (B,2,h,w): the three families on logits z (B,Q,h,w)."
    from colorize_nbdev.models.classifier import AB_SCALE
    bins, lw = net.bins.float(), net.class_weights.float().log()
    def decode(z, d, T, s=0., g=1.):
        z = z.float() - d*lw[:, None, None]
        ab = torch.einsum('bqhw,qc->bchw', torch.softmax(z/T, 1), bins)
        if s:
            e = torch.einsum('bqhw,q->bhw', torch.softmax(z, 1), bins.norm(dim=1))[:, None]
            ab = ab*(e/(ab.norm(dim=1, keepdim=True) + 1e-3)).clamp(max=4)**s
        return ab*g/AB_SCALE
    return decode


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--work', type=Path, required=True, help="the selection run's --work folder (SELECTION.json, dayone_fp32.pth)")
    ap.add_argument('--photos', type=Path, required=True)
    ap.add_argument('--extra-photos', type=Path, help="the run's --extra-photos, if it had any")
    ap.add_argument('--gate', type=Path, default=Path(__file__).resolve().parent/'results'/'familiarity_gate_view.json')
    ap.add_argument('--json', type=Path)
    a = ap.parse_args(argv)
    from colorize_nbdev.modelfile import load_model
    t0 = time.time()
    ch = json.loads(a.gate.read_text())['chosen']
    view, flip = ch.get('view', 1.), ch.get('flip', False)
    net, _ = load_model(a.work/'dayone_fp32.pth', device='cpu')
    _, fold = fg.run_files(a.work, a.photos, a.extra_photos)
    rows, score = fg.prepare(net, fold, views=[view], flip=flip), fg.scorer(net, decoder(net))   # scored as the gate scores
    def setting(family, d, T, s=0., g=1.):
        return dict(family=family, debias=d, T=T, s=s, g=g, fold=fg.summary(rows, [score(r, d, T, view, s=s, g=g) for r in rows]))
    table = [setting('debias_T', d, t) for d in DEBIAS for t in TEMPS]
    table += [setting('chroma', d, t, s=s) for d in DEBIAS for t in TEMPS for s in CHROMA]
    table += [setting('gain', d, t, g=g) for d in DEBIAS for t in TEMPS for g in GAIN]
    best = {}
    for fam in ('debias_T', 'chroma', 'gain'):
        ok = [r for r in table if r['family'] == fam and r['fold']['cf_ratio'] >= fg.MIN_CF]
        best[fam] = max(ok, key=lambda r: r['fold']['psnr']) if ok else None
        b = best[fam]
        print(f"{fam:9s} best fold PSNR at CF ratio >= {fg.MIN_CF}: " + (f"{b['fold']['psnr']:+.2f} dB, AuC {b['fold']['auc']:+.2f}, "
              f"CF ratio {b['fold']['cf_ratio']:.2f} (debias {b['debias']:g}, T {b['T']:g}, s {b['s']:g}, g {b['g']:g})" if b else 'none'), flush=True)
    print(f"{len(table)} settings on {len(rows)} fold photos, view {view:g}, flip {flip}, {time.time() - t0:.0f} s")
    if a.json:
        a.json.write_text(json.dumps(dict(command='python benchmarks/decode_families.py ' + ' '.join(sys.argv[1:] if argv is None else map(str, argv)),
                                          view=view, flip=flip, fold_photos=len(rows), best=best, table=table), indent=1) + '\n')


if __name__ == '__main__': main()
