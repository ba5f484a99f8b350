"""`colorize-data devphotos` and its readers, offline: small fake .deb packages (with a fake .rcc and .edj inside) built
here, a fake `apt-get`/`apt-cache` first on PATH, and the local HTTP server of test_data_scripts.py standing in for the
Debian archive. One test downloads a real 2 MB package from deb.debian.org, only when COLORIZE_NETWORK_TESTS=1."""
import csv, errno, hashlib, io, json, os, shutil, struct, sys, tarfile, zlib
from pathlib import Path

import pytest
from PIL import Image, features

import colorize_nbdev.datasets as D
from test_data_scripts import Server, run_script   # the local HTTP server (Range support) and the wrapper runner

pytestmark = pytest.mark.skipif(not features.check('webp'), reason="this Pillow cannot read WebP (GCompris' photos are WebP)")


# ------------------------------------------------------------------------------------------------------------
# A small world of fake Debian packages
# ------------------------------------------------------------------------------------------------------------
def picture(w, h, fmt, mode='RGB', shade=0):
    "Deterministic picture bytes: gradients in each channel, so that a resize and a JPEG are not trivial."
    g = Image.linear_gradient('L')
    chans = [g.resize((w, h)), g.rotate(90).resize((w, h)), g.transpose(Image.Transpose.FLIP_LEFT_RIGHT).resize((w, h))]
    img = Image.merge('RGB', chans).point(lambda v: (v + shade) % 256)
    if mode == 'RGBA': img.putalpha(Image.new('L', (w, h), 200))
    b = io.BytesIO(); img.save(b, fmt, **({'quality': 90} if fmt == 'JPEG' else {})); return b.getvalue()


README = b"""Copyright: Some Photographer
Source: https://commons.wikimedia.org/wiki/File:Bee.jpg
License: CC0-1.0
Files:
bee.webp
"""
DEP5 = b"Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\nFiles: *\nCopyright: 2024 Someone\nLicense: GPL-2+\n"


def package_files(changed=False):
    "{package: (version, {path: bytes})}; `changed`: one wallpaper has other bytes (another build of the package)."
    rcc = D.write_rcc({'/gcompris/src/activities/erase/resource/bee.webp': picture(300, 240, 'WEBP'),
                       '/gcompris/src/activities/erase/resource/README': README,
                       '/gcompris/src/activities/erase/Erase.qml': b'import QtQuick 2.12\n' * 40},
                      compress={'/gcompris/src/activities/erase/resource/bee.webp': 'none', '/gcompris/src/activities/erase/resource/README': 'zlib',
                                '/gcompris/src/activities/erase/Erase.qml': 'zlib'})
    edj = D.make_eet({'edje/images/0': picture(1024, 576, 'JPEG'), 'edje/images/1': picture(320, 180, 'JPEG'), 'edje/file': b'\0' * 10})
    return {
        'fake-wallpapers': ('1.0-1', {'usr/share/backgrounds/Lake_by_Someone.jpg': picture(800, 450, 'JPEG', shade=40 if changed else 0),
                                      'usr/share/backgrounds/Leaf.png': picture(600, 900, 'PNG', 'RGBA'),
                                      'usr/share/doc/fake-wallpapers/copyright': DEP5}),
        'fake-gcompris-data': ('2:3.1-2', {'usr/share/gcompris-qt/rcc/erase.rcc': rcc, 'usr/share/doc/fake-gcompris-data/copyright': DEP5}),
        'fake-e-data': ('0.25.4-2', {'usr/share/enlightenment/data/backgrounds/Dunes.edj': edj,
                                     'usr/share/doc/fake-e-data/copyright': DEP5}),
    }


PHOTOS = [  # file, package, path, container, member, licence files
    ('wall__Lake.jpg', 'fake-wallpapers', 'usr/share/backgrounds/Lake_by_Someone.jpg', '', '', 'usr/share/doc/fake-wallpapers/copyright'),
    ('wall__Leaf.jpg', 'fake-wallpapers', 'usr/share/backgrounds/Leaf.png', '', '', 'usr/share/doc/fake-wallpapers/copyright'),
    ('gc-erase__bee.jpg', 'fake-gcompris-data', 'usr/share/gcompris-qt/rcc/erase.rcc', 'qt-rcc',
     '/gcompris/src/activities/erase/resource/bee.webp', 'usr/share/gcompris-qt/rcc/erase.rcc#/gcompris/src/activities/erase/resource/README'),
    ('e__Dunes_1024x576.jpg', 'fake-e-data', 'usr/share/enlightenment/data/backgrounds/Dunes.edj', 'eet', 'edje/images/0',
     'usr/share/doc/fake-e-data/copyright'),
]
SIZES = {'wall__Lake.jpg': (512, 288), 'wall__Leaf.jpg': (341, 512), 'gc-erase__bee.jpg': (300, 240), 'e__Dunes_1024x576.jpg': (512, 288)}


def pool_path(pkg, version):
    return f"pool/main/f/{pkg}/{pkg}_{version.split(':')[-1]}_all.deb"


