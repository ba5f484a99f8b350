#!/usr/bin/env python
"""Kaggle "Anime Sketch Colorization Pair" (ktaebum/anime-sketch-colorization-pair): side-by-side PNG
pairs, colour on the left half and sketch on the right, in train/ and val/ folders. The S2 data.

Where the data comes from, in this order:
  1. the dataset attached to a Kaggle notebook (Add Input), found under --kaggle-input (default
     /kaggle/input): read in place, no credentials needed;
  2. otherwise the `kaggle` package downloads it into DEST/downloads (Kaggle resumes an interrupted
     download itself), with your credentials: ~/.kaggle/kaggle.json (or $KAGGLE_CONFIG_DIR/kaggle.json),
     or KAGGLE_USERNAME and KAGGLE_KEY, or a newer API token (KAGGLE_API_TOKEN, ~/.kaggle/access_token).
     The key is never printed or logged. The zip is then checked (CRCs) and extracted safely.

Pairs stay pairs: the dataset's own train/val split is kept (val/ -> DEST/valid); each half is resized to
--size x --size (so a pair becomes 2*SIZE x SIZE, still 2:1; never enlarged; 0 keeps the original), and
saved as PNG by default (lossless, kind to line art) or JPEG with --format jpg. Files that are not 2:1
pairs or cannot be read are skipped with a warning naming each.

Examples:
  python data_scripts/anime_pairs.py --dest ~/colorize_data/anime                    # everything, pairs 512x256
  python data_scripts/anime_pairs.py --dest ~/colorize_data/anime --limit 2000       # 1,800 train + 200 valid pairs
  python data_scripts/anime_pairs.py --dest ~/colorize_data/anime --kaggle-input ~/my_copy/anime-sketch-colorization-pair

Terms: those stated on the dataset's Kaggle page; the pictures are fan art collected from the web, so
treat them as research/educational material only.
"""
import json, os, shutil, stat, sys
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C

DATASET = 'ktaebum/anime-sketch-colorization-pair'
SECRETS: list[str] = []        # credential strings found: scrubbed from anything this script prints

HOW_TO = """To download {slug} with the kaggle package you need a Kaggle API token:
  1. Sign in at https://www.kaggle.com, open Settings -> API and choose "Create New Token":
     your browser downloads kaggle.json.
  2. Either save it as ~/.kaggle/kaggle.json and make it private: chmod 600 ~/.kaggle/kaggle.json
     (or put it in a folder named by $KAGGLE_CONFIG_DIR),
     or export its two values: export KAGGLE_USERNAME=<username> KAGGLE_KEY=<key>
     (a newer-style token: export KAGGLE_API_TOKEN=<token>, or save it as ~/.kaggle/access_token).
     On Colab, keep them in Colab secrets and set the environment variables in a cell; never commit them.
  3. Run this script again.
Inside a Kaggle notebook no token is needed: attach the dataset with "Add Input"; it is then read from
{kin}/{name} (see --kaggle-input)."""


def _secret_file_values(p: Path) -> list[str]:
    "String values in a JSON credentials file (to be scrubbed), [] if unreadable."
    try: d = json.loads(p.read_text())
    except (OSError, ValueError): return []
    return [v for v in d.values() if isinstance(v, str) and len(v) >= 8] if isinstance(d, dict) else []


def kaggle_config_dir(env=os.environ) -> Path:
    "Where the kaggle package looks for kaggle.json (same rule as kaggle 1.7/2.x)."
    if env.get('KAGGLE_CONFIG_DIR'): return Path(env['KAGGLE_CONFIG_DIR']).expanduser()
    d = Path('~/.kaggle').expanduser()
    if sys.platform.startswith('linux') and not d.exists():
        return Path(env.get('XDG_CONFIG_HOME') or Path('~/.config').expanduser())/'kaggle'
    return d


