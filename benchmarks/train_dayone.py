#!/usr/bin/env python
"""Train, score and package the day-one colorizer that ships inside the wheel (`colorize` with no `--model`).

    colorize-data devphotos --dest ~/.cache/colorize-nbdev/devphotos     # the 186 development photos (Debian packages)
    P=~/.cache/colorize-nbdev/devphotos/images
    python benchmarks/train_dayone.py --photos $P --epochs 150 --freeze-encoder --select-fold 0.3 --work runs/select_frozen  # the selection run
    python benchmarks/familiarity_gate.py --work runs/select_frozen --photos $P --json benchmarks/results/familiarity_gate_view.json
    python benchmarks/train_dayone.py --photos $P --epochs 150 --freeze-encoder --decoding benchmarks/results/familiarity_gate_view.json \
        --temps 0.1,0.2,0.3,0.38,0.5,0.7,1.0 --work runs/frozen/main                                   # the shipped model

What it does, all recorded in the model card (`colorize_nbdev/weights/dayone.json`):
1. the scene split: the test set is the 32 photos bundled with the package plus every development photo of the same
   scene (same subject name: `windmill1` and `windmill7` are one scene), so no near-duplicate of a test photo is trained on;
   `--exclude-subject animals` also moves every photo of that kind of subject to the test set (the "unseen subjects" runs);
2. training: `fit_colorizer(ARCH, ...)` (default `timm_classifier`: EfficientNet-Lite0 encoder with ImageNet weights from
   PyPI, lesson 07's colour classes and rebalanced cross-entropy; `--freeze-encoder` trains its decoder only, keeping the
   ImageNet encoder as it is; `--arch timm_unet` for the L1 U-Net), a fixed number of epochs so the run does the same work
   on any machine;
3. for a classifier, the decoding. With `--decoding FILE` (the shipped model): the choice familiarity_gate.py made on a
   selection run (`--select-fold 0.3`: the same training without 30 % of the training photos, whole scenes, on which the
   choice is made); the model becomes a `cautious_classifier` (lesson 09) whose bank holds the photos it trained on.
   Without it: the annealed-mean temperature T, every T of `--temps` scored on the validation photos (the 10 % of the
   training photos that `fit_colorizer` held out) and picked by the rule: the highest validation PSNR among the T whose
   validation CF ratio is at least 0.75; if none reaches 0.75, the most colourful T. Either way the test photos play no
   part, and the whole temperature curve (validation and test) goes into the card: lesson 09 draws it;
4. scoring: `colorize-eval` on the test photos, the model and the gray baseline, at 256 px (the course's evaluation size);
5. packaging: the weights in fp16 (`--out`, default the package's `weights/dayone.pth`) and the card.

More photos (`--extra-photos DIR`, e.g. `colorize-data places365 --dest D --limit 20000`, then `--extra-photos D/train`)
are trained on and never tested on: the test set stays the development photos' scene split above, so the scores stay
comparable with the shipped model's; a selection run's fold is still drawn from the development photos alone. Extra
photos with a development photo's name or bytes, or whose path names an `--exclude-subject`, are left out. The
cautious model's bank then holds every trained development photo and a seeded sample of the extra ones, `--bank-max`
in all at most (every bank photo's distance to every other is computed once). On a GPU:

    python benchmarks/train_dayone.py --photos $P --extra-photos D/train --epochs 40 --freeze-encoder --select-fold 0.3 --work runs/select_big
    python benchmarks/familiarity_gate.py --work runs/select_big --photos $P --extra-photos D/train --json runs/select_big/gate.json
    python benchmarks/train_dayone.py --photos $P --extra-photos D/train --epochs 40 --freeze-encoder --decoding runs/select_big/gate.json \
        --work runs/big --out runs/big/dayone.pth
"""
import argparse, hashlib, json, os, platform, re, shutil, subprocess, sys, tempfile, time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SUBJECTS = {   # --exclude-subject NAME: the photos of that kind, by the folders their source packages keep them in
    'animals': re.compile(r'(animals|fishes|erase__)'),
    'monuments': re.compile(r'(monuments|wonders)'),
}


DESCRIPTIONS = {   # the registry's words for the bundled model, by architecture ({frozen}: whether its encoder was frozen)
    'timm_unet': 'U-Net on EfficientNet-Lite0 (ImageNet, offline{frozen}), trained on the course development photos; lesson 09',
    'timm_classifier': "colour classifier (lesson 07's ab bins) on EfficientNet-Lite0 (ImageNet, offline{frozen}), trained on the course "
                       'development photos; lesson 09',
    'cautious_classifier': "colour classifier (lesson 07's ab bins) on EfficientNet-Lite0 (ImageNet, offline{frozen}), cautious on photos "
                           'unlike its training photos, trained on the course development photos; lesson 09',
}