class World:
    "Fake packages as .deb files, their manifest, a fake Debian archive (HTTP) and a fake apt (scripts on PATH)."
    def __init__(self, tmp: Path, server: Server):
        self.tmp, self.server = tmp, server
        self.debs, self.deb_paths = {}, {}
        (tmp/'debs').mkdir()
        for pkg, (ver, files) in package_files().items():
            self.debs[pkg] = D.make_deb(files, {'Package': pkg, 'Version': ver})
            self.deb_paths[pkg] = tmp/'debs'/f"{pkg}_{ver.replace(':', '%3a')}_all.deb"
            self.deb_paths[pkg].write_bytes(self.debs[pkg])
            server.files[pool_path(pkg, ver)] = self.debs[pkg]
        rows = []
        for file, pkg, path, container, member, lic in PHOTOS:
            ver, files = package_files()[pkg]
            blob = files[path]
            src = D.QtResources(blob).read(member) if container == 'qt-rcc' else D.EetFile(blob).read(member) if container == 'eet' else blob
            jpg, (w, h) = D.devphoto_jpeg(src)
            with Image.open(io.BytesIO(src)) as im: sw, sh = im.size
            rows.append(dict(file=file, package=pkg, version=ver, deb_path=pool_path(pkg, ver), deb_size=len(self.debs[pkg]),
                             deb_sha256=hashlib.sha256(self.debs[pkg]).hexdigest(), path_in_package=path, container=container,
                             member=member, source_sha256=hashlib.sha256(src).hexdigest(), source_width=sw, source_height=sh,
                             width=w, height=h, reference_sha256=hashlib.sha256(jpg).hexdigest(), license='CC0-1.0',
                             copyright='Someone', source_url='', comment='', license_files=lic))
        self.rows = rows
        self.manifest = tmp/'devphotos.csv'
        with open(self.manifest, 'w', newline='') as f:
            w = csv.DictWriter(f, fieldnames=D.DEVPHOTOS_COLUMNS); w.writeheader(); w.writerows(rows)
        self.bin = tmp/'bin'; self.bin.mkdir()
        for tool in ('apt-get', 'apt-cache'):
            (self.bin/tool).write_text(f"#!{sys.executable}\n" + FAKE_APT); (self.bin/tool).chmod(0o755)
        self.db, self.log = tmp/'apt_db.json', tmp/'apt.log'
        self.apt_offers({pkg: [(package_files()[pkg][0], self.deb_paths[pkg])] for pkg in self.debs})

    def apt_offers(self, offers: dict):
        "What the fake apt offers: {package: [(version, .deb path), ...]} (first = candidate)."
        self.db.write_text(json.dumps({pkg: [dict(version=v, deb=str(p), sha256=hashlib.sha256(Path(p).read_bytes()).hexdigest(),
                                                  filename=pool_path(pkg, v)) for v, p in vers] for pkg, vers in offers.items()}))

    def env(self, apt=True) -> dict:
        path = str(self.bin) + os.pathsep + os.environ.get('PATH', '') if apt else str(self.tmp/'empty_bin')
        (self.tmp/'empty_bin').mkdir(exist_ok=True)
        return dict(PATH=path, FAKE_APT_DB=str(self.db), FAKE_APT_LOG=str(self.log))

    def apt_calls(self):
        return [json.loads(l)[:3] for l in self.log.read_text().splitlines()] if self.log.exists() else []

    def args(self, dest, *more):
        return ['devphotos', '--dest', dest, '--manifest', self.manifest, '--mirror', self.server.url('').rstrip('/'),
                '--retry-wait', '0', *map(str, more)]

    def pool_gets(self):
        return [r for r in self.server.log if r[0].startswith('pool/')]


FAKE_APT = r'''
import json, os, shutil, sys
from pathlib import Path
db = json.loads(Path(os.environ['FAKE_APT_DB']).read_text())
tool = Path(sys.argv[0]).name
if os.environ.get('FAKE_APT_LOG'):
    with open(os.environ['FAKE_APT_LOG'], 'a') as f: f.write(json.dumps([tool, *sys.argv[1:]]) + '\n')
if tool == 'apt-cache':
    assert sys.argv[1] == 'show', sys.argv
    vers = db.get(sys.argv[2], [])
    if not vers:
        print(f"N: Unable to locate package {sys.argv[2]}\nE: No packages found", file=sys.stderr); sys.exit(100)
    for v in vers:
        print(f"Package: {sys.argv[2]}\nVersion: {v['version']}\nArchitecture: all\nSize: {os.path.getsize(v['deb'])}\n"
              f"SHA256: {v['sha256']}\nFilename: {v['filename']}\nDescription: fake\n more text\n")
else:
    assert sys.argv[1] == 'download', sys.argv
    pkg, _, ver = sys.argv[2].partition('=')
    vers = db.get(pkg, [])
    if not vers: print(f"E: Unable to locate package {pkg}", file=sys.stderr); sys.exit(100)
    v = next((v for v in vers if v['version'] == ver), None) if ver else vers[0]
    if v is None: print(f"E: Version '{ver}' for '{pkg}' was not found", file=sys.stderr); sys.exit(100)
    if os.environ.get('FAKE_APT_FAIL'):
        print(f"E: Failed to fetch http://deb.debian.org/debian/{v['filename']}  503  Service Unavailable", file=sys.stderr); sys.exit(100)
    shutil.copy(v['deb'], f"{pkg}_{v['version'].replace(':', '%3a')}_all.deb")
    print(f"Get:1 http://deb.debian.org/debian bookworm/main amd64 {pkg} all {v['version']} [{os.path.getsize(v['deb'])} B]")
    print("Fetched 1 kB in 0s (1 MB/s)")
'''


