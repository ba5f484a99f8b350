"""The built wheel ships the whole library and works without the source tree.

Builds the wheel once (from a copy of the files a fresh clone has: tracked plus untracked-but-not-ignored,
so stale `build/` output or ignored local files cannot hide a packaging bug), then checks that it holds
every package and module of `colorize_nbdev/`, the bundled sample photos with their sources and licences,
and the entry points declared in pyproject.toml. Finally it installs the wheel with `--no-deps` into a
fresh venv and imports every module there, from a temporary directory, with the current environment's
site-packages appended for torch & co. (its `.pth` files, such as an editable install's, are not run),
asserting that `colorize_nbdev` really comes from the fresh venv. Takes ~5-10 s, mostly the imports.
"""
import json, os, shutil, subprocess, sys, sysconfig, tomllib, zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PKG = 'colorize_nbdev'
SAMPLES = Path(PKG)/'data'/'sample_photos'
PYPROJECT = tomllib.loads((ROOT/'pyproject.toml').read_text())
IGNORED = shutil.ignore_patterns('.git', '.venv', 'venv', 'build', 'dist', '*.egg-info', '__pycache__', '*.pyc',
                                 '_docs', '_proc', '.quarto', '.ipynb_checkpoints', '.pytest_cache', 'demo_out')

def _run(cmd, **kw):
    __tracebackhide__ = True  # show the message, not the arguments (the environment)
    res = subprocess.run(cmd, capture_output=True, text=True, **kw)
    assert res.returncode == 0, f'{cmd} failed ({res.returncode}):\n{res.stdout}\n{res.stderr}'
    return res

def _source_files():
    "Files a fresh clone would have (git's view of the work tree), relative to ROOT."
    try:
        out = subprocess.run(['git', 'ls-files', '-z', '--cached', '--others', '--exclude-standard'], cwd=ROOT,
                             capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError): return None
    return [Path(p) for p in out.decode().split('\0') if p and (ROOT/p).is_file()]

def _copy_source(dest):
    files = _source_files()
    if files is None: shutil.copytree(ROOT, dest, ignore=IGNORED)  # not a git checkout
    else:
        for f in files:
            (dest/f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT/f, dest/f)
    return dest

def _lib_files(src):
    "Every file of the package in the source copy, minus bytecode."
    return sorted(p.relative_to(src) for p in (src/PKG).rglob('*')
                  if p.is_file() and '__pycache__' not in p.parts and p.suffix != '.pyc')

def _packages(src):
    return sorted(p.parent.relative_to(src) for p in (src/PKG).rglob('__init__.py') if '__pycache__' not in p.parts)

def _modules(src):
    "Dotted names of every package and module in the source tree."
    mods = []
    for p in sorted((src/PKG).rglob('*.py')):
        if '__pycache__' in p.parts: continue
        parts = p.relative_to(src).with_suffix('').parts
        mods.append('.'.join(parts[:-1] if parts[-1] == '__init__' else parts))
    return mods

@pytest.fixture(scope='module')
def built(tmp_path_factory):
    "(tmp, source copy, wheel): the wheel built here, or the one in $COLORIZE_WHEEL (the release workflow checks the file it publishes)."
    tmp = tmp_path_factory.mktemp('packaging')
    src = _copy_source(tmp/'src')
    if os.environ.get('COLORIZE_WHEEL'): return tmp, src, Path(os.environ['COLORIZE_WHEEL']).resolve()
    _run([sys.executable, '-m', 'pip', 'wheel', '.', '--no-deps', '--no-build-isolation', '-q', '-w', str(tmp/'dist')],
         cwd=src, env={**os.environ, 'PIP_NO_INPUT': '1'}, timeout=300)
    wheels = list((tmp/'dist').glob('colorize_nbdev-*.whl'))
    assert len(wheels) == 1, wheels
    return tmp, src, wheels[0]

@pytest.fixture(scope='module')
def names(built): return set(zipfile.ZipFile(built[2]).namelist())

def test_wheel_has_every_package_and_module(built, names):
    _, src, _ = built
    pkgs = _packages(src)
    assert Path(PKG) in pkgs
    missing = [str(p) for p in pkgs if f'{p.as_posix()}/__init__.py' not in names]
    assert not missing, f'packages missing from the wheel: {missing}'
    missing = [str(p) for p in _lib_files(src) if p.suffix == '.py' and p.as_posix() not in names]
    assert not missing, f'modules missing from the wheel: {missing}'

