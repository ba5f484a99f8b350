"""Shared machinery of the dataset scripts in `data_scripts/` (not part of the installed package).

- `download`: HTTP(S) download with a progress bar, resume of an interrupted transfer (HTTP Range on a
  `.part` file, checked to have been honoured with 206), a clean restart when the partial file is
  unusable, size/checksum verification, and an atomic rename so the final file only appears complete.
- `safe_extract`: tar / tar.gz / zip extraction that refuses, before writing anything, members that would
  land outside the target folder (`..`, absolute paths, links pointing outside), extracts into a staging
  folder and renames it into place only when complete.
- `build_subset`: seeded `--limit N` subset, train/valid split by file, resize (short side) and JPEG
  re-encoding into `DEST/train` and `DEST/valid`, with a `manifest.json` that makes a second run a no-op.
"""
from __future__ import annotations

import argparse, hashlib, http.client, json, os, posixpath, random, re, shutil, socket, stat, sys, tarfile
import gzip, time, urllib.error, urllib.parse, urllib.request, zipfile, zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

MiB = 1 << 20
MANIFEST = 'manifest.json'
PENDING = '.manifest-pending.json'          # files a build may touch while it swaps folders (crash safety)
BUILD_DIR, OLD_DIR = '.data_scripts-build', '.data_scripts-old'
SOURCE_MARKER = '.data_scripts-source.json'  # written inside an extracted folder: where it came from
IMAGE_EXTS = ('.jpg', '.jpeg', '.png', '.webp', '.bmp', '.tif', '.tiff')
USER_AGENT = 'colorize-nbdev-data-scripts/1 (+https://github.com/colorize-nbdev/colorize-nbdev)'


class DataScriptError(Exception):
    "An error the scripts report as one line (`error: ...`) and exit 1."


class DownloadError(DataScriptError): pass


class ChecksumError(DownloadError): pass


class ArchiveError(DataScriptError): pass


class UnsafeArchiveError(ArchiveError):
    "An archive member would be written outside the target folder; nothing was extracted."


# ---------------------------------------------------------------------------------------------------------
# Messages and progress
# ---------------------------------------------------------------------------------------------------------
def say(msg: str):
    "A progress message (stdout)."
    print(msg, flush=True)


def warn(msg: str):
    "A warning (stderr), one line per problem."
    print(f"WARNING: {msg}", file=sys.stderr, flush=True)


def human(n: float) -> str:
    "Bytes as a short human-readable string."
    for unit in ('B', 'KiB', 'MiB', 'GiB', 'TiB'):
        if abs(n) < 1024 or unit == 'TiB': return f"{n:.0f} {unit}" if unit == 'B' else f"{n:.1f} {unit}"
        n /= 1024