@pytest.fixture
def world(tmp_path, monkeypatch):
    server = Server()
    w = World(tmp_path, server)
    yield w
    server.close()


def use_env(monkeypatch, env: dict):
    for k, v in env.items(): monkeypatch.setenv(k, v)


def images(dest):
    return sorted(p.name for p in (Path(dest)/'images').iterdir()) if (Path(dest)/'images').exists() else []


def check_output(world, dest):
    "DEST holds every photo at its manifest size, byte-identical to the reference, with SOURCES.csv, licences and a manifest."
    assert images(dest) == sorted(SIZES)
    for f, size in SIZES.items():
        with Image.open(dest/'images'/f) as im: assert (im.format, im.mode, im.size) == ('JPEG', 'RGB', size)
    man = json.loads((dest/'manifest.json').read_text())
    assert man['dataset'] == 'devphotos' and sorted(man['images']) == sorted(SIZES) and man['bytes_identical'] == 4
    assert all(p['source_sha256'] == 'ok' and p['bytes_match'] for p in man['photos'].values())
    assert [r['file'] for r in csv.DictReader(open(dest/'SOURCES.csv'))] == [r['file'] for r in world.rows]
    assert (dest/'licenses'/'LICENSE_erase_resource_README').read_bytes() == README
    assert (dest/'licenses'/'COPYRIGHT_fake-wallpapers').read_bytes() == DEP5
    assert 'colorize-data devphotos' in (dest/'README.md').read_text()
    assert not (dest/D.DEVPHOTOS_BUILD).exists() and not list(dest.glob('.manifest-pending*'))
    return man


# ------------------------------------------------------------------------------------------------------------
# Success: apt for the exact version, the Debian archive otherwise
# ------------------------------------------------------------------------------------------------------------
def test_auto_uses_apt_for_the_exact_version_then_does_nothing(world, monkeypatch, capsys):
    use_env(monkeypatch, world.env())
    dest = world.tmp/'dp'
    assert D.cli(world.args(dest)) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    man = check_output(world, dest)
    assert {p['origin'] for p in man['packages'].values()} == {'apt'} and not world.pool_gets()
    downloads = [c for c in world.apt_calls() if c[0] == 'apt-get']
    assert sorted(c[2] for c in downloads) == ['fake-e-data=0.25.4-2', 'fake-gcompris-data=2:3.1-2', 'fake-wallpapers=1.0-1']
    assert 'apt-get download fake-wallpapers=1.0-1' in out and 'Fetched' in out
    assert man['packages']['fake-gcompris-data']['version'] == '2:3.1-2' and man['packages']['fake-e-data']['deb_matches_manifest']
    assert not (dest/'downloads').exists()                                   # the .deb files were deleted, and their folder
    # a second run: nothing to do, no apt, no network
    n = len(world.apt_calls())
    assert D.cli(world.args(dest)) == 0
    assert 'is up to date' in capsys.readouterr().out and len(world.apt_calls()) == n
    # --keep-debs keeps them
    assert D.cli(world.args(dest, '--force', '--keep-debs', '--quiet')) == 0
    assert sorted(p.name for p in (dest/'downloads'/'apt').rglob('*.deb')) == sorted(p.name for p in world.deb_paths.values())


def test_auto_falls_back_to_the_debian_archive(world, monkeypatch, capsys):
    "apt offers another version of one package, and apt-get fails for another: both come from the Debian archive over HTTP."
    other = world.tmp/'other.deb'
    other.write_bytes(D.make_deb(package_files(changed=True)['fake-wallpapers'][1], {'Package': 'fake-wallpapers', 'Version': '1.0-1ubuntu2'}))
    world.apt_offers({'fake-wallpapers': [('1.0-1ubuntu2', other)], 'fake-e-data': [('0.25.4-2', world.deb_paths['fake-e-data'])]})
    use_env(monkeypatch, world.env())
    dest = world.tmp/'dp'
    assert D.cli(world.args(dest)) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert "apt offers fake-wallpapers 1.0-1ubuntu2, not 1.0-1: downloading Debian's .deb from" in out
    assert "apt offers fake-gcompris-data (none), not 2:3.1-2" in out
    man = check_output(world, dest)
    assert {k: v['origin'] for k, v in man['packages'].items()} == {'fake-wallpapers': 'debian', 'fake-gcompris-data': 'debian', 'fake-e-data': 'apt'}
    assert sorted(r[0] for r in world.pool_gets()) == sorted(pool_path(p, v) for p, v in
                                                            (('fake-wallpapers', '1.0-1'), ('fake-gcompris-data', '2:3.1-2')))
    assert [c[2] for c in world.apt_calls() if c[0] == 'apt-get'] == ['fake-e-data=0.25.4-2']   # never downloads another version
    # apt-get failing for the exact version: a warning, then the Debian archive
    monkeypatch.setenv('FAKE_APT_FAIL', '1')
    assert D.cli(world.args(world.tmp/'dp2', '--quiet')) == 0
    err = capsys.readouterr().err
    assert 'apt-get download fake-e-data=0.25.4-2 failed: E: Failed to fetch' in err and 'from the Debian archive' not in err
    assert "downloading Debian's .deb from" in err
    assert json.loads((world.tmp/'dp2'/'manifest.json').read_text())['packages']['fake-e-data']['origin'] == 'debian'


