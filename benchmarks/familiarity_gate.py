#!/usr/bin/env python
"""Choose the day-one model's decoding by familiarity on a selection run: the familiar decoding (debias, T), the cautious
one (debias_far, T_far), the two caution thresholds of `CautiousClassifier` and the scale the network sees the photo at
(`view`; lesson 09), all on the run's selection fold, a scene split of the training photos that its model never saw. Neither the held-out test photos nor any subject
held out for the unseen-subject runs plays a part (the fold is drawn before either is looked at). Every setting averages the logits of the photo and of its mirror image
(`flip`); the chosen setting is also scored without it, and that score is recorded beside it.

    python benchmarks/train_dayone.py --photos PHOTOS --epochs 150 --select-fold 0.3 --work runs/select
    python benchmarks/familiarity_gate.py --work runs/select --photos PHOTOS --json benchmarks/results/familiarity_gate.json

The rule, fixed before the run: among every setting (view included) of the grid below whose fold CF ratio is at least 0.75 and whose
unfamiliar part of the fold (caution >= 0.5, if it holds at least 5 photos) scores at least gray's PSNR and AuC with a CF
ratio of at least 0.55, the highest fold PSNR. If none qualifies: the highest fold PSNR among those with CF ratio >= 0.75;
if none, the most colourful. `train_dayone.py --decoding FILE` then builds its model with the chosen setting.
"""
import argparse, json, sys, time
from pathlib import Path

import torch
import torch.nn.functional as F

GRID = dict(q=[(0.5, 0.9), (0.25, 0.75), (0.75, 0.95)],
            debias=[0., 0.25, 0.5, 0.75, 1.], T=[0.2, 0.38, 0.7, 1.],
            debias_far=[1., 1.5, 2.], T_far=[0.7, 1., 1.5], view=[0.5, 0.625, 0.75, 1.])
FLIP = True   # every setting averages the photo's logits with its mirror image's
MIN_CF, FAR_MIN_CF, FAR_CAUTION, FAR_MIN_N = 0.75, 0.55, 0.5, 5


def run_files(work:Path, photos:Path, extra:Path|None=None)->tuple:
    "(bank files: the photos the run trained on, fold files) of a selection run's --work folder (its SELECTION.json); `extra`: its --extra-photos."
    sel = json.loads((work/'SELECTION.json').read_text())
    more = sel.get('bank_extra_files', [])
    if more and extra is None: sys.exit(f"{work/'SELECTION.json'}: the run trained on --extra-photos; give the same --extra-photos here")
    return [photos/n for n in sel['bank_files']] + [extra/n for n in more], [photos/n for n in sel['fold_files']]


def prepare(net, files, size=256, views=(1.,), flip=FLIP)->list:
    "Per photo: the uint8 crop, its L, the model's inference logits at each of `views` (`TimmClassifier.view_logits`, with the padded view's size and the view's) and its features (computed once)."
    from colorize_nbdev.data.samples import crop_tensor
    from colorize_nbdev.color import rgb_to_lab_norm
    from colorize_nbdev.models.pretrained import photo_features
    rows = []
    with torch.no_grad():
        for f in files:
            x = crop_tensor(f, size)[None]
            L = rgb_to_lab_norm(x)[0]
            zs = {}
            for v in views:
                net.view, net.flip = v, flip
                zs[v] = net.view_logits(L)   # (logits of the padded view, its size, the view's (h, w))
            rows.append(dict(name=f.name, x=x, L=L, z=zs, f=photo_features(L)))
    return rows