class Progress:
    """A tqdm-style progress bar on stderr: redrawn in place on a terminal, one line per 10% otherwise
    (logs, CI, notebooks' `!python`), so long downloads and conversions always show they are moving."""
    def __init__(self, total: int | None, desc: str, unit: str = '', quiet: bool = False, start: int = 0):
        self.total, self.desc, self.unit, self.quiet = total, desc, unit, quiet
        self.n = self.start = start
        self.t0 = self.t_draw = time.monotonic()
        self.tty = sys.stderr.isatty()
        self.next_pct = 10
        self.closed = False
        if not quiet and not self.tty:
            print(f"{desc}: {self._amount()}" + (" (resuming)" if start else ""), file=sys.stderr, flush=True)

    def _amount(self):
        if self.unit == 'B': return human(self.n) + (f"/{human(self.total)}" if self.total else '')
        return f"{self.n:,}" + (f"/{self.total:,}" if self.total else '') + (f" {self.unit}" if self.unit else '')

    def _line(self):
        dt = max(time.monotonic() - self.t0, 1e-9)
        rate = (self.n - self.start)/dt
        rate_s = f"{human(rate)}/s" if self.unit == 'B' else f"{rate:.1f} {self.unit or 'it'}/s"
        if self.total:
            frac = min(self.n/self.total, 1.0)
            bar = '#'*int(frac*25) + '-'*(25 - int(frac*25))
            eta = (self.total - self.n)/rate if rate > 0 else 0
            return f"{self.desc}: {frac*100:5.1f}% |{bar}| {self._amount()} {rate_s} eta {eta:.0f}s"
        return f"{self.desc}: {self._amount()} {rate_s}"

    def update(self, k: int = 1):
        self.n += k
        if self.quiet: return
        now = time.monotonic()
        if self.tty:
            if now - self.t_draw > 0.2 or (self.total and self.n >= self.total):
                print('\r' + self._line(), end='', file=sys.stderr, flush=True)
                self.t_draw = now
        elif self.total:
            pct = 100*self.n/self.total
            if pct >= self.next_pct:
                print(self._line(), file=sys.stderr, flush=True)
                while self.next_pct <= pct: self.next_pct += 10

    def close(self):
        if self.closed or self.quiet: return
        self.closed = True
        if self.tty: print('\r' + self._line(), file=sys.stderr, flush=True)
        elif not self.total or self.n < self.total: print(self._line(), file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------------------
# Files
# ---------------------------------------------------------------------------------------------------------
def read_json(p: Path):
    "Parsed JSON file `p`, or None if it is missing or unreadable."
    try: return json.loads(Path(p).read_text())
    except (OSError, ValueError): return None


def write_json(p: Path, obj):
    "Write `obj` to `p` atomically (temporary file, then rename)."
    p = Path(p)
    tmp = p.with_name(p.name + '.tmp')
    tmp.write_text(json.dumps(obj, indent=1, sort_keys=True))
    os.replace(tmp, p)


def check_free_space(folder: Path, need: int, what: str):
    "Clear error if `folder`'s file system has less than `need` bytes free."
    folder = Path(folder)
    while not folder.exists(): folder = folder.parent
    free = shutil.disk_usage(folder).free
    if need > free:
        raise DataScriptError(f"Not enough disk space for {what}: needs {human(need)}, {folder} has {human(free)} free.")


@dataclass
class Expected:
    "What a downloaded file must match; `source` says where the values come from (printed)."
    size: int | None = None
    md5: str | None = None
    sha256: str | None = None
    md5_first_mib: str | None = None        # fastai's download_checks.py: (size, MD5 of the first MiB)
    source: str = ''

    def describe(self) -> str:
        got = [f"{k} {v}" for k, v in (('size', self.size), ('MD5', self.md5), ('SHA-256', self.sha256),
                                      ('MD5 of the first MiB', self.md5_first_mib)) if v]
        if not got: return "no published size or checksum known: checking the size against Content-Length and the archive's own integrity"
        return ', '.join(got) + (f" ({self.source})" if self.source else '')


def digests(path: Path, quiet=False, desc=None) -> dict:
    "`size`, `md5`, `sha256` and `md5_first_mib` of file `path`, computed in one pass (with progress)."
    path = Path(path)
    md5, sha, first = hashlib.md5(), hashlib.sha256(), None
    size = path.stat().st_size
    bar = Progress(size, desc or f"checking {path.name}", 'B', quiet)
    with open(path, 'rb') as f:
        while chunk := f.read(4*MiB):
            if first is None: first = hashlib.md5(chunk[:MiB]).hexdigest()
            md5.update(chunk); sha.update(chunk); bar.update(len(chunk))
    bar.close()
    if first is None: first = hashlib.md5(b'').hexdigest()
    return dict(size=size, md5=md5.hexdigest(), sha256=sha.hexdigest(), md5_first_mib=first)


def mismatch(got: dict, exp: Expected) -> str | None:
    "Description of how `got` (from `digests`) differs from `exp`, or None if it matches."
    for key, name in (('size', 'size'), ('md5', 'MD5'), ('sha256', 'SHA-256'), ('md5_first_mib', 'MD5 of the first MiB')):
        want = getattr(exp, key)
        if want is None: continue
        have = got.get(key)
        if isinstance(want, str): want, have = want.lower(), (have or '').lower()
        if have != want:
            return f"{name} is {have}, expected {want}" + (f" ({exp.source})" if exp.source else '')
    return None


# ---------------------------------------------------------------------------------------------------------
# Download with resume
# ---------------------------------------------------------------------------------------------------------
class _Restart(Exception):
    "The partial file cannot be continued: start again from byte 0 (does not count as a retry)."


_CONTENT_RANGE = re.compile(r'bytes\s+(\d+)-(\d+)/(\d+|\*)')


def _transfer(url, part: Path, pmeta_p: Path, quiet, timeout) -> tuple[int, bool]:
    """One HTTP request that appends to (resume) or rewrites `part`. Returns (total size, resumed?).
    Raises network errors (retried by the caller) and `_Restart` when the partial file is unusable."""
    pmeta = read_json(pmeta_p) or {}
    have = part.stat().st_size if part.exists() else 0
    if have and pmeta.get('url') != url: raise _Restart(f"{part.name} is from another URL")
    total = pmeta.get('total')
    if have and total and have > total: raise _Restart(f"{part.name} is larger than the file on the server")
    if have and total and have == total: return total, True
    headers = {'User-Agent': USER_AGENT, 'Accept-Encoding': 'identity'}
    if have:
        headers['Range'] = f"bytes={have}-"
        if pmeta.get('validator'): headers['If-Range'] = pmeta['validator']
    req = urllib.request.Request(url, headers=headers)
    try: resp = urllib.request.urlopen(req, timeout=timeout)
    except urllib.error.HTTPError as e:
        if e.code == 416 and have:
            m = _CONTENT_RANGE.match(e.headers.get('Content-Range', '') or '') or re.match(r'bytes\s+\*/(\d+)', e.headers.get('Content-Range', '') or '')
            server_total = int(m.groups()[-1]) if m and m.groups()[-1] != '*' else None
            if server_total == have: return have, True
            raise _Restart(f"the server cannot continue {part.name} (HTTP 416)")
        raise
    with resp:
        status = resp.status
        length = resp.headers.get('Content-Length')
        length = int(length) if length and length.isdigit() else None
        validator = resp.headers.get('ETag') or resp.headers.get('Last-Modified')
        resumed = False
        if have and status == 206:
            m = _CONTENT_RANGE.match(resp.headers.get('Content-Range', ''))
            if not m or int(m.group(1)) != have:
                raise _Restart(f"the server answered the resume request with the wrong range ({resp.headers.get('Content-Range')!r})")
            total = int(m.group(3)) if m.group(3) != '*' else (have + length if length is not None else None)
            if pmeta.get('total') and total and total != pmeta['total']:
                raise _Restart(f"the file on the server changed size ({pmeta['total']} -> {total} bytes)")
            mode, start, resumed = 'ab', have, True
            validator = validator or pmeta.get('validator')
            if not quiet: say(f"resuming {part.name} at {human(have)} (server answered HTTP 206)")
        elif status == 200:
            if have and not quiet:
                say(f"the server did not resume {part.name} (HTTP 200, not 206): starting again from the beginning")
            mode, start, total = 'wb', 0, length
        else:
            raise DownloadError(f"Unexpected HTTP {status} from {url}")
        if total: check_free_space(part.parent, total - start, f"downloading {part.name}")
        write_json(pmeta_p, dict(url=url, validator=validator, total=total))
        bar = Progress(total, f"downloading {part.name[:-len('.part')]}", 'B', quiet, start=start)
        try:
            with open(part, mode) as f:
                while True:
                    chunk = resp.read(MiB)
                    if not chunk: break
                    f.write(chunk); bar.update(len(chunk))
                f.flush(); os.fsync(f.fileno())
        finally: bar.close()
    size = part.stat().st_size
    if total is not None and size != total:
        raise http.client.IncompleteRead(b'', total - size) if size < total else _Restart(f"{part.name} is larger than announced")
    return size, resumed


_NETWORK_ERRORS = (urllib.error.URLError, http.client.HTTPException, ConnectionError, socket.timeout, TimeoutError)


def download(url: str, dest: Path, expected: Expected = Expected(), retries: int = 3, quiet: bool = False,
             timeout: float = 60, wait: float = 1.0) -> Path:
    """Download `url` to `dest` (atomically) unless `dest` is already there and matches `expected`.

    Bytes go to `dest.part` (with `dest.part.json` remembering URL, ETag/Last-Modified and size). A
    transfer cut off is continued with an HTTP Range request, up to `retries` times in this run with a
    growing pause, and by the next run otherwise; continuing is accepted only when the server answers 206
    with the right Content-Range, otherwise the file starts again from byte 0. The size must equal the
    server's Content-Length and `expected`; a checksum mismatch after a resumed transfer triggers one clean
    restart, a mismatch of a complete fresh download is an error (and the file is deleted)."""
    url = str(url); dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    meta_p, part = dest.with_name(dest.name + '.json'), dest.with_name(dest.name + '.part')
    pmeta_p = dest.with_name(dest.name + '.part.json')
    if dest.exists():
        meta = read_json(meta_p)
        st = dest.stat()
        has_sums = bool(expected.md5 or expected.sha256 or expected.md5_first_mib)
        need = [k for k in ('md5', 'sha256', 'md5_first_mib') if getattr(expected, k)]
        if meta and meta.get('size') == st.st_size and meta.get('mtime_ns') == st.st_mtime_ns and all(meta.get(k) for k in need): got = meta
        elif has_sums: got = digests(dest, quiet)
        else: got = dict(size=st.st_size)
        bad = mismatch(got, expected)
        if bad is None:
            if not quiet:
                if meta: say(f"{dest} is already downloaded")
                else: say(f"using {dest}, which was already there (not downloaded by this script): " +
                          (f"verified {expected.describe()}" if has_sums else "no checksum known to verify it"))
            return dest
        bad_p = dest.with_name(dest.name + '.bad')
        os.replace(dest, bad_p)
        warn(f"{dest} does not match: {bad}. Moved it to {bad_p} and downloading again.")
    if not quiet: say(f"downloading {url}\n  -> {dest}\n  verify: {expected.describe()}")
    attempt, clean_restarts, resumed_any, refetched = 0, 0, False, False
    while True:
        try:
            total, resumed = _transfer(url, part, pmeta_p, quiet, timeout)
            resumed_any |= resumed
        except _Restart as e:
            clean_restarts += 1
            if clean_restarts > 3: raise DownloadError(f"Could not download {url}: {e} (after {clean_restarts - 1} restarts)")
            warn(f"{e}: deleting {part.name} and starting again from the beginning")
            part.unlink(missing_ok=True); pmeta_p.unlink(missing_ok=True)
            continue
        except urllib.error.HTTPError as e:
            if e.code < 500: raise DownloadError(f"Could not download {url}: HTTP {e.code} {e.reason}") from None
            err = e
        except _NETWORK_ERRORS as e: err = e
        else: err = None
        if err is not None:
            e = err
            have = part.stat().st_size if part.exists() else 0
            attempt += 1
            reason = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
            if attempt > retries:
                if not have: raise DownloadError(f"Could not download {url} ({reason}): check the URL and the network, then run again.") from None
                raise DownloadError(f"Download of {url} was interrupted ({reason}) after {human(have)}. "
                                    f"The partial file {part} is kept: run the same command again to resume.") from None
            pause = min(wait*2**(attempt - 1), 30)
            warn(f"transfer failed ({reason}) after {human(have)}; retry {attempt}/{retries} in {pause:.0f}s" + (", resuming" if have else ''))
            time.sleep(pause)
            continue
        got = digests(part, quiet, f"verifying {dest.name}") if (expected.md5 or expected.sha256 or expected.md5_first_mib) \
            else dict(size=part.stat().st_size)
        bad = mismatch(got, expected)
        if bad:
            part.unlink(missing_ok=True); pmeta_p.unlink(missing_ok=True)
            if resumed_any and not refetched:
                warn(f"{dest.name} (resumed) does not match: {bad}. Deleted it; downloading it again from the beginning.")
                refetched, resumed_any = True, False
                continue
            raise ChecksumError(f"Downloaded {dest.name} from {url} does not match: {bad}. The file was deleted; "
                                "if this persists the source may have changed (or pass the right --md5/--sha256).")
        os.replace(part, dest)
        pmeta_p.unlink(missing_ok=True)
        st = dest.stat()
        write_json(meta_p, {**got, 'url': url, 'mtime_ns': st.st_mtime_ns, 'verified_against': expected.describe()})
        if not quiet:
            how = (f"matches {expected.describe()}" if (expected.md5 or expected.sha256 or expected.md5_first_mib or expected.size)
                   else "size matches Content-Length (no published checksum known)")
            say(f"downloaded {dest.name}: {st.st_size:,} bytes; {how}")
        return dest


# ---------------------------------------------------------------------------------------------------------
# Safe extraction
# ---------------------------------------------------------------------------------------------------------
def _within(root: str, p: str) -> bool:
    return p == root or p.startswith(root.rstrip(os.sep) + os.sep)


def _name_problem(name: str) -> str | None:
    "Why archive member name `name` is unsafe, or None (lexical checks: absolute paths, drives, '..')."
    n = name.replace('\\', '/')
    if n.startswith('/') or re.match(r'^[A-Za-z]:', n): return "has an absolute path"
    if '..' in n.split('/'): return "contains '..' and would be written outside the target folder"
    if '\x00' in n: return "contains a NUL character"
    return None


def _link_problem(name: str, linkname: str, hard: bool) -> str | None:
    "Why a link member is unsafe (its target lies outside the target folder), or None."
    t = linkname.replace('\\', '/')
    kind = 'hard link' if hard else 'symlink'
    if t.startswith('/') or re.match(r'^[A-Za-z]:', t): return f"is a {kind} to an absolute path ({linkname!r})"
    base = '' if hard else posixpath.dirname(name.replace('\\', '/'))
    target = posixpath.normpath(posixpath.join(base, t))
    if target == '..' or target.startswith('../'): return f"is a {kind} pointing outside the target folder ({linkname!r})"
    return None


def _members(archive: Path):
    "('tar'|'zip', [(name, kind, linkname, size)]) for every member; `kind` in file/dir/sym/hard/other."
    if zipfile.is_zipfile(archive):
        out = []
        with zipfile.ZipFile(archive) as zf:
            for i in zf.infolist():
                mode = i.external_attr >> 16
                if stat.S_ISLNK(mode): out.append((i.filename, 'sym', zf.read(i).decode('utf-8', 'replace'), 0))
                else: out.append((i.filename, 'dir' if i.is_dir() else 'file', None, i.file_size))
        return 'zip', out
    try:
        with tarfile.open(archive) as tf:
            ms = tf.getmembers()
            # read to the very end, so gzip/bz2/xz check their CRC and a truncated stream is noticed
            while tf.fileobj.read(4*MiB): pass
            end = tf.fileobj.tell()        # bytes of (uncompressed) tar data
        short = [m.name for m in ms if m.offset_data + m.size > end]
        if short: raise tarfile.ReadError(f"member {short[0]!r} is cut off")
    except (tarfile.TarError, EOFError, gzip.BadGzipFile, zlib.error, zipfile.BadZipFile) as e:
        raise ArchiveError(f"{archive} is damaged, truncated or not a tar/zip archive ({type(e).__name__}: {e}). "
                           f"Delete it and run again to download it anew.") from None
    except OSError as e:
        if e.errno is not None: raise
        raise ArchiveError(f"{archive} is damaged or truncated ({type(e).__name__}: {e}). "
                           f"Delete it and run again to download it anew.") from None
    kind = lambda m: 'file' if m.isreg() else 'dir' if m.isdir() else 'sym' if m.issym() else 'hard' if m.islnk() else 'other'
    return 'tar', [(m.name, kind(m), m.linkname or None, m.size) for m in ms]


def check_archive(archive: Path) -> tuple[str, list]:
    """Raise `UnsafeArchiveError` naming the first unsafe member of `archive` (and how many more there are);
    return its type and members otherwise. Reads the whole archive (checks compressed streams' CRCs)."""
    archive = Path(archive)
    typ, members = _members(archive)
    problems = []
    for name, kind, link, _ in members:
        why = _name_problem(name)
        if why is None and kind in ('sym', 'hard'): why = _link_problem(name, link, kind == 'hard')
        if why is None and kind == 'other': why = "is a device file or FIFO, which an image dataset never needs"
        if why: problems.append((name, why))
    if problems:
        name, why = problems[0]
        more = f" (and {len(problems) - 1} more unsafe member{'s' if len(problems) > 2 else ''})" if len(problems) > 1 else ''
        raise UnsafeArchiveError(f"Refusing to extract {archive}: member {name!r} {why}{more}. Nothing was extracted.")
    return typ, members


def _check_on_disk(root_real: str, root: Path, name: str, kind: str, link: str | None):
    "Before writing member `name`: with links already extracted followed, it (and a link's target) stays inside."
    rel = name.replace('\\', '/')
    p = os.path.realpath(os.path.join(root, rel))
    if not _within(root_real, p):
        raise UnsafeArchiveError(f"member {name!r} would be written outside the target folder (through a link)")
    if kind in ('sym', 'hard'):
        base = os.path.join(root, posixpath.dirname(rel)) if kind == 'sym' else str(root)
        t = os.path.realpath(os.path.join(base, link.replace('\\', '/')))
        if not _within(root_real, t):
            raise UnsafeArchiveError(f"member {name!r} is a link whose target resolves outside the target folder ({link!r})")


_FILTER_ERROR = getattr(tarfile, 'FilterError', ())    # Pythons without extraction filters: nothing to catch


def safe_extract(archive: Path, dest: Path, marker: dict | None = None, flatten: bool = False, quiet: bool = False) -> Path:
    """Extract tar/tar.gz/zip `archive` into the new folder `dest`, safely and atomically.

    Every member is checked first (`check_archive`): if any would land outside `dest` nothing is extracted.
    Extraction goes into a staging folder next to `dest`, member by member, each re-checked against links
    already on disk (and with tarfile's `filter='data'` where Python has it); `dest` appears, by rename,
    only when everything was extracted. `flatten`: like fastai's `untar_dir`, a single top-level folder
    becomes `dest` itself. `marker` is written to `dest/.data_scripts-source.json`."""
    archive, dest = Path(archive), Path(dest)
    if dest.exists(): raise ArchiveError(f"{dest} already exists; not extracting {archive.name} over it")
    if not quiet: say(f"checking {archive.name} (every member must stay inside the target folder)")
    typ, members = check_archive(archive)
    check_free_space(dest.parent, sum(m[3] or 0 for m in members), f"extracting {archive.name}")
    staging = dest.with_name(f".{dest.name}.partial")
    if staging.exists(): shutil.rmtree(staging)      # left by an interrupted run: start clean
    staging.mkdir(parents=True)
    root_real = os.path.realpath(staging)
    bar = Progress(len(members), f"extracting {archive.name}", 'files', quiet)
    has_filter = hasattr(tarfile, 'data_filter')
    try:
        if typ == 'tar':
            with tarfile.open(archive) as tf:
                for m in tf:
                    kind = 'file' if m.isreg() else 'dir' if m.isdir() else 'sym' if m.issym() else 'hard' if m.islnk() else 'other'
                    _check_on_disk(root_real, staging, m.name, kind, m.linkname or None)
                    try:
                        if has_filter: tf.extract(m, staging, filter='data')
                        else:
                            if kind == 'other': raise UnsafeArchiveError(f"member {m.name!r} is a device file or FIFO")
                            tf.extract(m, staging, set_attrs=False)
                    except _FILTER_ERROR as e:
                        raise UnsafeArchiveError(f"member {m.name!r} refused by tarfile's 'data' filter ({e})") from None
                    bar.update()
        else:
            with zipfile.ZipFile(archive) as zf:
                for i in zf.infolist():
                    if stat.S_ISLNK(i.external_attr >> 16):
                        warn(f"{archive.name}: skipped symlink member {i.filename!r} (zip symlinks are not extracted)")
                        bar.update(); continue
                    _check_on_disk(root_real, staging, i.filename, 'dir' if i.is_dir() else 'file', None)
                    zf.extract(i, staging)
                    bar.update()
    except UnsafeArchiveError as e:
        shutil.rmtree(staging, ignore_errors=True)
        raise UnsafeArchiveError(f"Refusing to extract {archive}: {e}. Nothing was kept.") from None
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, gzip.BadGzipFile, zlib.error) as e:
        shutil.rmtree(staging, ignore_errors=True)
        raise ArchiveError(f"{archive} is damaged ({type(e).__name__}: {e}); nothing was kept. "
                           "Delete it and run again to download it anew.") from None
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    finally: bar.close()
    src = staging
    if flatten:
        top = [p for p in staging.iterdir()]
        if len(top) == 1 and top[0].is_dir() and not top[0].is_symlink(): src = top[0]
    if marker is not None: write_json(src/SOURCE_MARKER, marker)
    os.replace(src, dest)
    if src != staging: shutil.rmtree(staging, ignore_errors=True)
    if not quiet: say(f"extracted {len(members):,} members into {dest}")
    return dest