def test_no_apt(world, monkeypatch, capsys):
    "Without apt-get (macOS, Windows): auto downloads from the Debian archive; --source apt explains what is needed."
    use_env(monkeypatch, world.env(apt=False))
    assert not D.apt_available()
    dest = world.tmp/'dp'
    assert D.cli(world.args(dest, '--source', 'apt')) == 1
    err = capsys.readouterr().err
    assert err.startswith('error: apt-get was not found: --source apt needs') and 'macOS and Windows' in err and '--source debian' in err
    assert err.count('\n') == 1 and not (dest/'images').exists()
    assert D.cli(world.args(dest)) == 0
    assert 'apt-get not found (not a Debian/Ubuntu system): the .deb files come from' in capsys.readouterr().out
    man = check_output(world, dest)
    assert {p['origin'] for p in man['packages'].values()} == {'debian'} and len(world.pool_gets()) == 3
    assert not (dest/'downloads').exists()


def test_python_api_and_packages_subset(world, monkeypatch):
    use_env(monkeypatch, world.env(apt=False))
    dest = D.devphotos(world.tmp/'dp', packages=['fake-e-data'], manifest=world.manifest, mirror=world.server.url(''), quiet=True)
    assert images(dest) == ['e__Dunes_1024x576.jpg'] and [r[0] for r in world.pool_gets()] == [pool_path('fake-e-data', '0.25.4-2')]
    with pytest.raises(D.ArgumentError, match='--packages: nope not in the photo manifest'):
        D.devphotos(world.tmp/'dp', packages='nope', manifest=world.manifest)


# ------------------------------------------------------------------------------------------------------------
# Failures: one clear line, exit status 1, nothing of the user's touched
# ------------------------------------------------------------------------------------------------------------
def test_package_missing(world, monkeypatch, capsys):
    world.apt_offers({})                                      # apt knows none of them
    use_env(monkeypatch, world.env())
    dest = world.tmp/'dp'
    assert D.cli(world.args(dest, '--source', 'apt')) == 1
    err = capsys.readouterr().err
    assert err.startswith('error: apt does not know the package fake-wallpapers') and 'apt-get update' in err and '--source auto/debian' in err
    del world.server.files[pool_path('fake-gcompris-data', '2:3.1-2')]   # and the archive has lost one
    assert D.cli(world.args(dest, '--quiet')) == 1
    err = capsys.readouterr().err
    assert err.startswith('error: Could not download http://127.0.0.1') and 'fake-gcompris-data_3.1-2_all.deb: HTTP 404' in err
    assert 'archive.debian.org' in err and 'snapshot.debian.org' in err and err.count('\n') == 1
    assert not (dest/'images').exists() and not (dest/'manifest.json').exists()
    # the package done before the failure is kept: the next run only fetches what is left
    world.server.files[pool_path('fake-gcompris-data', '2:3.1-2')] = world.debs['fake-gcompris-data']
    n = len(world.pool_gets())
    assert D.cli(world.args(dest)) == 0
    assert 'fake-wallpapers: done by an earlier run' in capsys.readouterr().out
    assert sorted(r[0] for r in world.pool_gets()[n:]) == sorted(pool_path(p, v) for p, v in
                                                                (('fake-gcompris-data', '2:3.1-2'), ('fake-e-data', '0.25.4-2')))
    check_output(world, dest)