def scorer(net, decode=None):
    """score(row, debias, T, view, **kw) -> (psnr, auc, colourfulness) of one photo decoded from its logits at `view`, cached;
    the row gets its gray scores. `decode(z, debias, T, **kw)` -> model-scaled ab (default: the model's own, `net.decode`)."""
    from colorize_nbdev.color import lab_norm_to_rgb
    from colorize_nbdev.metrics import psnr, auc, colorfulness, to_uint8
    decode = decode or (lambda z, d, t: net.decode(z, T=t, debias=d))
    cache = {}
    def score(r, d, t, v=1., **kw):
        key = (r['name'], round(d, 4), round(t, 4), v, *sorted(kw.items()))
        if key not in cache:
            with torch.no_grad():
                z, padded, hw = r['z'][v]
                ab = net.view_to_input(decode(z, d, t, **kw), r['L'], padded, hw)   # to the photo's size as the model does
                p = to_uint8(lab_norm_to_rgb(r['L'], ab))
                if 'gray' not in r:
                    g = to_uint8(lab_norm_to_rgb(r['L'], torch.zeros_like(ab)))
                    r['gray'] = (float(psnr(r['x'], g)[0]), float(auc(r['x'], g)[0]), float(colorfulness(r['x'])[0]))
            cache[key] = (float(psnr(r['x'], p)[0]), float(auc(r['x'], p)[0]), float(colorfulness(p)[0]))
        return cache[key]
    return score


def summary(rows, scores)->dict:
    "PSNR and AuC minus gray's, and the CF ratio, of these photos' scores."
    n = len(rows)
    m = lambda v: sum(v)/n
    return dict(n=n, psnr=m([s[0] - r['gray'][0] for r, s in zip(rows, scores)]), auc=m([s[1] - r['gray'][1] for r, s in zip(rows, scores)]),
                cf_ratio=m([s[2] for s in scores])/m([r['gray'][2] for r in rows]))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--work', type=Path, help="the selection run's --work folder (SELECTION.json, dayone_fp32.pth)")
    ap.add_argument('--photos', type=Path, help='the development photos the run trained on')
    ap.add_argument('--extra-photos', type=Path, help="the run's --extra-photos, if it had any (part of the bank)")
    ap.add_argument('--json', type=Path, help='write the choice and the whole table here (without --work: read them from here)')
    ap.add_argument('--record-into', type=Path, help="and record the choice and its fold scores in this model card (its 'familiarity'; lesson 09 prints it)")
    a = ap.parse_args(argv)
    if a.work is None:
        if not (a.json and a.json.exists() and a.record_into): ap.error('give --work and --photos, or an existing --json with --record-into')
        return record(json.loads(a.json.read_text()), a.record_into)
    if a.photos is None: ap.error('--work needs --photos')
    from colorize_nbdev.modelfile import load_model
    from colorize_nbdev.models.pretrained import familiarity_bank, nearest_distance, bank_thresholds, caution_of
    t0 = time.time()
    net, _ = load_model(a.work/'dayone_fp32.pth', device='cpu')
    bank_files, fold = run_files(a.work, a.photos, a.extra_photos)
    bank, _ = familiarity_bank(bank_files)
    rows = prepare(net, fold, views=GRID['view'])
    dist = nearest_distance(torch.cat([r['f'] for r in rows]), bank)
    score = scorer(net)
    print(f"{len(bank_files)} bank photos, {len(fold)} fold photos; leave-one-out distance quantiles 25/50/75/90/95 %: "
          + ' '.join(f"{v:.3f}" for v in bank_thresholds(bank, (.25, .5, .75, .9, .95)).tolist())
          + f"; fold distances median {dist.median():.3f}", flush=True)
    table = []
    cautions = {q: caution_of(dist, bank_thresholds(bank, q)).tolist() for q in GRID['q']}   # as CautiousClassifier.caution
    def setting(q, d, t, df, tf, v, rows=rows, score=score, flip=FLIP):
        caution = cautions[tuple(q)]
        far = [i for i, c in enumerate(caution) if c >= FAR_CAUTION]
        sc = [score(r, d + c*(df - d), t + c*(tf - t), v) for r, c in zip(rows, caution)]
        row = dict(q=list(q), debias=d, T=t, debias_far=df, T_far=tf, view=v, flip=flip, fold=summary(rows, sc))
        if len(far) >= FAR_MIN_N: row['far'] = summary([rows[i] for i in far], [sc[i] for i in far])
        return row
    for v in GRID['view']:
        for q in GRID['q']:
            for d in GRID['debias']:
                for t in GRID['T']:
                    for df in GRID['debias_far']:
                        for tf in GRID['T_far']: table.append(setting(q, d, t, df, tf, v))
        print(f"view {v:g}: {len(table)} settings scored ({time.time() - t0:.0f} s)", flush=True)
    ok_cf = [r for r in table if r['fold']['cf_ratio'] >= MIN_CF]
    ok = [r for r in ok_cf if 'far' not in r or (r['far']['psnr'] >= 0 and r['far']['auc'] >= 0 and r['far']['cf_ratio'] >= FAR_MIN_CF)]
    if ok: best, how = max(ok, key=lambda r: r['fold']['psnr']), 'all the conditions'
    elif ok_cf: best, how = max(ok_cf, key=lambda r: r['fold']['psnr']), f'only the fold CF ratio >= {MIN_CF} (no setting met the unfamiliar part)'
    else: best, how = max(table, key=lambda r: r['fold']['cf_ratio']), 'none: the most colourful'
    keys = ('q', 'debias', 'T', 'debias_far', 'T_far', 'view')
    plain = prepare(net, fold, views=[best['view']], flip=False)   # the chosen setting without the mirror image, for the record
    best = dict(best, without_flip=setting(tuple(best['q']), *(best[k] for k in keys[1:]), rows=plain, score=scorer(net), flip=False))
    f, u = best['fold'], best.get('far')
    print(f"{len(table)} settings; {len(ok_cf)} with fold CF ratio >= {MIN_CF}, {len(ok)} meeting every condition; chosen ({how}):\n"
          f"  q {best['q']}  debias {best['debias']:g} T {best['T']:g} -> debias_far {best['debias_far']:g} T_far {best['T_far']:g}, view {best['view']:g}, flip\n"
          f"  fold ({f['n']} photos): PSNR {f['psnr']:+.2f} AuC {f['auc']:+.2f} CF ratio {f['cf_ratio']:.2f}"
          + (f"\n  unfamiliar part ({u['n']} photos): PSNR {u['psnr']:+.2f} AuC {u['auc']:+.2f} CF ratio {u['cf_ratio']:.2f}" if u else '')
          + "\n  the same without the mirror image: fold PSNR {psnr:+.2f} AuC {auc:+.2f} CF ratio {cf_ratio:.2f}".format(**best['without_flip']['fold']),
          flush=True)
    out = dict(command='python benchmarks/familiarity_gate.py ' + ' '.join(sys.argv[1:] if argv is None else map(str, argv)),
               rule=__doc__.split('\n\n')[2].replace('\n', ' '), grid={k: v for k, v in GRID.items()},
               chosen={k: best[k] for k in keys + ('flip',)}, chosen_scores=best, met=how,
               bank=len(bank_files), fold_files=[p.name for p in fold], fold_caution_median=float(dist.median()),
               seconds=round(time.time() - t0), table=table)
    if a.json: a.json.write_text(json.dumps(out, indent=1) + '\n')
    if a.record_into: record(out, a.record_into)


