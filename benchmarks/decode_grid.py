#!/usr/bin/env python
"""Score a trained colour classifier over its two decoding settings, the annealed-mean temperature T and `debias` (how much
of the rebalancing weights is divided back out of the predicted distribution), on the validation photos of its run and on
its held-out photos (the excluded subject's, for an `--exclude-subject` run of train_dayone.py). Prints one line per
setting: PSNR and AuC minus gray's, and the CF ratio. Nothing is written.

    python benchmarks/train_dayone.py --photos PHOTOS --epochs 150 --exclude-subject animals --work runs/no_animals_cls \\
        --out runs/no_animals_cls/dayone_no_animals.pth
    python benchmarks/decode_grid.py --work runs/no_animals_cls --photos PHOTOS
    python benchmarks/decode_grid.py --card colorize_nbdev/weights/dayone.json --photos PHOTOS   # the shipped model
"""
import argparse, json, sys
from pathlib import Path


def add_run_args(ap):
    "The options that say which run to score (shared with entropy_gate.py)."
    ap.add_argument('--work', type=Path, help="train_dayone.py's --work folder (dayone_fp32.pth, the card, test/, subject/)")
    ap.add_argument('--card', type=Path, help="or a model card (e.g. colorize_nbdev/weights/dayone.json): its model file beside it, its test photos")
    ap.add_argument('--photos', type=Path, required=True, help='the development photos the run trained on')


def run_sets(ap, a)->tuple:
    "({'valid': files, held-out name: files}, model file) of the run that `--work` or `--card` names."
    if (a.work is None) == (a.card is None): ap.error('give --work or --card')
    card = json.loads((a.card or next(a.work.glob('dayone*.json'))).read_text())
    valid = [a.photos/f for f in card['temperature']['valid_files']]
    if a.card: return {'valid': valid, 'test': [a.photos/f for f in card['data']['test_files']]}, a.card.parent/card['model']
    held = a.work/'subject' if (a.work/'subject').exists() else a.work/'test'
    return {'valid': valid, held.name: sorted(held.iterdir())}, a.work/'dayone_fp32.pth'


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    add_run_args(ap)
    ap.add_argument('--temps', default='0.2,0.38,0.7,1.0,1.5')
    ap.add_argument('--debias', default='0,0.5,1,1.5')
    ap.add_argument('--size', type=int, default=256)
    ap.add_argument('--json', type=Path, help='also write the scores to this JSON file')
    a = ap.parse_args(argv)
    from colorize_nbdev.metrics import evaluate, model_colorizer
    from colorize_nbdev.modelfile import load_model
    sets, model = run_sets(ap, a)
    net, config = load_model(model, device='cpu')
    if len(getattr(net, 'bank', ())): net.bank = net.bank[:0]   # a cautious classifier (lesson 09): its fixed decodings, caution left out
    out = dict(command='python benchmarks/decode_grid.py ' + ' '.join(sys.argv[1:] if argv is None else map(str, argv)),
               model=str(model.name), shipped=dict(T=config.get('T'), debias=config.get('debias')), size=a.size, sets={})
    for name, files in sets.items():
        g = evaluate(files, None, size=a.size)
        rows = out['sets'][name] = dict(n=len(files), gray={k: g[k] for k in ('psnr', 'ssim', 'auc', 'cf_ratio')}, grid=[])
        print(f"{name:8} {len(files)} photos, gray PSNR {g['psnr']:.2f} AuC {g['auc']:.2f}", flush=True)
        for d in map(float, a.debias.split(',')):
            for t in map(float, a.temps.split(',')):
                net.T, net.debias = t, d
                r = evaluate(files, model_colorizer(net, config), size=a.size)
                rows['grid'].append(dict(debias=d, T=t, **{k: r[k] for k in ('psnr', 'ssim', 'auc', 'cf_ratio')}))
                print(f"{name:8} debias {d:<4g} T {t:<5g} PSNR {r['psnr'] - g['psnr']:+.2f}  AuC {r['auc'] - g['auc']:+.2f}  "
                      f"CF ratio {r['cf_ratio']:.2f}", flush=True)
    if a.json: a.json.write_text(json.dumps(out, indent=1) + '\n')


if __name__ == '__main__': main()