def url_name(url: str) -> str:
    "File name at the end of `url` ('download' if none)."
    return urllib.parse.unquote(Path(urllib.parse.urlparse(url).path).name) or 'download'


def stem_of(name: str) -> str:
    "Archive name without its .tar/.tar.gz/.tgz/.zip suffixes."
    for suf in ('.tar.gz', '.tar.bz2', '.tar.xz', '.tgz', '.tar', '.zip'):
        if name.lower().endswith(suf): return name[:-len(suf)]
    return name


def fetch_and_extract(url: str, raw: Path, downloads: Path, expected: Expected, args, flatten: bool = True) -> Path:
    """Source folder `raw`, extracted from the archive at `url` (downloaded to `downloads/`) unless an
    extraction from the same URL is already complete; `--delete-archive` removes the archive afterwards.
    `flatten`: an archive holding a single top-level folder (val_256/, testSet_resize/) is extracted
    without it, so `raw` holds the images (and their subfolders) directly."""
    raw = Path(raw)
    name = url_name(url)
    marker = read_json(raw/SOURCE_MARKER)
    if marker and marker.get('url') == url and marker.get('archive') == name:
        if not args.quiet: say(f"using the data already extracted in {raw}")
        return raw
    archive = download(url, Path(downloads)/name, expected, retries=args.retries, quiet=args.quiet, wait=args.retry_wait)
    if raw.exists():
        if not marker and any(raw.iterdir()):
            raise DataScriptError(f"{raw} exists but was not extracted by this script (no {SOURCE_MARKER}); "
                                  "move it away or choose another --dest")
        shutil.rmtree(raw)
    meta = read_json(archive.with_name(archive.name + '.json')) or {}
    safe_extract(archive, raw, marker=dict(url=url, archive=name, size=archive.stat().st_size, md5=meta.get('md5'),
                                            sha256=meta.get('sha256')), flatten=flatten, quiet=args.quiet)
    if args.delete_archive:
        archive.unlink()
        archive.with_name(archive.name + '.json').unlink(missing_ok=True)
        if not args.quiet: say(f"deleted {archive} (--delete-archive)")
    return raw