def test_photo_changed(world, monkeypatch, capsys):
    "A package whose photo differs from the manifest: --source apt stops naming the file and version; auto refetches from Debian."
    ubuntu = world.tmp/'ubuntu.deb'
    ubuntu.write_bytes(D.make_deb(package_files(changed=True)['fake-wallpapers'][1], {'Package': 'fake-wallpapers', 'Version': '1.0-1ubuntu2'}))
    world.apt_offers({**{p: [(package_files()[p][0], world.deb_paths[p])] for p in world.debs}, 'fake-wallpapers': [('1.0-1ubuntu2', ubuntu)]})
    use_env(monkeypatch, world.env())
    dest = world.tmp/'dp'
    assert D.cli(world.args(dest, '--source', 'apt', '--quiet')) == 1
    err = capsys.readouterr().err
    assert err.startswith('error: 1 of the 2 photos of fake-wallpapers 1.0-1ubuntu2 (apt) differ from the manifest, e.g. wall__Lake.jpg: '
                          'usr/share/backgrounds/Lake_by_Someone.jpg has SHA-256 ')
    assert "This system's fake-wallpapers (1.0-1ubuntu2, from apt-get download) is another version than the one the photo set was made " \
           "from (1.0-1): run again with --source auto (the default) or --source debian" in err
    assert err.count('\n') == 1 and not (dest/'images').exists()
    # the same version rebuilt with other bytes (an Ubuntu rebuild, a damaged mirror): auto tries it, then the Debian archive
    rebuilt = world.tmp/'rebuilt.deb'
    rebuilt.write_bytes(D.make_deb(package_files(changed=True)['fake-wallpapers'][1], {'Package': 'fake-wallpapers', 'Version': '1.0-1'}))
    world.apt_offers({**{p: [(package_files()[p][0], world.deb_paths[p])] for p in world.debs}, 'fake-wallpapers': [('1.0-1', rebuilt)]})
    assert D.cli(world.args(dest, '--quiet')) == 0
    err = capsys.readouterr().err
    assert 'WARNING: 1 of the 2 photos of fake-wallpapers 1.0-1 (apt) differ from the manifest' in err
    assert "downloading Debian's fake-wallpapers 1.0-1 from" in err
    man = check_output(world, dest)
    assert man['packages']['fake-wallpapers']['origin'] == 'debian' and [r[0] for r in world.pool_gets()] == [pool_path('fake-wallpapers', '1.0-1')]
    # a .deb in the downloads folder that is not the manifest's: moved aside and downloaded again (its SHA-256 is checked)
    (world.tmp/'dl').mkdir()
    (world.tmp/'dl'/'fake-e-data_0.25.4-2_all.deb').write_bytes(rebuilt.read_bytes())
    assert D.cli(world.args(world.tmp/'dp3', '--source', 'debian', '--downloads', world.tmp/'dl', '--quiet')) == 0
    assert 'does not match' in capsys.readouterr().err and (world.tmp/'dl'/'fake-e-data_0.25.4-2_all.deb.bad').exists()


def test_archive_serving_a_wrong_deb(world, monkeypatch, capsys):
    world.server.files[pool_path('fake-e-data', '0.25.4-2')] = world.debs['fake-wallpapers']
    use_env(monkeypatch, world.env(apt=False))
    assert D.cli(world.args(world.tmp/'dp', '--quiet')) == 1
    err = capsys.readouterr().err
    assert err.startswith('error: Downloaded fake-e-data_0.25.4-2_all.deb from') and 'the .deb of fake-e-data 0.25.4-2 that the photo manifest' in err


def test_user_files_are_never_overwritten(world, monkeypatch, capsys):
    use_env(monkeypatch, world.env())
    dest = world.tmp/'dp'
    (dest/'images').mkdir(parents=True)
    (dest/'images'/'wall__Lake.jpg').write_bytes(b'my own photo')
    assert D.cli(world.args(dest, '--quiet')) == 1
    assert 'already exists and was not made by colorize-data devphotos' in capsys.readouterr().err
    assert (dest/'images'/'wall__Lake.jpg').read_bytes() == b'my own photo' and not world.apt_calls()
    shutil.rmtree(dest/'images')
    (dest/'SOURCES.csv').write_text('mine')
    assert D.cli(world.args(dest, '--quiet')) == 1 and 'SOURCES.csv already exists' in capsys.readouterr().err
    (dest/'SOURCES.csv').unlink()
    assert D.cli(world.args(dest, '--quiet')) == 0
    (dest/'images'/'extra.jpg').write_bytes(b'added by hand')
    assert D.cli(world.args(dest, '--force', '--quiet')) == 1
    assert 'extra.jpg is not listed in' in capsys.readouterr().err and (dest/'images'/'extra.jpg').read_bytes() == b'added by hand'
    other = world.tmp/'p365'; other.mkdir()
    (other/'manifest.json').write_text(json.dumps({'key': {'script': 'places365'}, 'train': [], 'valid': []}))
    assert D.cli(world.args(other, '--quiet')) == 1 and 'belongs to another dataset' in capsys.readouterr().err


def test_disk_full_and_unwritable_dest(world, monkeypatch, capsys):
    use_env(monkeypatch, world.env(apt=False))
    (world.tmp/'afile').write_text('a file, not a folder')
    assert D.cli(world.args(world.tmp/'afile'/'dp', '--quiet')) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: Cannot write to {world.tmp/'afile'/'dp'}") and '--dest' in err and err.count('\n') == 1
    real = shutil.disk_usage
    monkeypatch.setattr(D.shutil, 'disk_usage', lambda p: real(p)._replace(free=10_000))
    assert D.cli(world.args(world.tmp/'dp', '--quiet')) == 1
    err = capsys.readouterr().err
    assert err.startswith('error: Not enough disk space for downloading fake-wallpapers') and 'Free some space' in err
    monkeypatch.setattr(D.shutil, 'disk_usage', real)
    # the disk fills up while the photos are written: one line; the next run continues where it stopped
    calls, convert = [], D.devphoto_jpeg
    def full_on_third(data, *a, **k):
        calls.append(1)
        if len(calls) == 3: raise OSError(errno.ENOSPC, 'No space left on device', str(world.tmp/'dp'/'images'))
        return convert(data, *a, **k)
    monkeypatch.setattr(D, 'devphoto_jpeg', full_on_third)
    assert D.cli(world.args(world.tmp/'dp', '--quiet')) == 1
    err = capsys.readouterr().err
    assert err.startswith('error: No space left on device: ') and 'run the same command again to continue' in err and 'Traceback' not in err
    monkeypatch.setattr(D, 'devphoto_jpeg', convert)
    assert D.cli(world.args(world.tmp/'dp')) == 0
    assert 'fake-wallpapers: done by an earlier run' in capsys.readouterr().out
    check_output(world, world.tmp/'dp')