def find_credentials(env=os.environ) -> str | None:
    """Where Kaggle credentials come from (a description with no secret in it), or None if there are none.
    Every secret found is added to `SECRETS`. A malformed kaggle.json is an error naming the file."""
    where = None
    tok = env.get('KAGGLE_API_TOKEN')
    if tok:
        if Path(tok).expanduser().is_file():
            SECRETS.extend(x.strip() for x in [Path(tok).expanduser().read_text()] if x.strip()); where = f"the token file named by KAGGLE_API_TOKEN"
        else: SECRETS.append(tok); where = "the KAGGLE_API_TOKEN environment variable"
    for f in ('access_token', 'access_token.txt'):
        p = Path('~/.kaggle').expanduser()/f
        if p.is_file() and p.read_text().strip():
            SECRETS.append(p.read_text().strip()); where = where or str(p)
    cfg = kaggle_config_dir(env)/'kaggle.json'
    user, key = None, None
    if cfg.is_file():
        try: d = json.loads(cfg.read_text())
        except ValueError:
            raise C.DataScriptError(f"{cfg} is not valid JSON: it should be the kaggle.json downloaded from Kaggle "
                                    '({"username": "...", "key": "..."}); download a new token if in doubt') from None
        except OSError as e:
            raise C.DataScriptError(f"Cannot read {cfg} ({e.strerror}): check its permissions (chmod 600 {cfg})") from None
        if not isinstance(d, dict): raise C.DataScriptError(f"{cfg} should hold a JSON object with \"username\" and \"key\"")
        user, key = d.get('username'), d.get('key')
        if isinstance(key, str) and key: SECRETS.append(key)
        if os.name == 'posix' and cfg.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            C.warn(f"{cfg} is readable by other users: chmod 600 {cfg}")
    if env.get('KAGGLE_KEY'): SECRETS.append(env['KAGGLE_KEY'])
    user, key = env.get('KAGGLE_USERNAME') or user, env.get('KAGGLE_KEY') or key
    if user and key:
        src = [s for s, ok in ((str(cfg), cfg.is_file()), ('KAGGLE_USERNAME/KAGGLE_KEY', env.get('KAGGLE_USERNAME') or env.get('KAGGLE_KEY'))) if ok]
        where = where or ' + '.join(src)
    elif (user or key) and not where:
        have, miss = ('username', 'key') if user else ('key', 'username')
        raise C.DataScriptError(f"Incomplete Kaggle credentials: a {have} but no {miss} (looked in {cfg} and KAGGLE_USERNAME/KAGGLE_KEY).\n"
                                + HOW_TO.format(slug=DATASET, kin='/kaggle/input', name=DATASET.split('/')[1]))
    oauth = Path('~/.kaggle/credentials.json').expanduser()
    if oauth.is_file():
        SECRETS.extend(_secret_file_values(oauth)); where = where or f"{oauth} (kaggle auth login)"
    return where


def _scrub(s: str) -> str:
    for x in SECRETS:
        if x: s = s.replace(x, '***')
    return s


class _ScrubbingStream:
    "A text stream that replaces any credential string by *** before writing (defence in depth)."
    def __init__(self, stream): self._s = stream
    def write(self, s): return self._s.write(_scrub(s))
    def __getattr__(self, k): return getattr(self._s, k)


@contextmanager
def _scrubbed_output():
    out, err = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = _ScrubbingStream(out), _ScrubbingStream(err)
    try: yield
    finally: sys.stdout, sys.stderr = out, err


def find_attached(kin: Path, slug: str) -> Path | None:
    "The dataset's folder under Kaggle's input folder `kin` (or `kin` itself if it holds train/ and val/), else None."
    kin = Path(kin).expanduser()
    if not kin.is_dir(): return None
    owner, name = slug.split('/')
    for c in (kin/name, kin/'datasets'/owner/name, kin/owner/name):
        if c.is_dir(): return c
    for c in (kin, kin/'data'):
        if (c/'train').is_dir() and (c/'val').is_dir(): return kin
    return None


def split_dirs(root: Path) -> tuple[Path, Path]:
    "The train/ and val/ folders of the dataset under `root` (e.g. data/train and data/val)."
    cands = [root/'data', root] + sorted(p for p in root.iterdir() if p.is_dir()) + sorted(p for p in root.glob('*/*') if p.is_dir())
    for c in cands:
        if (c/'train').is_dir() and (c/'val').is_dir(): return c/'train', c/'val'
    raise C.DataScriptError(f"No train/ and val/ folders found in {root} (expected data/train/*.png and data/val/*.png)")


def kaggle_download(slug: str, downloads: Path, args, force=False) -> Path:
    "Download the dataset zip with the kaggle package (imported only now); the zip's path."
    downloads.mkdir(parents=True, exist_ok=True)
    with _scrubbed_output():
        try: import kaggle                      # kaggle authenticates when imported: only after credentials were found
        except ImportError as e:
            raise C.DataScriptError(f"The kaggle package is needed to download {slug}: pip install kaggle ({e})") from None
        except SystemExit:
            raise C.DataScriptError("The kaggle package refused the credentials when it was imported") from None
        api = kaggle.api
        try: api.authenticate()
        except SystemExit:
            raise C.DataScriptError("Kaggle did not accept the credentials: create a new token (Settings -> API)") from None
        if not args.quiet: C.say(f"downloading {slug} with the kaggle package into {downloads}")
        try: api.dataset_download_files(slug, path=str(downloads), force=force, quiet=args.quiet, unzip=False)
        except (Exception, SystemExit) as e:
            raise C.DataScriptError(f"Kaggle download of {slug} failed ({type(e).__name__}: {_scrub(str(e))})") from None
    z = downloads/f"{slug.split('/')[1]}.zip"
    if not z.is_file(): raise C.DataScriptError(f"The kaggle package reported no error but {z} is missing")
    return z