# ---------------------------------------------------------------------------------------------------------
# Subset, split, resize
# ---------------------------------------------------------------------------------------------------------
def list_images(root: Path) -> list[Path]:
    "Image files under `root` (recursive, by suffix), sorted by relative path; hidden and `._*` files skipped."
    root = Path(root)
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith('.'))
        for f in filenames:
            if not f.startswith('.') and os.path.splitext(f)[1].lower() in IMAGE_EXTS: out.append(Path(dirpath)/f)
    return sorted(out, key=lambda p: p.relative_to(root).as_posix())


def image_reader():
    "`(open_rgb, ImageReadError)` from the data lesson (`colorize_nbdev.data.core`), imported only when needed."
    try: from colorize_nbdev.data.core import open_rgb, ImageReadError
    except ImportError as e:
        raise DataScriptError(f"Cannot import colorize_nbdev.data.core ({e}): run `pip install -e .` in the repository first") from None
    return open_rgb, ImageReadError


def resize_short(img, size: int):
    "`img` with its short side `size` px (aspect kept, LANCZOS); never enlarged; `size=0` keeps it as it is."
    from PIL import Image
    w, h = img.size
    if size <= 0 or min(w, h) <= size: return img
    new = (size, max(1, round(h*size/w))) if w <= h else (max(1, round(w*size/h)), size)
    return img.resize(new, Image.Resampling.LANCZOS)


