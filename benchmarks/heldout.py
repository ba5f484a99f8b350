"""The photos a `colorize-train` run never trained on: its validation split, linked into a folder for `colorize-eval`.

`fit_colorizer` holds out `valid_pct` of the photos (split by a seeded hash of each file's path, `split_by_file`, after
the same readability scan as `photo_dls`). Every architecture trained on the same folder with the same `valid_pct` and
`seed` holds out the same photos, so the course's models can be scored side by side on photos none of them saw.

Usage:
    python benchmarks/heldout.py --data ../shared/photos/images --out /tmp/heldout [--valid-pct 0.1] [--seed 42]
then `colorize-eval --model M.pth --data /tmp/heldout --json`. Prints the number of photos and writes symbolic links
(or copies, with --copy) named after the photos, plus `files.txt` listing the original paths.
"""
import argparse, shutil
from pathlib import Path

from colorize_nbdev.data.core import find_images, scan_images, split_by_file
from colorize_nbdev.train import TRAIN_DEFAULTS


def heldout_files(data, valid_pct=None, seed=None) -> list:
    "The validation photos `fit_colorizer(arch, data)` holds out with these settings (its defaults when None)."
    valid_pct = TRAIN_DEFAULTS['valid_pct'] if valid_pct is None else valid_pct
    seed = TRAIN_DEFAULTS['seed'] if seed is None else seed
    ok = scan_images(find_images(data), 'full')['ok']
    return split_by_file(ok, valid_pct, seed)[1]


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--data', required=True)
    p.add_argument('--out', required=True)
    p.add_argument('--valid-pct', type=float, default=None)
    p.add_argument('--seed', type=int, default=None)
    p.add_argument('--copy', action='store_true', help='copy the files instead of linking them')
    a = p.parse_args()
    files = heldout_files(a.data, a.valid_pct, a.seed)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    if any(out.iterdir()): raise SystemExit(f"{out} is not empty; give a new folder")
    names = set()
    for f in files:
        name = f.name if f.name not in names else f"{f.stem}_{len(names)}{f.suffix}"
        names.add(name)
        if a.copy: shutil.copy2(f, out/name)
        else: (out/name).symlink_to(f.resolve())
    (out/'files.txt').write_text(''.join(f"{f}\n" for f in files))
    print(f"{len(files)} held-out photos in {out}")


if __name__ == '__main__':
    main()