def record(out:dict, card_path:Path):
    "Write the choice, its fold scores, and the best fold PSNR and unfamiliar-part PSNR of any setting into the card's 'familiarity'."
    card = json.loads(card_path.read_text())
    best_any = max(out['table'], key=lambda r: r['fold']['psnr'])
    far = [r for r in out['table'] if 'far' in r]
    best_far = max(far, key=lambda r: r['far']['psnr']) if far else None
    card['familiarity'] = dict(
        about="decoding by familiarity (lesson 09's CautiousClassifier), chosen on a selection run: the same training without a "
              "fold of 30 % of the training photos (whole scenes), scored on that fold by benchmarks/familiarity_gate.py",
        command=out['command'], rule=out['rule'], settings=len(out['table']), met=out['met'], chosen=out['chosen'],
        chosen_scores=out['chosen_scores'], best_fold_psnr={k: best_any[k] for k in ('q', 'debias', 'T', 'debias_far', 'T_far', 'view', 'fold') if k in best_any},
        best_unfamiliar_psnr={k: best_far[k] for k in ('q', 'debias', 'T', 'debias_far', 'T_far', 'view', 'fold', 'far') if k in best_far} if best_far else None,
        bank=out['bank'], fold_files=out['fold_files'])
    card_path.write_text(json.dumps(card, indent=1) + '\n')
    print(f"recorded in {card_path} ('familiarity')")


if __name__ == '__main__': main()
