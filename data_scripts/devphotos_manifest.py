#!/usr/bin/env python
"""Maintainers' tool: (re)generate colorize_nbdev/data/devphotos.csv, the manifest of `colorize-data devphotos`,
from the reference photo set and the .deb files it was made from. Not needed to use the photos.

Inputs: the reference set (--photos: SOURCES.csv, images/, licenses/, as made by the project's photo helper)
and the .deb files of its packages (--debs: a folder filled with `apt-get download PACKAGE...` on Debian 12).
For every photo it finds the file in the package (fixing SOURCES.csv's helper paths: `rccx/...` are resources
inside GCompris' .rcc files, `sel/e/...` images inside Enlightenment's .edj files, `x/PKG/` and
`/tmp/helper_data/x/PKG/` are extraction folders), records the SHA-256 of that source file, converts it with
`devphoto_jpeg` and checks the result against the reference JPEG (same size; bytes and largest pixel
difference reported), and takes each .deb's version, pool path and SHA-256 from `apt-cache show` (which must
agree with the file). Licence and attribution come from GCompris' README files and the packages'
debian/copyright (DEP-5) files.

Example (on Debian 12, from the repository root):
  mkdir -p /tmp/debs && (cd /tmp/debs && apt-get download gcompris-qt-data enlightenment-data mate-backgrounds \\
      plasma-workspace-wallpapers lxqt-themes lomiri-wallpapers-16.04 lomiri-wallpapers-20.04 palapeli-data)
  python data_scripts/devphotos_manifest.py --photos /work/shared/photos --debs /tmp/debs
"""
import argparse, csv, fnmatch, hashlib, io, posixpath, re, sys
from pathlib import Path

try: import colorize_nbdev.datasets as D
except ImportError:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1])); import colorize_nbdev.datasets as D

ROOT = Path(__file__).resolve().parents[1]


def fixed_path(pkg: str, p: str) -> str:
    "SOURCES.csv's path with the helper's extraction folder removed."
    p = p.removeprefix('/tmp/helper_data/')
    if p.startswith(f'x/{pkg}/'): p = p[len(f'x/{pkg}/'):]
    return p


def parse_dep5(text: str) -> list[dict]:
    "Stanzas of a debian/copyright file (DEP-5), with 'Files' as a list of patterns."
    out = []
    for st in D.parse_control(text):
        if 'Files' in st: st['Files'] = st['Files'].split()
        out.append(st)
    return out


def dep5_for(stanzas: list[dict], install_path: str) -> dict | None:
    """The last Files stanza matching `install_path` (an installed path; DEP-5 patterns are source paths, so a pattern
    matches when it matches a trailing part of the path, or its file name matches when it names a single file)."""
    parts = install_path.split('/')
    hit = None
    for st in stanzas:
        for pat in st.get('Files', []):
            if pat == '*' or any(fnmatch.fnmatchcase('/'.join(parts[i:]), pat) for i in range(len(parts))) \
               or (not any(c in pat for c in '*?[') and posixpath.basename(pat) == parts[-1]):
                hit = st
    return hit


