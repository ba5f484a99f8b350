#!/usr/bin/env python
"""Places365 "small images" (256x256) from MIT CSAIL: download, verify, extract safely, then a seeded
subset split into DEST/train and DEST/valid (JPEG, short side --size). The S1 data.

Examples:
  python data_scripts/places365.py --dest ~/colorize_data/places365 --limit 5000          # S1: 5,000 validation images
  python data_scripts/places365.py --dest ~/colorize_data/places365 --limit 5000 --seed 1 # another subset, no new download
  python data_scripts/places365.py --dest ~/colorize_data/p365train --archive train-standard --limit 20000

Terms: the Places images are for non-commercial research and education (MIT CSAIL's terms of use); read
them on the Places website before downloading, and do not redistribute the images.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C

BASE_URL = 'http://data.csail.mit.edu/places/places365/'
# The small (256x256) image archives and their MD5s, as hard-coded in torchvision.datasets.Places365
# (`_IMAGES_META[(split, True)]`, same base URL); tests/test_data_scripts.py checks them against the
# installed torchvision. Sizes are not hard-coded: the download is checked against Content-Length.
ARCHIVES = {
    'val':             ('val_256.tar', 'e27b17d8d44f4af9a78502beb927f808'),                      # 36,500 images
    'train-standard':  ('train_256_places365standard.tar', '53ca1c756c3d1e7809517cc47c5561c5'),  # ~1.8M images
    'train-challenge': ('train_256_places365challenge.tar', '741915038a5e3471ec7332404dfb64ef'), # ~8M images
    'test':            ('test_256.tar', 'f532f6ad7b582262a2ec8009075e186b'),                     # 328,500 images
}


def main(argv=None):
    p = C.parser(__doc__.split('\n\n')[0], epilog=__doc__.split('\n\n', 1)[1])
    p.add_argument('--archive', '--split', dest='archive', choices=list(ARCHIVES), default='val',
                   help="which small-images archive (default val: 36,500 images, the quickest to download)")
    C.add_url_options(p, "default: the official MIT CSAIL archive for --archive")
    args = p.parse_args(argv)
    C.check_args(p, args)
    name, md5 = ARCHIVES[args.archive]
    official = BASE_URL + name
    url = args.url or official
    key = C.subset_key('places365', url, args)
    if not args.force and (man := C.up_to_date(args.dest, key)):
        C.report_up_to_date(args.dest, man, args.quiet); return 0
    if args.md5 or args.sha256:
        exp = C.Expected(md5=args.md5, sha256=args.sha256, source='given on the command line')
    elif url == official:
        exp = C.Expected(md5=md5, source="MD5 published for Places365, as in torchvision's Places365 table")
    else:
        exp = C.Expected()
    raw = C.fetch_and_extract(url, args.dest/'raw'/C.stem_of(C.url_name(url)), args.downloads, exp, args)
    pool = C.pool_from(raw)
    if not pool: raise C.DataScriptError(f"No images found in {raw} (extracted from {url})")
    if not args.quiet: C.say(f"{len(pool):,} images in {raw}")
    C.build_subset(args.dest, key, pool, args, C.photo_job(args.size, args.quality),
                   source_info=dict(url=url, archive=name if url == official else None, n_available=len(pool)), what='photos')
    return 0


if __name__ == '__main__':
    sys.exit(C.run(main))