def scene(name:str)->str:
    "The scene a development photo shows: its subject name without numbers (`..._windmill7.jpg` -> `windmill`)."
    stem = Path(name).stem.split('__')[-1]
    return re.sub(r'[^a-z]', '', stem.split('_')[-1].lower()) or stem


def split(photos:list, bundled:list, exclude:list)->tuple:
    "(train, test) paths: the bundled photos, their scenes, and the excluded subjects' photos are the test set."
    names = {p.name for p in bundled}
    held_scenes = {scene(n) for n in names}
    test = [p for p in photos if p.name in names or scene(p.name) in held_scenes or any(SUBJECTS[s].search(p.name) for s in exclude)]
    train = [p for p in photos if p not in test]
    return train, test


def fold(train:list, frac:float, seed:int=0)->tuple:
    "(rest, fold): whole scenes of `train`, in a seeded hash order, moved to `fold` until it holds `frac` of the photos."
    import hashlib
    scenes = sorted({scene(p.name) for p in train}, key=lambda s: hashlib.sha1(f"{seed}:{s}".encode()).hexdigest())
    chosen, n = set(), 0
    for s in scenes:
        if n >= frac*len(train): break
        chosen.add(s); n += sum(scene(p.name) == s for p in train)
    return [p for p in train if scene(p.name) not in chosen], [p for p in train if scene(p.name) in chosen]


def extra_photos(folder:Path, exclude:list, dev:list)->list:
    """The photos of `--extra-photos` (searched recursively), without those whose path names an excluded subject and
    without any development photo (same name or same bytes): a test photo must never be trained on."""
    from colorize_nbdev.data.photos import find_images
    sha = lambda p: hashlib.sha256(p.read_bytes()).hexdigest()
    names, hashes = {p.name for p in dev}, {sha(p) for p in dev}
    keep, dropped = [], 0
    for p in find_images(folder):
        if any(SUBJECTS[s].search(str(p.relative_to(folder))) for s in exclude): continue
        if p.name in names or sha(p) in hashes: dropped += 1; continue
        keep.append(p)
    if dropped: print(f"--extra-photos {folder}: {dropped} development photos left out (same name or same bytes)", flush=True)
    return keep


def bank_sample(trained:list, extra:list, n:int)->list:
    "The photos of the cautious model's bank: every trained development photo, then trained extra photos in a seeded order, `n` in all at most."
    import random
    ex = set(extra)
    dev, more = [p for p in trained if p not in ex], [p for p in trained if p in ex]
    random.Random(0).shuffle(more)
    return dev[:n] + more[:max(0, n - len(dev))]


def extra_record(folder:Path, extra:list)->dict:
    "The card's record of the extra training photos: their folder's name, how many, and a sha256 of their sorted relative paths."
    names = '\n'.join(sorted(str(p.relative_to(folder)) for p in extra))
    return dict(extra_photos=dict(folder=folder.name, n=len(extra), names_sha256=hashlib.sha256(names.encode()).hexdigest()))