def test_wrapper_script_help_and_offline_run(world):
    "data_scripts/devphotos.py: --help, and a real run in a subprocess (fake apt on PATH, the fake archive for what apt lacks)."
    r = run_script('devphotos', '--help')
    assert r.returncode == 0 and 'apt-get download' in r.stdout and 'deb.debian.org' in r.stdout and 'macOS' in r.stdout, r.stderr
    world.apt_offers({'fake-e-data': [('0.25.4-2', world.deb_paths['fake-e-data'])]})
    dest = world.tmp/'dp'
    r = run_script('devphotos', *world.args(dest)[1:], env=world.env())
    assert r.returncode == 0, r.stdout + r.stderr
    assert 'wrote 4 photos to' in r.stdout and '4 of 4 JPEGs byte-identical' in r.stdout
    check_output(world, dest)


# ------------------------------------------------------------------------------------------------------------
# The manifest shipped with the package
# ------------------------------------------------------------------------------------------------------------
def test_shipped_manifest():
    rows = D.devphotos_manifest()
    assert len(rows) == 186 and len({r['file'] for r in rows}) == 186
    debs = D._deb_records(rows)                       # one .deb per package, consistent across rows
    assert len(debs) == 8 and all(r['deb_path'].startswith('pool/main/') and r['deb_path'].endswith('_all.deb') for r in debs.values())
    count = {p: sum(r['package'] == p for r in rows) for p in debs}
    assert count == {'enlightenment-data': 7, 'gcompris-qt-data': 152, 'plasma-workspace-wallpapers': 6, 'lomiri-wallpapers-20.04': 1,
                     'lomiri-wallpapers-16.04': 8, 'lxqt-themes': 4, 'mate-backgrounds': 5, 'palapeli-data': 3}
    for r in rows:
        assert not r['path_in_package'].startswith(('/', 'rccx', 'x/', 'sel/', 'tmp/')), r
        assert max(r['width'], r['height']) <= 512 and r['license'] and r['copyright'] and r['license_files']
        w, h = r['source_width'], r['source_height']
        if max(w, h) > 512: assert max(r['width'], r['height']) == 512 and abs(r['width']/r['height'] - w/h) < 0.02
        else: assert (r['width'], r['height']) == (w, h)
        if r['package'] == 'gcompris-qt-data':
            assert r['container'] == 'qt-rcc' and r['member'].startswith('/gcompris/src/activities/') and r['path_in_package'].endswith('.rcc')
        elif r['package'] == 'enlightenment-data': assert r['container'] == 'eet' and r['member'].startswith('edje/images/')
        else: assert not r['container'] and r['path_in_package'].startswith('usr/share/')
    plasma = [r['path_in_package'] for r in rows if r['package'] == 'plasma-workspace-wallpapers']
    assert len(plasma) == 6 and all(p.startswith('usr/share/wallpapers/') for p in plasma)     # the bogus /tmp/helper_data prefix fixed


# ------------------------------------------------------------------------------------------------------------
# Qt resource files
# ------------------------------------------------------------------------------------------------------------
def test_qt_hash_matches_real_rcc_files():
    "Name hashes stored by Qt's rcc in Debian's gcompris-qt-data 3.1 (all 6,300 names of its .rcc files agree with qt_hash)."
    for name, h in {'gcompris': 174355619, 'src': 31363, 'activities': 14441123, 'ActivityInfo.qml': 90360188,
                    'mosaic.svg': 134010855, 'Mosaic.qml': 134274332}.items():
        assert D.qt_hash(name) == h, name


def zstd_available():
    return D._zstd_module() is not None or shutil.which('zstd') is not None


@pytest.mark.parametrize('version', [1, 2, 3])
def test_rcc_round_trip(version):
    files = {f'/gcompris/src/activities/a{i}/resource/p{j}.webp': bytes([i, j]) * (100 + 37*j) for i in range(3) for j in range(4)}
    files['/top.txt'] = b''                                         # an empty file, at the root
    files['/gcompris/src/activities/ünïcode/ñame.svg'] = b'<svg/>'  # names are UTF-16
    kinds = ['none', 'zlib'] + (['zstd'] if zstd_available() else [])
    for kind in kinds:
        r = D.QtResources(D.write_rcc(files, version, kind), 'x.rcc')
        assert r.paths() == sorted(files) and len(r) == len(files)
        assert all(r.read(p) == data for p, data in files.items())
        assert r.compression('/top.txt') == kind and ':/top.txt' in r and 'top.txt' in r
    mixed = D.write_rcc(files, version, {p: k for p, k in zip(files, kinds*len(files))})
    assert {p: D.QtResources(mixed).read(p) for p in files} == files