def parse_gcompris_readme(text: str) -> dict:
    "file name -> {Copyright, License, Source, Comment} from a GCompris images README (blank-line separated stanzas)."
    out = {}
    for block in re.split(r'\n\s*\n', text):
        fields, files, key = {}, [], None
        for line in block.splitlines():
            m = re.match(r'^(Copyright|License|Source|Comments?|Files|Author)\s*:\s*(.*)$', line.strip())
            if m:
                key = m.group(1).rstrip('s') if m.group(1).startswith('Comment') else m.group(1)
                if key == 'Files':
                    if m.group(2).strip(): files.extend(m.group(2).split())
                else: fields[key] = m.group(2).strip()
            elif line.strip():
                if key in (None, 'Files') or re.search(r'\.(webp|svg|png|jpg|ogg|qml)$', line.strip()): files.extend(line.split())
                elif key: fields[key] += ' ' + line.strip()
        for f in files: out[f] = fields
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0], epilog=__doc__.split('\n\n', 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--photos', type=Path, required=True, help="the reference set: SOURCES.csv, images/, licenses/")
    p.add_argument('--debs', type=Path, required=True, help="folder with the .deb files of the packages")
    p.add_argument('--out', type=Path, default=ROOT/'colorize_nbdev'/'data'/'devphotos.csv')
    args = p.parse_args(argv)
    src = list(csv.DictReader(open(args.photos/'SOURCES.csv', encoding='utf-8')))
    pkgs = list(dict.fromkeys(r['package'] for r in src))
    debinfo, rows, maxdiff, identical = {}, [], 0, 0
    import numpy as np
    from PIL import Image
    for pkg in pkgs:
        cands = [f for f in args.debs.glob(f"{pkg}_*.deb")]
        if len(cands) != 1: sys.exit(f"error: expected one {pkg}_*.deb in {args.debs}, found {len(cands)}")
        deb = cands[0]
        ctl = D.deb_control(deb)
        sha = D.digests(deb, quiet=True)['sha256']
        apt = [v for v in D.apt_versions(pkg) if v['Version'] == ctl['Version']]
        if not apt: sys.exit(f"error: apt-cache show {pkg} has no version {ctl['Version']}: cannot tell the pool path")
        if apt[0]['SHA256'] != sha: sys.exit(f"error: {deb} SHA-256 {sha} differs from apt's {apt[0]['SHA256']}")
        debinfo[pkg] = dict(version=ctl['Version'], deb_path=apt[0]['Filename'], deb_size=deb.stat().st_size, deb_sha256=sha)
        prows = [r for r in src if r['package'] == pkg]
        # what to read from the package
        if pkg == 'gcompris-qt-data':
            rccs = {}
            with D._data_tar(deb) as tf:
                for m in tf:
                    n = D._deb_path(m.name)
                    if m.isreg() and n.startswith('usr/share/gcompris-qt/rcc/') and n.endswith('.rcc'):
                        rccs[n] = D.QtResources(tf.extractfile(m).read(), n)
            files = {}
            for path, res in rccs.items():
                for rp in res.paths(): files.setdefault(rp, []).append(path)
        wanted = set()
        for r in prows:
            pp = fixed_path(pkg, r['path_in_package'])
            if pkg == 'enlightenment-data':
                name = pp.split('/')[-1].rsplit('_', 1)[0]
                wanted.add(f"usr/share/enlightenment/data/backgrounds/{name}.edj")
            elif pkg != 'gcompris-qt-data': wanted.add(pp)
        wanted.add(f"usr/share/doc/{pkg}/copyright")
        if pkg == 'lxqt-themes': wanted.add('usr/share/lxqt/wallpapers/License')
        blobs = dict(D.iter_deb_files(deb, wanted))
        dep5 = parse_dep5(blobs[f"usr/share/doc/{pkg}/copyright"].decode('utf-8', 'replace'))
        for r in prows:
            pp = fixed_path(pkg, r['path_in_package'])
            row = dict(file=r['file'], package=pkg, **debinfo[pkg], container='', member='')
            lic = dict(license='', copyright='', source_url='', comment='')
            if pkg == 'gcompris-qt-data':
                member = '/' + pp.split('/', 2)[2]            # rccx/gcompris/<resource path>
                where = sorted(files.get(member, []))
                act = member.split('/activities/')[1].split('/')[0]
                pref = [w for w in where if posixpath.basename(w) == f"{act}.rcc"] or where
                if not pref: sys.exit(f"error: {member} is in no .rcc of {pkg}")
                rcc = rccs[pref[0]]
                data = rcc.read(member)
                row.update(path_in_package=pref[0], container='qt-rcc', member=member)
                d = posixpath.dirname(member)
                while d and d + '/README' not in rcc: d = posixpath.dirname(d) if '/activities/' in posixpath.dirname(d) else ''
                if d:
                    listed = parse_gcompris_readme(rcc.read(d + '/README').decode('utf-8', 'replace'))
                    info = listed.get(member[len(d) + 1:]) or listed.get(posixpath.basename(member), {})  # listed relative to the README
                    lic = dict(license=info.get('License', ''), copyright=info.get('Copyright', '') or info.get('Author', ''),
                               source_url=info.get('Source', ''), comment=info.get('Comment', ''))
                    row['license_files'] = f"{pref[0]}#{d}/README"
                else: row['license_files'] = ''
                st = dep5_for(dep5, member.lstrip('/'))
                if st and not lic['license']:
                    holders = st.get('Copyright', '').split('\n')
                    lic.update(license=st.get('License', '').split('\n')[0],
                               copyright=holders[0] + (' and others' if len(holders) > 1 else ''),
                               comment="not listed in the activity's README: licence of the package's debian/copyright "
                                       f"(Files: {' '.join(st['Files'])})")
            elif pkg == 'enlightenment-data':
                name = pp.split('/')[-1].rsplit('_', 1)[0]
                edj = f"usr/share/enlightenment/data/backgrounds/{name}.edj"
                e = D.EetFile(blobs[edj], edj)
                hits = []
                for k in e.keys():
                    if k.startswith('edje/images/'):
                        with Image.open(io.BytesIO(e.read(k))) as im:
                            if im.size == (int(r['width']), int(r['height'])): hits.append(k)
                if len(hits) != 1: sys.exit(f"error: {edj}: {len(hits)} images of {r['width']}x{r['height']}")
                data = e.read(hits[0])
                row.update(path_in_package=edj, container='eet', member=hits[0])
                st = dep5_for(dep5, edj)
                row['license_files'] = f"usr/share/doc/{pkg}/copyright"
            else:
                data = blobs[pp]
                row.update(path_in_package=pp)
                st = dep5_for(dep5, pp)
                row['license_files'] = f"usr/share/doc/{pkg}/copyright" + (';usr/share/lxqt/wallpapers/License' if pkg == 'lxqt-themes' else '')
            if pkg != 'gcompris-qt-data':
                if st:
                    holders = st.get('Copyright', '').split('\n')
                    if st['Files'] == ['*'] and len(holders) > 2:     # the package-wide stanza: its first holder, not 30 translators
                        holders = [holders[0] + ' and others (see the package\'s debian/copyright)']
                    lic.update(license=st.get('License', '').split('\n')[0], copyright=' / '.join(holders),
                               comment=st.get('Comment', '').split('\n')[0])
                if pkg == 'lxqt-themes':
                    lic['comment'] = ("the package's wallpapers/License: 'Copyright 2022: LXQt Project Team, Licensed under "
                                      "https://creativecommons.org/licenses/by-sa/3.0/'; debian/copyright lists wallpapers under Files: *")
            with Image.open(io.BytesIO(data)) as im: sw, sh = im.size
            if (sw, sh) != (int(r['width']), int(r['height'])): sys.exit(f"error: {r['file']}: source is {sw}x{sh}, SOURCES.csv says {r['width']}x{r['height']}")
            jpg, (w, h) = D.devphoto_jpeg(data)
            ref = (args.photos/'images'/r['file']).read_bytes()
            with Image.open(io.BytesIO(ref)) as im:
                if im.size != (w, h): sys.exit(f"error: {r['file']}: converted to {w}x{h}, the reference is {im.size}")
                diff = int(np.abs(np.asarray(im.convert('RGB'), dtype=int) - np.asarray(Image.open(io.BytesIO(jpg)).convert('RGB'), dtype=int)).max())
            maxdiff = max(maxdiff, diff); identical += jpg == ref
            row.update(source_sha256=hashlib.sha256(data).hexdigest(), source_width=sw, source_height=sh, width=w, height=h,
                       reference_sha256=hashlib.sha256(ref).hexdigest(), **lic)
            rows.append(row)
        print(f"{pkg} {ctl['Version']}: {len(prows)} photos", flush=True)
    with open(args.out, 'w', newline='', encoding='utf-8') as f:
        w = csv.DictWriter(f, fieldnames=D.DEVPHOTOS_COLUMNS, lineterminator='\n')
        w.writeheader(); w.writerows(rows)
    print(f"wrote {args.out}: {len(rows)} photos; {identical} byte-identical to the reference JPEGs; largest pixel difference {maxdiff}")


if __name__ == '__main__':
    main()