def n_valid_for(n: int, args) -> int:
    "How many of `n` files go to valid: `--n-valid` (capped at n-1), else round(n * --val-frac), at least 1 when n >= 2."
    if n < 2: return 0
    if args.n_valid is not None: return min(args.n_valid, n - 1)
    if args.val_frac <= 0: return 0
    return min(max(1, round(n*args.val_frac)), n - 1)


def _out_name(rel: str, ext: str, taken: set) -> str:
    "Output path (posix, relative) for source `rel`: same path with suffix `ext`, made unique."
    out = posixpath.splitext(rel)[0] + ext
    if out.lower() in taken: out = rel + ext
    k = 1
    while out.lower() in taken: out, k = f"{posixpath.splitext(rel)[0]}_{k}{ext}", k + 1
    taken.add(out.lower())
    return out


def _process_until(pool, n, job, out_dir: Path, ext: str, workers: int, bar: Progress, taken: set):
    """Run `job(src, out)` over `pool` (list of (rel, src)) in order until `n` succeed: images that fail to
    decode are skipped (one warning each) and replaced by the next ones. Returns (done, skipped)."""
    done, skipped, i = [], [], 0
    with ThreadPoolExecutor(max(1, workers)) as ex:
        while len(done) < n and i < len(pool):
            batch = pool[i:i + (n - len(done))]
            i += len(batch)
            outs = [_out_name(rel, ext, taken) for rel, _ in batch]
            errs = ex.map(job, [src for _, src in batch], [out_dir/o for o in outs])
            for (rel, src), out, err in zip(batch, outs, errs):
                if err is None: done.append((rel, out))
                else:
                    taken.discard(out.lower())
                    warn(f"skipped {src}: {err}")
                    skipped.append(dict(file=str(src), reason=err))
                bar.update()
    return done, skipped


