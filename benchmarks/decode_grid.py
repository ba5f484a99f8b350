#!/usr/bin/env python
"""Score a trained colour classifier over its two decoding settings, the annealed-mean temperature T and `debias` (how much
of the rebalancing weights is divided back out of the predicted distribution), on the validation photos of its run and on
its held-out photos (the excluded subject's, for an `--exclude-subject` run of train_dayone.py). Prints one line per
setting: PSNR and AuC minus gray's, and the CF ratio. Nothing is written.

    python benchmarks/train_dayone.py --photos PHOTOS --epochs 150 --exclude-subject animals --work runs/no_animals_cls \\
        --out runs/no_animals_cls/dayone_no_animals.pth
    python benchmarks/decode_grid.py --work runs/no_animals_cls --photos PHOTOS
    python benchmarks/decode_grid.py --card colorize_nbdev/weights/dayone.json --photos PHOTOS   # the shipped model

A run's model file (`--work`) is scored as it trained (view 1, no mirror image) unless `--view`/`--flip` say otherwise;
the shipped model (`--card`) with its own view and flip (lesson 09's `TimmClassifier` options).
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
    ap.add_argument('--view', type=float, help="the scale the network sees the photo at (default: the model file's)")
    ap.add_argument('--flip', type=int, choices=(0, 1), help="1: average the logits with the mirror image's (default: the model file's)")
    ap.add_argument('--json', type=Path, help='also write the scores to this JSON file')
    ap.add_argument('--record-into', type=Path, help="and record them in this model card's 'decoding_grid' (lesson 09 draws it): "
                                                     "as 'held_out' for --card, under 'unseen' for an --exclude-subject run")
    a = ap.parse_args(argv)
    from colorize_nbdev.metrics import evaluate, model_colorizer
    from colorize_nbdev.modelfile import load_model
    sets, model = run_sets(ap, a)
    net, config = load_model(model, device='cpu')
    if len(getattr(net, 'bank', ())): net.bank = net.bank[:0]   # a cautious classifier (lesson 09): its fixed decodings, caution left out
    if a.view is not None: net.view = a.view
    if a.flip is not None: net.flip = bool(a.flip)
    out = dict(command='python benchmarks/decode_grid.py ' + ' '.join(sys.argv[1:] if argv is None else map(str, argv)),
               model=str(model.name), shipped=dict(T=config.get('T'), debias=config.get('debias')),
               view=getattr(net, 'view', 1.), flip=getattr(net, 'flip', False), size=a.size, sets={})
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
    if a.record_into: record(out, a, a.record_into)


ABOUT = ("PSNR/AuC/CF of the decodings (debias x T) of the classifier, every photo decoded alike (a cautious model's caution "
         "switched off): the shipped model on its held-out test photos, and the unseen-subject run on that subject; scored by "
         "benchmarks/decode_grid.py (colorize_nbdev.metrics.evaluate at 256 px) after the decoding was chosen on the selection "
         "run, so it shows the trade-off and chose nothing")

def record(out:dict, a, card_path:Path):
    "Put a grid into the card's 'decoding_grid': the shipped model's as 'held_out', an unseen-subject run's under 'unseen' by its subject."
    card = json.loads(card_path.read_text())
    grid = card.setdefault('decoding_grid', {})
    grid['about'] = ABOUT
    if a.card: grid['held_out'] = out
    else:
        run = json.loads(next(a.work.glob('dayone*.json')).read_text())
        if not run['data'].get('exclude_subject'): raise SystemExit(f"--record-into: {a.work} is not an --exclude-subject run")
        grid.setdefault('unseen', {})[', '.join(run['data']['exclude_subject'])] = out
    card_path.write_text(json.dumps(card, indent=1) + '\n')
    print(f"recorded in {card_path} ('decoding_grid')")


if __name__ == '__main__': main()