def colorize_eval(args:list)->dict:
    "The scores `colorize-eval ARGS --json` prints (without the folder and model paths, which are this machine's)."
    exe = shutil.which('colorize-eval', path=str(Path(sys.executable).parent)) or 'colorize-eval'
    r = subprocess.run([exe, *map(str, args), '--json'], capture_output=True, text=True)
    if r.returncode: sys.exit(f"colorize-eval failed: {r.stderr.strip()}")
    return {k: v for k, v in json.loads(r.stdout).items() if k not in ('data', 'colorizer')}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--photos', type=Path, required=True, help='the development photos (colorize-data devphotos ... /images)')
    ap.add_argument('--epochs', type=int, default=60)
    ap.add_argument('--arch', default='timm_classifier', choices=['timm_classifier', 'timm_unet'])
    ap.add_argument('--freeze-encoder', action='store_true',
                    help='timm_classifier: train the decoder only; the encoder keeps its ImageNet weights and batch-norm statistics')
    ap.add_argument('--temps', default='0.2,0.3,0.38,0.5,0.7,1.0', help='annealed-mean temperatures to choose from (classifier)')
    ap.add_argument('--min-cf', type=float, default=0.75, help='the rule for T: best validation PSNR with at least this CF ratio')
    ap.add_argument('--exclude-subject', action='append', default=[], choices=sorted(SUBJECTS))
    ap.add_argument('--select-fold', type=float, default=None,
                    help="a selection run: hold out this fraction of the training photos (whole scenes, seeded) as the fold on which "
                         "familiarity_gate.py chooses the decoding; the run trains on the rest and stops, writing its file lists to SELECTION.json in --work")
    ap.add_argument('--decoding', type=Path, default=None,
                    help="a classifier's decoding chosen by familiarity_gate.py on a selection run (its JSON): the model becomes a "
                         "cautious_classifier whose bank holds the photos it trained on, decoded with that choice (no T rule here)")
    ap.add_argument('--train-only', action='store_true', help='stop after training (the same command without it resumes the finished run and scores it)')
    ap.add_argument('--out', type=Path, default=ROOT/'colorize_nbdev'/'weights'/'dayone.pth')
    ap.add_argument('--record-into', type=Path, default=None,
                    help="with --exclude-subject: also record this run's scores on that subject in the card CARD.json (its 'unseen_subjects')")
    ap.add_argument('--work', type=Path, default=Path('runs')/'dayone', help='checkpoints and the test-set folder')
    ap.add_argument('--extra-photos', type=Path, default=None,
                    help='more photos to train on (searched recursively), never tested on; those of an --exclude-subject are left out')
    ap.add_argument('--bank-max', type=int, default=2000, help="the cautious model's bank (and a selection run's) holds at most this many of the trained photos")
    a = ap.parse_args(argv)
    import torch
    from colorize_nbdev.data.photos import find_images
    from colorize_nbdev.data.samples import sample_photos
    from colorize_nbdev.modelfile import read_model_file, atomic_save
    from colorize_nbdev.train import fit_colorizer, train_defaults
    import colorize_nbdev.models.pretrained  # noqa: F401  (registers timm_unet)
    photos, bundled = find_images(a.photos), sample_photos()
    missing = sorted({p.name for p in bundled} - {p.name for p in photos})
    if missing: sys.exit(f"--photos {a.photos}: the bundled photos must be among the development photos; missing {missing[:3]}")
    train, test = split(photos, bundled, a.exclude_subject)
    if a.select_fold:
        train, sel = fold(train, a.select_fold)
        print(f"selection run: {len(sel)} photos of {len({scene(p.name) for p in sel})} scenes held out as the selection fold", flush=True)
    extra = extra_photos(a.extra_photos, a.exclude_subject, photos) if a.extra_photos else []
    if a.extra_photos and not extra: sys.exit(f"--extra-photos {a.extra_photos}: no photos to train on there")
    train = train + extra
    import csv
    from importlib.resources import files
    ref = {r['file']: r['reference_sha256'] for r in csv.DictReader(open(str(files('colorize_nbdev')/'data'/'devphotos.csv')))}
    same = sum(hashlib.sha256(p.read_bytes()).hexdigest() == ref.get(p.name) for p in photos)
    print(f"{same} of {len(photos)} photos are byte for byte the ones `colorize-data devphotos` rebuilds", flush=True)
    a.work.mkdir(parents=True, exist_ok=True)
    test_dir = a.work/'test'
    shutil.rmtree(test_dir, ignore_errors=True); test_dir.mkdir()
    for p in test: os.symlink(p.resolve(), test_dir/p.name)
    subject = [p for p in test if any(SUBJECTS[s].search(p.name) for s in a.exclude_subject)]
    if subject:   # the unseen-subject runs are scored on the excluded subject's photos alone
        subject_dir = a.work/'subject'
        shutil.rmtree(subject_dir, ignore_errors=True); subject_dir.mkdir()
        for p in subject: os.symlink(p.resolve(), subject_dir/p.name)
    print(f"{len(photos)} photos: {len(train) - len(extra)} to train on, {len(test)} held out ({len(bundled)} bundled + their scenes"
          + (f" + subjects {', '.join(a.exclude_subject)}" if a.exclude_subject else '') + ")"
          + (f"; and {len(extra)} more photos to train on from {a.extra_photos}" if extra else ''), flush=True)
    model_fp32 = a.work/'dayone_fp32.pth'
    spent = a.work/'train_seconds.json'   # training time over every session of this run (it resumes after an interruption)
    before = json.loads(spent.read_text())['seconds'] if spent.exists() else 0.
    t0 = time.time()
    if a.freeze_encoder and a.arch != 'timm_classifier': sys.exit('--freeze-encoder is an option of --arch timm_classifier')
    learn = fit_colorizer(a.arch, train, model_fp32, epochs=a.epochs, resume=True, valid_pct=0.1, seed=42,
                          arch_kwargs=dict(freeze_encoder=True) if a.freeze_encoder else None,
                          progress=sys.stdout.isatty())   # into a log file: the epoch table, no redrawn bars
    seconds = before + learn.report.get('seconds', time.time() - t0)
    spent.write_text(json.dumps({'seconds': seconds}))
    valid = [Path(f) for f in learn.dls.valid.dataset.files]
    held = {p.name for p in valid}
    trained = [p for p in train if p.name not in held]   # the photos the model learned from
    if a.train_only:
        print(f"trained: {model_fp32}; {seconds/60:.1f} min of training (run again without --train-only to score and package it)", flush=True)
        return
    if a.select_fold:   # a selection run stops here: familiarity_gate.py scores its fold
        bank, ex = bank_sample(trained, extra, a.bank_max), set(extra)
        (a.work/'SELECTION.json').write_text(json.dumps(dict(
            command='python benchmarks/train_dayone.py ' + ' '.join(sys.argv[1:] if argv is None else map(str, argv)), seconds=round(seconds),
            fold_files=[p.name for p in sel], valid_files=sorted(p.name for p in valid),
            bank_files=sorted(p.name for p in bank if p not in ex),
            bank_extra_files=sorted(str(p.relative_to(a.extra_photos)) for p in bank if p in ex), test_files=sorted(p.name for p in test)),
            indent=1) + '\n')
        print(f"selection run done: {a.work/'SELECTION.json'}; {seconds/60:.1f} min of training", flush=True)
        return
    obj, decoding = read_model_file(model_fp32), None
    if a.decoding:   # decoding by familiarity, chosen on a selection run; the bank: the photos this run trained on
        from colorize_nbdev.models.pretrained import make_cautious
        decoding = json.loads(a.decoding.read_text())
        ch = decoding['chosen']
        obj = make_cautious(obj, bank_sample(trained, extra, a.bank_max), debias_far=ch['debias_far'], T_far=ch['T_far'], q=tuple(ch['q']),
                            T=ch['T'], debias=ch['debias'],
                           **{k: ch[k] for k in ('view', 'flip') if k in ch})   # how the network sees the photo (gates before views chose neither)
        print(f"decoding by familiarity ({a.decoding}): {obj['config']['bank']} bank photos, {ch}", flush=True)
    # stored in fp16, but for a cautious model's two caution thresholds
    obj['state_dict'] = {k: (v.half() if v.is_floating_point() and k != 'bank_q' else v) for k, v in obj['state_dict'].items()}
    a.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_save(obj, a.out)
    curve = None
    if 'T' in obj['config']:   # a classifier: its temperature curve on the validation photos (and the rule, without --decoding)
        from colorize_nbdev.metrics import evaluate, model_colorizer
        from colorize_nbdev.modelfile import load_model
        temps = [float(t) for t in a.temps.split(',')]
        net, config = load_model(a.out, device='cpu')
        curve = {'temps': temps, 'valid': [], 'test': [], 'valid_files': sorted(p.name for p in valid)}
        sets = {'valid': valid, 'test': test} | ({'subject': subject} if subject else {})
        for name, files in sets.items():
            g = evaluate(files, None, size=256)
            curve.setdefault('gray', {})[name] = {k: g[k] for k in ('psnr', 'ssim', 'auc', 'cf_ratio', 'n')}
            curve[name] = []
            for t in temps:
                net.T = t
                r = evaluate(files, model_colorizer(net, config), size=256)
                curve[name].append({k: r[k] for k in ('psnr', 'ssim', 'auc', 'cf_ratio')})
                print(f"T={t:<5} {name:8} PSNR {r['psnr']:.2f} (gray {g['psnr']:.2f})  AuC {r['auc']:.2f} (gray {g['auc']:.2f})  "
                      f"CF ratio {r['cf_ratio']:.2f}", flush=True)
        if decoding:
            curve['rule'], curve['chosen'] = f"chosen with the whole decoding on a selection run ({a.decoding.name})", ch['T']
        else:
            ok = [i for i, r in enumerate(curve['valid']) if r['cf_ratio'] >= a.min_cf]
            best = (max(ok, key=lambda i: curve['valid'][i]['psnr']) if ok
                    else max(range(len(temps)), key=lambda i: curve['valid'][i]['cf_ratio']))
            curve['rule'] = f"highest validation PSNR with validation CF ratio >= {a.min_cf}; if none, the highest CF ratio"
            curve['chosen'] = temps[best]
            obj['config']['T'] = temps[best]
            atomic_save(obj, a.out)
            print(f"chosen T = {temps[best]}", flush=True)
    # scored: the fp16 file users get
    scores = {'gray': colorize_eval(['--data', test_dir, '--gray']), 'dayone': colorize_eval(['--data', test_dir, '--model', a.out])}
    # the bundled photos alone (all in the test set): anyone can re-score these from the wheel (tests/test_pretrained.py does)
    from colorize_nbdev.data.samples import sample_dir
    scores['bundled'] = dict(gray=colorize_eval(['--data', sample_dir(), '--gray']), dayone=colorize_eval(['--data', sample_dir(), '--model', a.out]))
    if subject:
        scores['subject'] = dict(photos=len(subject), gray=colorize_eval(['--data', subject_dir, '--gray']),
                                 dayone=colorize_eval(['--data', subject_dir, '--model', a.out]))
    card = dict(
        model=a.out.name, arch=obj['arch'], config=obj['config'], stored='fp16 weights (loaded into an fp32 model)',
        sha256=hashlib.sha256(a.out.read_bytes()).hexdigest(), bytes=a.out.stat().st_size,
        data=dict(source='the 186 development photos (colorize-data devphotos; licences in its manifest)',
                  n_train=len(train), n_test=len(test), **(extra_record(a.extra_photos, extra) if extra else {}),
                  match_devphotos_manifest=f"{same} of {len(photos)}", split=split.__doc__, exclude_subject=a.exclude_subject,
                  test_files=sorted(p.name for p in test)),
        training=dict(command='python benchmarks/train_dayone.py ' + ' '.join(sys.argv[1:] if argv is None else map(str, argv)),
                      defaults=train_defaults(a.arch), epochs=a.epochs, iterations=learn.report.get('iterations'),
                      last_epoch={k: learn.report.get(k) for k in ('train_loss', 'valid_loss', 'psnr', 'cf_ratio')},
                      last_epoch_is='the validation photos as training scores them: the network before --decoding (no view, no mirror image, its training decoding)',
                      seconds=round(seconds), machine=dict(cpu=_cpu(), threads=torch.get_num_threads(),
                      python=platform.python_version(), torch=str(torch.__version__))),
        scores=dict(evaluated_with='colorize-eval --json at 256 px centre crops', **scores),
    )
    if curve: card['temperature'] = curve
    if decoding: card['decoding'] = dict(source=str(a.decoding.resolve().relative_to(ROOT) if a.decoding.resolve().is_relative_to(ROOT) else a.decoding),
                                         chosen=decoding['chosen'], rule=decoding['rule'], selection_command=decoding['command'],
                                         selection_scores=decoding['chosen_scores'], bank_photos=obj['config']['bank'])
    card_path = a.out.with_suffix('.json')
    card_path.write_text(json.dumps(card, indent=1) + '\n')
    zoo_p = a.out.parent/'zoo.json'   # the package's model registry: its bundled entry must name this file's hash
    if zoo_p.exists():
        zoo = json.loads(zoo_p.read_text())
        words = DESCRIPTIONS.get(obj['arch'])
        for e in zoo['models']:
            if e.get('bundled') and e['file'] == a.out.name:
                e.update(sha256=card['sha256'], bytes=card['bytes'], trained=card['training']['command'], card=card_path.name, arch=obj['arch'],
                         description=words.format(frozen=', frozen' if obj['config'].get('freeze_encoder') else '') if words else e.get('description', ''))
        zoo_p.write_text(json.dumps(zoo, indent=1) + '\n')
    if a.record_into and subject:
        main_card = json.loads(a.record_into.read_text())
        runs = [r for r in main_card.get('unseen_subjects', []) if r['exclude_subject'] != a.exclude_subject]
        runs.append(dict(exclude_subject=a.exclude_subject, n_train=len(train), command=card['training']['command'],
                         arch=obj['arch'], epochs=a.epochs, seconds=round(seconds), **scores['subject'],
                         **({'temperature': curve} if curve else {})))
        main_card['unseen_subjects'] = runs
        a.record_into.write_text(json.dumps(main_card, indent=1) + '\n')
    if subject: g, m = scores['subject']['gray'], scores['subject']['dayone']
    else: g, m = scores['gray'], scores['dayone']
    print(f"gray   PSNR {g['psnr']:.2f} AuC {g['auc']:.2f}\ndayone PSNR {m['psnr']:.2f} AuC {m['auc']:.2f} CF ratio {m.get('cf_ratio')}"
          f"\n{a.out} ({a.out.stat().st_size/1e6:.1f} MB), card {card_path}; {seconds/60:.1f} min of training", flush=True)


def _cpu()->str:
    try:
        for l in Path('/proc/cpuinfo').read_text().splitlines():
            if l.startswith('model name'): return l.split(':', 1)[1].strip()
    except OSError: pass
    return platform.machine()


if __name__ == '__main__': main()