def photo_job(size: int, quality: int):
    "`job(src, out)`: read any photo as RGB, short side to `size`, save JPEG `quality`; the reason if unreadable."
    open_rgb, ImageReadError = image_reader()
    def job(src, out):
        try: img = open_rgb(src)
        except ImageReadError as e: return e.reason
        img = resize_short(img, size)
        out.parent.mkdir(parents=True, exist_ok=True)
        img.save(out, 'JPEG', quality=quality)
        return None
    return job


def _owned_files(dest: Path) -> set | None:
    "Files under DEST/train and DEST/valid this script made (manifest + pending build), or None if none recorded."
    recs = [r for r in (read_json(dest/MANIFEST), read_json(dest/PENDING)) if isinstance(r, dict)]
    if not recs: return None
    return {f"{s}/{f}" for r in recs for s in ('train', 'valid') for f in r.get(s, [])}


def up_to_date(dest: Path, key: dict) -> dict | None:
    "The manifest if DEST holds a finished build with these exact arguments and all its files, else None."
    man = read_json(Path(dest)/MANIFEST)
    if not isinstance(man, dict) or man.get('key') != key or (Path(dest)/PENDING).exists(): return None
    for s in ('train', 'valid'):
        for f in man.get(s, []):
            if not (Path(dest)/s/f).is_file(): return None
    return man


def report_up_to_date(dest: Path, man: dict, quiet=False):
    if not quiet:
        say(f"{dest} is up to date ({len(man['train']):,} train + {len(man['valid']):,} valid images, "
            f"{MANIFEST} has the same arguments): nothing to do. Change --limit/--seed/--size/... or pass --force to rebuild.")