def patch(data: bytes, off: int, new: bytes) -> bytes: return data[:off] + new + data[off + len(new):]


def test_rcc_edge_cases(monkeypatch):
    data = D.write_rcc({'/a/b': b'hello rcc' * 20}, 3, 'zlib')
    r = D.QtResources(data, 'x.rcc')
    tree, dat, names = r._tree, r._data, r._names
    cases = {
        'not rcc': (b'GIF89a' + data[6:], "no 'qres' header"),
        'too short': (b'qres\0\0', "no 'qres' header"),
        'version 4': (patch(data, 4, struct.pack('>I', 4)), 'unsupported rcc format version 4'),
        'tree beyond the end': (patch(data, 8, struct.pack('>I', len(data) + 10)), 'its tree section starts at byte'),
        'truncated': (data[:-10], 'truncated or damaged'),
        'loop': (patch(data, tree + 22 + 10, struct.pack('>I', 0)), 'reached twice (a loop in the tree)'),
        'child count too large': (patch(data, tree + 6, struct.pack('>I', 1000)), 'tree entry'),
        'name with a slash': (patch(data, names + 8 + 6, '/'.encode('utf-16-be')), "invalid resource name '/'"),
        'root not a folder': (patch(data, tree + 4, struct.pack('>H', 0)), 'its root entry is not a folder'),
    }
    for case, (bad, msg) in cases.items():
        with pytest.raises(D.RccError, match=msg.replace('(', r'\(').replace(')', r'\)')): D.QtResources(bad, 'x.rcc').read('/a/b')
    # damaged data: a flipped zlib byte, a wrong announced length, a data offset beyond the end
    with pytest.raises(D.RccError, match=r'/a/b is damaged \(zlib'): D.QtResources(patch(data, dat + 4 + 4 + 5, b'\xff\xff\xff'), 'x.rcc').read('/a/b')
    with pytest.raises(D.RccError, match='announced'): D.QtResources(patch(data, dat + 4, struct.pack('>I', 7)), 'x.rcc').read('/a/b')
    with pytest.raises(D.RccError, match='the data of /a/b'): D.QtResources(patch(data, tree + 44 + 10, struct.pack('>I', 10**6)), 'x.rcc').read('/a/b')
    with pytest.raises(D.RccError, match='has no resource /a/c'): r.read('/a/c')
    assert isinstance(D.RccError('x'), D.DatasetError)
    # a zstd entry where nothing reads zstd: the message says what to install
    z = D.write_rcc({'/a/b': b'x'}, 3, 'none')
    rz = D.QtResources(z, 'z.rcc')
    e = rz._tree + 44
    z = patch(z, e + 4, struct.pack('>H', D.RCC_COMPRESSED_ZSTD))
    monkeypatch.setattr(D, '_zstd_module', lambda: None)
    monkeypatch.setattr(D.shutil, 'which', lambda name: None)
    with pytest.raises(D.DatasetError, match=r'z.rcc: /a/b is zstd-compressed and nothing here reads zstd: install the zstandard module \(pip install zstandard\)'):
        D.QtResources(z, 'z.rcc').read('/a/b')


# ------------------------------------------------------------------------------------------------------------
# .deb and EET readers
# ------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize('comp', ['xz', 'gz', 'bz2', ''])
def test_deb_reader(tmp_path, comp):
    files = {'usr/share/b/a.jpg': b'A' * 5000, 'usr/share/doc/x/copyright': b'License: CC0', 'usr/share/c/sym.jpg': ('->', '../b/a.jpg'),
             'usr/share/c/hard.jpg': ('=>', 'usr/share/b/a.jpg'), 'usr/share/c/abs.jpg': ('->', '/usr/share/b/a.jpg')}
    deb = tmp_path/'x.deb'; deb.write_bytes(D.make_deb(files, {'Version': '1:2.0-3'}, comp))
    got = dict(D.iter_deb_files(deb, ['usr/share/c/sym.jpg', './usr/share/c/hard.jpg', '/usr/share/c/abs.jpg', 'usr/share/doc/x/copyright', 'no/such']))
    assert got == {'usr/share/c/sym.jpg': b'A' * 5000, 'usr/share/c/hard.jpg': b'A' * 5000, 'usr/share/c/abs.jpg': b'A' * 5000,
                   'usr/share/doc/x/copyright': b'License: CC0'}
    assert D.deb_control(deb)['Version'] == '1:2.0-3'


