#!/usr/bin/env python
"""Where a model's held-out scores come from: its card's test photos scored scene by scene (PSNR and AuC over gray's,
colourfulness of prediction and truth, CF ratio), the same scores `colorize-eval` gives the whole set.

    python benchmarks/by_scene.py --card colorize_nbdev/weights/dayone.json --photos PHOTOS --json benchmarks/results/by_scene_dayone.json

A scene is what `train_dayone.py` holds out whole (`scene`: the subject name without numbers). The CF ratio of a set is
its mean predicted colourfulness over its mean true colourfulness, so the scenes with many colourful photos weigh most.
"""
import argparse, json, sys
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_dayone import scene


def by_scene(gray:list, pred:list)->dict:
    "Per scene and for 'all': n, PSNR and AuC minus gray's, mean colourfulness of the prediction and the truth, CF ratio (from `evaluate(..., per_photo=True)` rows)."
    groups = defaultdict(list)
    for g, p in zip(gray, pred):
        if g['file'] != p['file']: raise ValueError(f"by_scene: gray and prediction rows differ: {g['file']} against {p['file']}")
        groups[scene(Path(p['file']).name)].append((g, p))
    groups['all'] = [gp for v in list(groups.values()) for gp in v]
    out = {}
    for s, rows in groups.items():
        n = len(rows)
        m = lambda f: sum(f(g, p) for g, p in rows)/n
        cf_pred, cf_gt = m(lambda g, p: p['cf_pred']), m(lambda g, p: p['cf_gt'])
        out[s] = dict(n=n, psnr=m(lambda g, p: p['psnr'] - g['psnr']), auc=m(lambda g, p: p['auc'] - g['auc']),
                      cf_pred=cf_pred, cf_gt=cf_gt, cf_ratio=cf_pred/cf_gt if cf_gt else None)
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--card', type=Path, required=True, help="a model card written by train_dayone.py (its model file beside it)")
    ap.add_argument('--photos', type=Path, required=True, help='the development photos (colorize-data devphotos ... /images)')
    ap.add_argument('--size', type=int, default=256)
    ap.add_argument('--json', type=Path, help='write the table here')
    a = ap.parse_args(argv)
    from colorize_nbdev.metrics import evaluate, model_colorizer
    from colorize_nbdev.modelfile import load_model
    card = json.loads(a.card.read_text())
    files = [a.photos/n for n in card['data']['test_files']]
    missing = [f.name for f in files if not f.exists()]
    if missing: sys.exit(f"--photos {a.photos}: {len(missing)} of the card's test photos are not there (first: {missing[0]})")
    net, config = load_model(a.card.parent/card['model'], device='cpu')
    gray = evaluate(files, None, size=a.size, device='cpu', per_photo=True)['photos']
    pred = evaluate(files, model_colorizer(net, config), size=a.size, device='cpu', per_photo=True)['photos']
    table = by_scene(gray, pred)
    for s, r in sorted(table.items(), key=lambda kv: (kv[0] == 'all', -kv[1]['n']*kv[1]['cf_gt'])):
        print(f"{s:22s} {r['n']:3d} photos  PSNR {r['psnr']:+.2f}  AuC {r['auc']:+.2f}  colourfulness {r['cf_pred']:5.1f} of {r['cf_gt']:5.1f}"
              f"  CF ratio {r['cf_ratio']:.2f}")
    if a.json:
        a.json.write_text(json.dumps(dict(command='python benchmarks/by_scene.py ' + ' '.join(sys.argv[1:] if argv is None else map(str, argv)),
                                          model=card['model'], sha256=card['sha256'], size=a.size, scenes=table), indent=1) + '\n')


if __name__ == '__main__': main()