def prepare_dest(dest: Path):
    "Check that DEST's train/valid hold only files this script made (nothing of the user's is ever deleted)."
    dest = Path(dest)
    owned = _owned_files(dest)
    for s in ('train', 'valid'):
        d = dest/s
        if not d.exists(): continue
        if not d.is_dir(): raise DataScriptError(f"{d} is a file, not a folder: move it away or choose another --dest")
        for p in d.rglob('*'):
            if p.is_dir(): continue
            rel = f"{s}/{p.relative_to(d).as_posix()}"
            if owned is None:
                raise DataScriptError(f"{d} already exists and was not made by this script (no {dest/MANIFEST}), e.g. {p}: "
                                      "move it away or choose another --dest; nothing was changed")
            if rel not in owned:
                raise DataScriptError(f"{p} is not listed in {dest/MANIFEST} (added by hand?): move it out of {d} "
                                      "or choose another --dest; nothing was changed")
    for tmp in (BUILD_DIR, OLD_DIR):
        if (dest/tmp).exists(): shutil.rmtree(dest/tmp)     # left by an interrupted run


def build_subset(dest: Path, key: dict, pool: list, args, job, ext='.jpg', valid_pool: list | None = None,
                 source_info: dict | None = None, what='images', resize_note: str | None = None) -> dict:
    """Choose, convert and split images into `DEST/train` and `DEST/valid`; write `DEST/manifest.json`.

    `pool`: (relative name, source path) pairs. Without `valid_pool` the pool is shuffled with `--seed`,
    the first `--limit` images (all if no limit) that decode are kept (unreadable ones are skipped with a
    warning and replaced by the next), and the first `n_valid_for(n)` of them, in shuffled order, go to
    valid. With `valid_pool` (a dataset with its own split) each pool is shuffled and cut separately.
    The new folders are built next to the old ones and swapped in at the end."""
    dest = Path(dest)
    t0 = time.monotonic()
    prepare_dest(dest)
    rng = random.Random(args.seed)
    pool = sorted(pool); rng.shuffle(pool)
    build = dest/BUILD_DIR
    build.mkdir(parents=True)
    taken: set = set()
    if valid_pool is None:
        n = len(pool) if args.limit is None else min(args.limit, len(pool))
        bar = Progress(n, f"converting {what}", 'files', args.quiet)
        done, skipped = _process_until(pool, n, job, build/'all', ext, args.workers, bar, taken)
        bar.close()
        nv = n_valid_for(len(done), args)
        splits = {'valid': done[:nv], 'train': done[nv:]}
    else:
        valid_pool = sorted(valid_pool); rng.shuffle(valid_pool)
        if args.limit is None:
            nt, nv = len(pool), (len(valid_pool) if args.n_valid is None else min(args.n_valid, len(valid_pool)))
        else:
            nv = min(n_valid_for(args.limit, args), len(valid_pool))
            nt = min(args.limit - nv, len(pool))
        bar = Progress(nt + nv, f"converting {what}", 'files', args.quiet)
        dt, st = _process_until(pool, nt, job, build/'all-train', ext, args.workers, bar, taken)
        taken = set()
        dv, sv = _process_until(valid_pool, nv, job, build/'all-valid', ext, args.workers, bar, taken)
        bar.close()
        splits, skipped = {'train': dt, 'valid': dv}, st + sv
    lists = {}
    for s, items in splits.items():
        src_dir = build/('all' if valid_pool is None else f'all-{s}')
        for _, out in items:
            (build/s/out).parent.mkdir(parents=True, exist_ok=True)
            os.replace(src_dir/out, build/s/out)
        lists[s] = sorted(out for _, out in items)
        (build/s).mkdir(exist_ok=True)
    if not lists['train']: 
        shutil.rmtree(build)
        raise DataScriptError(f"No readable {what} found: nothing was written to {dest}")
    # swap: record what may be touched, move the old folders aside, move the new ones in, then the manifest
    old = read_json(dest/MANIFEST) or {}
    write_json(dest/PENDING, {s: sorted(set(old.get(s, [])) | set(lists[s])) for s in ('train', 'valid')})
    (dest/OLD_DIR).mkdir()
    for s in ('train', 'valid'):
        if (dest/s).exists(): os.replace(dest/s, dest/OLD_DIR/s)
        os.replace(build/s, dest/s)
    man = dict(key=key, train=lists['train'], valid=lists['valid'], skipped=skipped, source=source_info or {},
               resize=resize_note or (f"short side {args.size} px (aspect ratio kept, never enlarged), JPEG quality {args.quality}"
                                      if args.size else f"original size, JPEG quality {args.quality}"),
               created=time.strftime('%Y-%m-%d %H:%M:%S'))
    write_json(dest/MANIFEST, man)
    (dest/PENDING).unlink()
    shutil.rmtree(dest/OLD_DIR); shutil.rmtree(build)
    if not args.quiet:
        sk = f"; skipped {len(skipped)} unreadable file{'s' if len(skipped) != 1 else ''} (listed in {MANIFEST})" if skipped else ''
        say(f"wrote {len(lists['train']):,} train + {len(lists['valid']):,} valid {what} to {dest}/train and {dest}/valid "
            f"in {time.monotonic() - t0:.1f}s{sk}")
    return man


def pool_from(root: Path) -> list:
    "(relative posix name, path) of every image under `root`."
    root = Path(root)
    return [(p.relative_to(root).as_posix(), p) for p in list_images(root)]


