#!/usr/bin/env python
"""Places205 test set (testSetPlaces205_resize.tar.gz, about 41,000 images at 256x256, MIT CSAIL):
download, verify, extract safely, then a seeded subset split into DEST/train and DEST/valid (JPEG, short
side --size). The S4 data.

Examples:
  python data_scripts/places205.py --dest ~/colorize_data/places205 --n-valid 1000    # S4: all ~41k, 1,000 of them valid
  python data_scripts/places205.py --dest ~/colorize_data/places205 --limit 5000      # a quicker 4,500 / 500 subset

No checksum is published for this archive (none is known to this script): the download is checked
against the server's Content-Length, and the gzip stream's CRC and the tar structure are checked when it
is read. Pass --md5/--sha256 if you have a trusted value.

Terms: the Places images are for non-commercial research and education (MIT CSAIL's terms of use); read
them on the Places website before downloading, and do not redistribute the images.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C

URL = 'http://data.csail.mit.edu/places/places205/testSetPlaces205_resize.tar.gz'


def main(argv=None):
    p = C.parser(__doc__.split('\n\n')[0], epilog=__doc__.split('\n\n', 1)[1])
    C.add_url_options(p, f"default: {URL}")
    args = p.parse_args(argv)
    C.check_args(p, args)
    url = args.url or URL
    key = C.subset_key('places205', url, args)
    if not args.force and (man := C.up_to_date(args.dest, key)):
        C.report_up_to_date(args.dest, man, args.quiet); return 0
    exp = C.Expected(md5=args.md5, sha256=args.sha256, source='given on the command line') if (args.md5 or args.sha256) else C.Expected()
    raw = C.fetch_and_extract(url, args.dest/'raw'/C.stem_of(C.url_name(url)), args.downloads, exp, args)
    pool = C.pool_from(raw)
    if not pool: raise C.DataScriptError(f"No images found in {raw} (extracted from {url})")
    if not args.quiet: C.say(f"{len(pool):,} images in {raw}")
    C.build_subset(args.dest, key, pool, args, C.photo_job(args.size, args.quality),
                   source_info=dict(url=url, n_available=len(pool)), what='photos')
    return 0


if __name__ == '__main__':
    sys.exit(C.run(main))