def test_wheel_has_sample_photos(built, names):
    _, src, _ = built
    jpgs = sorted((src/SAMPLES).glob('*.jpg'))
    assert jpgs, f'no sample photos in {SAMPLES}'
    licences = [p for p in (src/SAMPLES/'licenses').rglob('*') if p.is_file()]
    assert licences, f'no licence files in {SAMPLES}/licenses'
    wanted = [p.relative_to(src) for p in jpgs + licences] + [SAMPLES/'SOURCES.csv', SAMPLES/'README.md']
    missing = [p.as_posix() for p in wanted if p.as_posix() not in names]
    assert not missing, f'sample files missing from the wheel: {missing}'

def test_wheel_has_every_data_file(built, names):
    "Nothing under colorize_nbdev/ is silently dropped (package-data patterns drift as files are added)."
    _, src, _ = built
    missing = [p.as_posix() for p in _lib_files(src) if p.as_posix() not in names]
    assert not missing, f'files of {PKG}/ missing from the wheel: {missing}'

def _entry_points(whl):
    z = zipfile.ZipFile(whl)
    ep = next(n for n in z.namelist() if n.endswith('.dist-info/entry_points.txt'))
    groups, group = {}, None
    for line in z.read(ep).decode().splitlines():
        line = line.strip()
        if line.startswith('['): group = groups.setdefault(line.strip('[]'), {})
        elif '=' in line:
            k, v = (s.strip() for s in line.split('=', 1))
            group[k] = v
    return groups

def declared_entry_points():
    proj = PYPROJECT['project']
    return {'console_scripts': proj.get('scripts', {}), **proj.get('entry-points', {})}

def test_wheel_has_entry_points(built, names):
    _, src, whl = built
    got, declared = _entry_points(whl), declared_entry_points()
    assert declared['console_scripts'], 'pyproject.toml declares no console scripts'
    for group, eps in declared.items():
        for name, target in eps.items():
            assert got.get(group, {}).get(name) == target, f'[{group}] {name} = {target} not in the wheel: {got}'
            mod = target.split(':')[0].replace('.', '/')
            assert f'{mod}.py' in names or f'{mod}/__init__.py' in names, f'{target}: module not in the wheel'

def test_wheel_installs_and_imports_in_fresh_venv(built):
    tmp, src, whl = built
    venv, work = tmp/'venv', tmp/'elsewhere'
    work.mkdir()
    _run([sys.executable, '-m', 'venv', '--without-pip', str(venv)])
    vpy = venv/'bin'/'python'
    _run([sys.executable, '-m', 'pip', '--python', str(vpy), 'install', '--no-deps', '--no-index', '-q', str(whl)],
         env={**os.environ, 'PIP_NO_INPUT': '1'})
    vsite = Path(_run([str(vpy), '-c', 'import sysconfig; print(sysconfig.get_paths()["purelib"])']).stdout.strip())
    # Dependencies (torch, fastai, ...) from this environment, *after* the fresh venv's own site-packages.
    # A path listed in a .pth file is appended to sys.path without running the .pth files inside it, so
    # an editable install of the checkout in this environment stays invisible.
    (vsite/'zz_test_deps.pth').write_text(sysconfig.get_paths()['purelib'] + '\n')
    mods = _modules(src)
    code = f'''
import importlib, json, sys
from importlib.metadata import distribution
for m in {mods!r}: importlib.import_module(m)
dist = distribution("colorize-nbdev")  # the first one on sys.path: the fresh venv's
for e in dist.entry_points: e.load()
import {PKG}
print(json.dumps(dict(file={PKG}.__file__, dist=str(dist.locate_file("")), mods=sorted(sys.modules),
                      eps=[[e.group, e.name, e.value] for e in dist.entry_points])))
'''
    env = {k: v for k, v in os.environ.items() if not k.startswith('PYTHON')}
    env['MPLBACKEND'] = 'Agg'
    # -I: ignore PYTHON* variables, the user site and the current directory.
    res = json.loads(_run([str(vpy), '-I', '-c', code], cwd=work, env=env, timeout=300).stdout.splitlines()[-1])
    assert Path(res['file']).resolve().is_relative_to(venv.resolve()), res['file']
    assert set(mods) <= set(res['mods'])
    assert Path(res['dist']).resolve().is_relative_to(venv.resolve()), res['dist']
    declared = sorted([g, n, t] for g, eps in declared_entry_points().items() for n, t in eps.items())
    assert sorted(res['eps']) == declared

def test_wheel_ships_the_day_one_model_and_stays_small(built, names):
    "`colorize` with no --model needs the bundled model and its card inside the wheel; fp16 keeps the wheel small."
    _, _, whl = built
    assert {f'{PKG}/weights/dayone.pth', f'{PKG}/weights/dayone.json'} <= names
    assert whl.stat().st_size < 25e6, f'{whl.name}: {whl.stat().st_size/1e6:.1f} MB'