# ---------------------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------------------
def parser(description: str, epilog: str = '', size_help: str | None = None, downloads: bool = True) -> argparse.ArgumentParser:
    "The options every script shares."
    p = argparse.ArgumentParser(description=description, epilog=epilog, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--dest', required=True, type=Path, help="output folder: DEST/train, DEST/valid, DEST/manifest.json "
                   "(and DEST/downloads, DEST/raw for the source data unless told otherwise)")
    p.add_argument('--limit', type=int, default=None, metavar='N', help="keep a random subset of N images (seeded; default: all)")
    p.add_argument('--seed', type=int, default=42, help="seed of the random subset and split (default 42)")
    g = p.add_mutually_exclusive_group()
    g.add_argument('--val-frac', type=float, default=0.1, metavar='F', help="fraction of the images that go to valid/ (default 0.1)")
    g.add_argument('--n-valid', type=int, default=None, metavar='M', help="exact number of images in valid/ (instead of --val-frac)")
    p.add_argument('--size', type=int, default=256, help=size_help or "resize so the SHORT side is SIZE px, keeping the aspect ratio; "
                   "smaller images are never enlarged; 0 keeps the original size (default 256)")
    p.add_argument('--quality', type=int, default=95, help="JPEG quality of the written images (default 95)")
    p.add_argument('--workers', type=int, default=min(8, os.cpu_count() or 1), help="threads decoding/resizing images (default: CPU count, at most 8)")
    if downloads:
        p.add_argument('--downloads', type=Path, default=None, help="folder for downloaded archives (default DEST/downloads); "
                       "an archive you put there by hand is used after verification")
    p.add_argument('--delete-archive', action='store_true', help="delete the archive once it is extracted (saves disk; a later "
                   "rebuild reuses the extracted files, but a fresh extraction would need a new download)")
    p.add_argument('--retries', type=int, default=3, help="times an interrupted transfer is resumed within one run (default 3); "
                   "a partial download is also resumed by the next run")
    p.add_argument('--retry-wait', type=float, default=1.0, metavar='SECONDS', help="pause before the first retry, doubled "
                   "each time, at most 30 s (default 1)")
    p.add_argument('--force', action='store_true', help="rebuild DEST/train and DEST/valid even if the manifest says they are up to date "
                   "(the download and extraction are still reused)")
    p.add_argument('--quiet', action='store_true', help="no progress output (warnings and errors are still printed)")
    return p


def add_url_options(p: argparse.ArgumentParser, default_url_help: str):
    p.add_argument('--url', default=None, help=f"download from this URL instead ({default_url_help}); the published checksum "
                   "then no longer applies unless you pass --md5/--sha256")
    p.add_argument('--md5', default=None, help="expected MD5 of the archive (overrides the known one)")
    p.add_argument('--sha256', default=None, help="expected SHA-256 of the archive")


def check_args(p: argparse.ArgumentParser, args):
    "argparse-style errors (exit 2) for out-of-range values."
    if args.limit is not None and args.limit < 1: p.error(f"--limit must be at least 1, got {args.limit}")
    if not 0 <= args.val_frac < 1: p.error(f"--val-frac must be in [0, 1), got {args.val_frac}")
    if args.n_valid is not None and args.n_valid < 0: p.error(f"--n-valid must be >= 0, got {args.n_valid}")
    if args.size < 0: p.error(f"--size must be >= 0 (0 keeps the original size), got {args.size}")
    if not 1 <= args.quality <= 100: p.error(f"--quality must be between 1 and 100, got {args.quality}")
    if args.workers < 1: p.error(f"--workers must be at least 1, got {args.workers}")
    if args.retries < 0: p.error(f"--retries must be >= 0, got {args.retries}")
    for h, n in (('md5', 32), ('sha256', 64)):
        v = getattr(args, h, None)
        if v is not None and not re.fullmatch(f"[0-9a-fA-F]{{{n}}}", v): p.error(f"--{h} must be {n} hexadecimal digits, got {v!r}")
    args.dest = args.dest.expanduser()
    if getattr(args, 'downloads', None) is not None: args.downloads = args.downloads.expanduser()
    if args.dest.exists() and not args.dest.is_dir(): p.error(f"--dest {args.dest} is a file, not a folder")
    if getattr(args, 'downloads', 0) is None: args.downloads = args.dest/'downloads'


def subset_key(script: str, source, args, **extra) -> dict:
    "The arguments that define a build: same key -> a second run does nothing."
    return dict(script=script, source=source, limit=args.limit, seed=args.seed,
                val_frac=None if args.n_valid is not None else args.val_frac, n_valid=args.n_valid,
                size=args.size, quality=args.quality, **extra)


def run(main, argv=None, scrub=()) -> int:
    """Run `main(argv)`; `DataScriptError`s become one line `error: ...` and exit status 1, Ctrl-C exit 130.
    Strings in `scrub` (secrets) are replaced by *** in the message."""
    def clean(s):
        for x in scrub() if callable(scrub) else scrub:
            if x: s = s.replace(x, '***')
        return s
    try: return main(argv) or 0
    except DataScriptError as e:
        print(f"error: {clean(str(e))}", file=sys.stderr, flush=True); return 1
    except Exception:
        if not scrub: raise
        import traceback                 # a script holding secrets: the traceback is printed scrubbed
        print(clean(traceback.format_exc()), file=sys.stderr, flush=True); return 1
    except KeyboardInterrupt:
        print("\ninterrupted: run the same command again to resume (finished work is kept)", file=sys.stderr, flush=True); return 130
