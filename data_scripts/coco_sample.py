#!/usr/bin/env python
"""COCO sample (fastai's URLs.COCO_SAMPLE, coco_sample.tgz, about 21.8k COCO 2017 photos in train_sample/)
placed where fastai's untar_data keeps it, then a seeded subset split into DEST/train and DEST/valid
(JPEG, short side --size).

The archive is downloaded into fastai's archive folder and extracted into fastai's data folder
(~/.fastai, or $FASTAI_HOME, or --fastai-home) exactly as `untar_data(URLs.COCO_SAMPLE)` lays it out, but
with this project's resumable download and safe extraction; `untar_data` is then called to resolve the
folder, so lessons calling `untar_data(URLs.COCO_SAMPLE)` find it without downloading again. A folder
fastai extracted earlier is used as it is.

Examples:
  python data_scripts/coco_sample.py --dest ~/colorize_data/coco --limit 10000     # the common 10k-image tutorial set
  python data_scripts/coco_sample.py --dest ~/colorize_data/coco --limit 2000 --size 128

Verification: size and MD5 of the first MiB, from fastai's own download_checks.py (the values untar_data
uses); the gzip CRC and tar structure are checked when the archive is read.

Terms: the COCO images come from Flickr and keep their owners' licences (COCO lists one per image); the
annotations are CC BY 4.0. Fine for learning and research; check the licences before redistributing.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C


def main(argv=None):
    p = C.parser(__doc__.split('\n\n')[0], epilog=__doc__.split('\n\n', 1)[1], downloads=False)
    C.add_url_options(p, "default: fastai's URLs.COCO_SAMPLE")
    p.add_argument('--fastai-home', type=Path, default=None, help="fastai's config folder, whose archive/ and data/ are used "
                   "(untar_data's `base`; default: $FASTAI_HOME or ~/.fastai, as fastai itself)")
    args = p.parse_args(argv)
    C.check_args(p, args)
    key = C.subset_key('coco_sample', args.url or 'fastai URLs.COCO_SAMPLE', args)
    if not args.force and (man := C.up_to_date(args.dest, key)):       # before importing fastai: a no-op is instant
        C.report_up_to_date(args.dest, man, args.quiet); return 0
    if not args.quiet: C.say("importing fastai ...")
    import fastai.data
    from fastai.data.external import URLs, fastai_cfg, untar_data
    from fastcore.net import urldest
    from fastdownload import FastDownload, checks_module, read_checks
    url = args.url or URLs.COCO_SAMPLE
    base = str(args.fastai_home.expanduser().absolute()) if args.fastai_home else None
    fd = FastDownload(fastai_cfg() if base is None else None, base=base or '~/.fastai', module=fastai.data)
    fd.arch_path().mkdir(parents=True, exist_ok=True)
    arch = urldest(url, fd.arch_path())
    data = fd.data_path('data', arch)
    if data.exists():
        if not args.quiet: C.say(f"using the COCO sample already in fastai's data folder: {data}")
    else:
        if args.md5 or args.sha256: exp = C.Expected(md5=args.md5, sha256=args.sha256, source='given on the command line')
        elif (chk := read_checks(checks_module(fastai.data)).get(url)):
            exp = C.Expected(size=chk[0], md5_first_mib=chk[1], source=f"fastai {fastai.__version__} download_checks.py")
        else: exp = C.Expected()
        C.download(url, arch, exp, retries=args.retries, quiet=args.quiet, wait=args.retry_wait)
        C.safe_extract(arch, data, marker=dict(url=url, archive=arch.name, size=arch.stat().st_size), flatten=True, quiet=args.quiet)
        if args.delete_archive:
            arch.unlink(); arch.with_name(arch.name + '.json').unlink(missing_ok=True)
            if not args.quiet: C.say(f"deleted {arch} (--delete-archive)")
    path = untar_data(url, base=base)      # finds the extracted folder: no download, no extraction
    if Path(path).resolve() != data.resolve():
        raise C.DataScriptError(f"fastai's untar_data returned {path}, expected {data}: check {fd.cfg.config_file}")
    img_dir = path/'train_sample' if (path/'train_sample').is_dir() else path
    pool = C.pool_from(img_dir)
    if not pool: raise C.DataScriptError(f"No images found in {img_dir} (from {url})")
    if not args.quiet: C.say(f"{len(pool):,} images in {img_dir}")
    C.build_subset(args.dest, key, pool, args, C.photo_job(args.size, args.quality),
                   source_info=dict(url=url, fastai_data=str(path), n_available=len(pool)), what='photos')
    return 0


if __name__ == '__main__':
    sys.exit(C.run(main))