def test_deb_reader_errors_and_zstd(tmp_path, monkeypatch):
    good = D.make_deb({'usr/a': b'a'})
    for name, data, msg in [('zip.deb', b'PK\x03\x04 not a deb', 'is not a Debian package'),
                            ('cut.deb', good[:len(good) - 40], 'truncated'),
                            ('nodata.deb', D._ar([('debian-binary', b'2.0\n')]), 'has no data.tar member'),
                            ('odd.deb', D._ar([('debian-binary', b'2.0\n'), ('data.tar.lz4', b'xx')]), "unknown data member 'data.tar.lz4'"),
                            ('bad.deb', D._ar([('debian-binary', b'2.0\n'), ('data.tar.xz', b'\xfd7zXZ\0 damaged')]), 'is damaged')]:
        (tmp_path/name).write_bytes(data)
        with pytest.raises(D.DebError, match=msg): list(D.iter_deb_files(tmp_path/name, ['usr/a']))
    # data.tar.zst, as in Ubuntu's packages: read with Python's zstd, zstandard, or dpkg-deb; else a clear message
    b = io.BytesIO()
    with tarfile.open(fileobj=b, mode='w') as tf:
        ti = tarfile.TarInfo('./usr/a'); ti.size = 1; tf.addfile(ti, io.BytesIO(b'a'))
    if not zstd_available(): pytest.skip('no zstd compressor here to build a data.tar.zst')
    ctl = D.make_deb({})
    ctl_member = [m for m in D.deb_members(_write(tmp_path/'c.deb', ctl))][1]
    zdeb = _write(tmp_path/'z.deb', D._ar([('debian-binary', b'2.0\n'), ('control.tar.xz', ctl[ctl_member[1]:ctl_member[1] + ctl_member[2]]),
                                          ('data.tar.zst', D._zstd_compress(b.getvalue()))]))
    if D._zstd_module() or shutil.which('dpkg-deb'): assert dict(D.iter_deb_files(zdeb, ['usr/a'])) == {'usr/a': b'a'}
    monkeypatch.setattr(D, '_zstd_module', lambda: None)
    monkeypatch.setattr(D.shutil, 'which', lambda name: None)
    with pytest.raises(D.DebError, match=r'zstd-compressed \(data.tar.zst, as in Ubuntu.s packages\) and nothing here reads zstd: install the zstandard'):
        list(D.iter_deb_files(zdeb, ['usr/a']))


def _write(p: Path, data: bytes) -> Path:
    p.write_bytes(data); return p


def test_eet_reader():
    data = D.make_eet({'edje/images/0': b'\xff\xd8 full size', 'edje/images/1': zlib.compress(b'small' * 50)})
    e = D.EetFile(data, 'x.edj')
    assert e.keys() == ['edje/images/0', 'edje/images/1'] and e.read('edje/images/0') == b'\xff\xd8 full size'
    entry = 12 + 24                                           # the second directory entry: offset, size, data size, name offset, name size, flags
    zl = patch(data, entry + 8, struct.pack('>I', 250)); zl = patch(zl, entry + 20, struct.pack('>I', 1 | (9 << 3)))
    assert D.EetFile(zl).read('edje/images/1') == b'small' * 50
    with pytest.raises(D.EetError, match='LZ4'): D.EetFile(patch(zl, entry + 20, struct.pack('>I', 1 | (10 << 3)))).read('edje/images/1')
    with pytest.raises(D.EetError, match='encrypted'): D.EetFile(patch(zl, entry + 20, struct.pack('>I', 2))).read('edje/images/1')
    with pytest.raises(D.EetError, match='announced'): D.EetFile(patch(zl, entry + 8, struct.pack('>I', 7))).read('edje/images/1')
    with pytest.raises(D.EetError, match='not an EET/Edje file'): D.EetFile(b'qres' + data[4:], 'x.edj')
    with pytest.raises(D.EetError, match='truncated'): D.EetFile(data[:30], 'x.edj')
    with pytest.raises(D.EetError, match='truncated or damaged'): D.EetFile(data[:-5], 'x.edj')
    with pytest.raises(D.EetError, match="has no entry 'edje/file'"): e.read('edje/file')


# ------------------------------------------------------------------------------------------------------------
# The real thing, on request: one small package from deb.debian.org
# ------------------------------------------------------------------------------------------------------------
@pytest.mark.skipif(not os.environ.get('COLORIZE_NETWORK_TESTS'), reason="downloads from deb.debian.org: set COLORIZE_NETWORK_TESTS=1")
@pytest.mark.parametrize('source', ['debian', 'auto'])
def test_real_download_of_a_small_package(tmp_path, source):
    "palapeli-data (2 MB, 3 photos): from the Debian archive over HTTP, and with apt where it offers the same version."
    dest = D.devphotos(tmp_path/'dp', packages='palapeli-data', source=source, quiet=True)
    man = json.loads((dest/'manifest.json').read_text())
    rows = [r for r in D.devphotos_manifest() if r['package'] == 'palapeli-data']
    assert sorted(man['images']) == sorted(r['file'] for r in rows)
    for r in rows:
        with Image.open(dest/'images'/r['file']) as im: assert im.size == (r['width'], r['height'])
    pk = man['packages']['palapeli-data']
    assert pk['version'] == rows[0]['version'] and man['bytes_identical'] == sum(p['bytes_match'] for p in man['photos'].values())
    if source == 'debian': assert pk['origin'] == 'debian' and pk['deb_matches_manifest']
    print(f"palapeli-data via {pk['how']}: {man['bytes_identical']} of 3 byte-identical")