def pair_job(size: int, fmt: str, quality: int):
    "`job(src, out)`: a side-by-side pair, each half resized to size x size (never enlarged), saved as PNG/JPEG."
    from PIL import Image
    open_rgb, ImageReadError = C.image_reader()
    def job(src, out):
        try: img = open_rgb(src)
        except ImageReadError as e: return e.reason
        w, h = img.size
        if abs(w - 2*h) > 2: return f"not a side-by-side pair: {w}x{h} pixels, expected a width of 2 x height"
        if size and h > size:
            halves = [img.crop(b).resize((size, size), Image.Resampling.LANCZOS) for b in ((0, 0, w//2, h), (w//2, 0, w, h))]
            img = Image.new('RGB', (2*size, size))
            img.paste(halves[0], (0, 0)); img.paste(halves[1], (size, 0))
        out.parent.mkdir(parents=True, exist_ok=True)
        if fmt == 'png': img.save(out, 'PNG')
        else: img.save(out, 'JPEG', quality=quality)
        return None
    return job


def main(argv=None):
    p = C.parser(__doc__.split('\n\n')[0], epilog=__doc__.split('\n\n', 1)[1],
                 size_help="height of a pair: each half is resized to SIZE x SIZE, so pairs become 2*SIZE x SIZE; "
                           "never enlarged; 0 keeps the original (default 256)")
    p.add_argument('--dataset', default=DATASET, help=f"Kaggle dataset owner/name (default {DATASET})")
    p.add_argument('--kaggle-input', type=Path, default=Path('/kaggle/input'),
                   help="Kaggle's folder of attached datasets, or the dataset's own folder (default /kaggle/input)")
    p.add_argument('--format', choices=('png', 'jpg'), default='png', help="format of the written pairs (default png)")
    args = p.parse_args(argv)
    C.check_args(p, args)
    if args.dataset.count('/') != 1: p.error(f"--dataset must be owner/name, got {args.dataset!r}")
    slug, name = args.dataset, args.dataset.split('/')[1]
    key = C.subset_key('anime_pairs', slug, args, format=args.format)
    if not args.force and (man := C.up_to_date(args.dest, key)):
        C.report_up_to_date(args.dest, man, args.quiet); return 0
    src = find_attached(args.kaggle_input, slug)
    raw = args.dest/'raw'/name
    if src is not None:
        if not args.quiet: C.say(f"using the attached dataset in {src} (no download, no credentials needed)")
        source = dict(dataset=slug, attached=str(src))
    elif (m := C.read_json(raw/C.SOURCE_MARKER)) and m.get('dataset') == slug:
        if not args.quiet: C.say(f"using the data already extracted in {raw}")
        src, source = raw, dict(dataset=slug, downloaded=str(raw))
    else:
        where = find_credentials()
        if where is None:
            raise C.DataScriptError(f"No Kaggle credentials found, and {slug} is not attached under {args.kaggle_input}.\n"
                                    + HOW_TO.format(slug=slug, kin=args.kaggle_input, name=name))
        if not args.quiet: C.say(f"Kaggle credentials: from {where}")
        for attempt in (1, 2):
            z = kaggle_download(slug, args.downloads, args, force=attempt == 2)
            if raw.exists(): shutil.rmtree(raw)
            try:
                C.safe_extract(z, raw, marker=dict(dataset=slug, archive=z.name, size=z.stat().st_size), quiet=args.quiet)
                break
            except C.UnsafeArchiveError: raise
            except C.ArchiveError as e:
                if attempt == 2: raise
                C.warn(f"{e}\nDeleting {z} and downloading it again from the beginning.")
                z.unlink()
        if args.delete_archive:
            z.unlink()
            if not args.quiet: C.say(f"deleted {z} (--delete-archive)")
        src, source = raw, dict(dataset=slug, downloaded=str(raw))
    tr, va = split_dirs(src)
    pool, vpool = C.pool_from(tr), C.pool_from(va)
    if not pool: raise C.DataScriptError(f"No images in {tr}")
    if not args.quiet: C.say(f"{len(pool):,} train and {len(vpool):,} val pairs in {tr.parent}")
    C.build_subset(args.dest, key, pool, args, pair_job(args.size, args.format, args.quality),
                   ext='.png' if args.format == 'png' else '.jpg', valid_pool=vpool,
                   source_info={**source, 'n_available': [len(pool), len(vpool)]}, what='pairs',
                   resize_note=(f"each half {args.size}x{args.size} (pairs {2*args.size}x{args.size}), never enlarged" if args.size
                                else "original size") + f", {args.format.upper()}")
    return 0


if __name__ == '__main__':
    sys.exit(C.run(main, scrub=lambda: SECRETS))
