"""Tests for the bundled sample photos (`colorize_nbdev/data/sample_photos`) and `colorize_nbdev.data.samples`.

They check the data that ships in the wheel (count, size, decodability, attribution) and the accessor API.
Fast: every photo is decoded once at small size; no network, no GPU, nothing outside the package.
"""
import fnmatch
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

try:
    import colorize_nbdev  # noqa: F401  (installed, or importable from the checkout)
except ImportError:  # plain `pytest` from a checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from colorize_nbdev.data.samples import (center_crop_resize, load_sample, sample_batch, sample_dir, sample_photos,
                                         sample_sources)

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope='module')
def photos(): return sample_photos()


@pytest.fixture(scope='module')
def sources(): return sample_sources()


def test_folder_inside_package():
    d = sample_dir()
    assert d.is_dir()
    assert d.name == 'sample_photos' and d.parent.name == 'data' and d.parent.parent.name == 'colorize_nbdev'
    assert (d/'SOURCES.csv').is_file() and (d/'README.md').is_file() and (d/'licenses').is_dir()


def test_count_and_size(photos):
    assert 20 <= len(photos) <= 48
    assert photos == sorted(photos)
    assert all(p.suffix.lower() in ('.jpg', '.jpeg') for p in photos)
    total = sum(p.stat().st_size for p in sample_dir().rglob('*') if p.is_file())
    assert total < 5_000_000, f"sample folder is {total/1e6:.2f} MB"


def test_every_photo_decodes_rgb_and_colourful(photos):
    from skimage.color import rgb2lab
    for p in photos:
        with Image.open(p) as im:
            im.verify()  # structural check of the JPEG stream
        with Image.open(p) as im:
            assert im.format == 'JPEG', p.name
            assert max(im.size) <= 512 and min(im.size) >= 64, (p.name, im.size)
            im.draft('RGB', (128, 128))  # fast reduced-size decode, still decodes the whole file
            rgb = np.asarray(im.convert('RGB'))
        assert rgb.ndim == 3 and rgb.shape[2] == 3 and rgb.dtype == np.uint8, p.name
        lab = rgb2lab(rgb)
        chroma = np.hypot(lab[..., 1], lab[..., 2]).mean()
        assert chroma > 8, f"{p.name} is nearly grayscale (mean chroma {chroma:.1f})"


def test_sources_match_photos_one_to_one(photos, sources):
    files = [r['file'] for r in sources]
    assert len(files) == len(set(files)), "duplicate rows in SOURCES.csv"
    assert sorted(files) == [p.name for p in photos]


def test_sources_attribution(sources):
    lic_dir = sample_dir()/'licenses'
    for r in sources:
        for k in ('file', 'package', 'path_in_package', 'width', 'height', 'author', 'license', 'source_url',
                  'license_file'):
            assert r.get(k, '').strip(), (r.get('file'), k)
        assert r['source_url'].startswith('https://'), r
        lic = lic_dir/r['license_file']
        assert lic.is_file(), (r['file'], r['license_file'])
        # the licence file really lists this photo's GCompris file name and states its source
        txt = lic.read_text(encoding='utf-8')
        assert Path(r['path_in_package']).name in txt, r['file']
        assert r['source_url'] in txt, r['file']
    assert all((sample_dir()/'README.md').read_text(encoding='utf-8').count(r['file']) >= 1 for r in sources)


def test_package_data_covers_every_file():
    "Every file in the sample folder matches a `package-data` pattern, so it ships in the wheel."
    pyproject = ROOT/'pyproject.toml'
    if not pyproject.is_file(): pytest.skip('no pyproject.toml (running from an installed package)')
    import tomllib
    pats = tomllib.loads(pyproject.read_text())['tool']['setuptools']['package-data']['colorize_nbdev.data']
    data_dir = sample_dir().parent
    for p in sample_dir().rglob('*'):
        if p.is_file() and p.name != '.DS_Store':
            rel = p.relative_to(data_dir).as_posix()
            assert any(fnmatch.fnmatch(rel, pat) for pat in pats), f"{rel} is not covered by package-data {pats}"


def test_load_sample_by_index_name_and_path(photos):
    im = load_sample(0)
    assert isinstance(im, Image.Image) and im.mode == 'RGB'
    assert load_sample(photos[0].name).size == im.size
    assert load_sample(photos[0]).size == im.size
    assert load_sample(str(photos[0])).size == im.size
    assert load_sample(np.int64(1)).size == load_sample(1).size
    assert load_sample(-1).size == load_sample(len(photos)-1).size


def test_load_sample_errors_name_the_input(photos):
    n = len(photos)
    with pytest.raises(ValueError, match=rf"index {n}\b.*there are {n} sample photos"):
        load_sample(n)  # names the bad index and how many photos exist
    with pytest.raises(ValueError, match=r"-1000"):
        load_sample(-1000)
    with pytest.raises(FileNotFoundError) as e:
        load_sample('not_a_sample.jpg')
    msg = str(e.value)
    assert 'not_a_sample.jpg' in msg and photos[0].name in msg  # names what was asked and what exists
    with pytest.raises(FileNotFoundError, match='missing_dir'):
        load_sample(Path('missing_dir')/'x.jpg')
    with pytest.raises(TypeError):
        load_sample(1.5)


def test_center_crop_resize():
    rgb = np.zeros((20, 100, 3), np.uint8)
    rgb[:, :30, 0] = 255
    rgb[:, 30:70, 1] = 255
    rgb[:, 70:, 2] = 255
    sq = np.asarray(center_crop_resize(Image.fromarray(rgb), 8))
    assert sq.shape == (8, 8, 3)
    assert sq[..., 1].min() == 255 and sq[..., [0, 2]].max() == 0  # only the green middle survives
    tall = Image.fromarray(np.ascontiguousarray(rgb.transpose(1, 0, 2)))
    assert center_crop_resize(tall, 16).size == (16, 16)
    assert center_crop_resize(load_sample(0), 300).size == (300, 300)  # upscaling also works
    with pytest.raises(ValueError):
        center_crop_resize(tall, 0)


def test_sample_batch_values(photos):
    b = sample_batch(3, size=48, start=5)
    assert b.shape == (3, 3, 48, 48) and b.dtype == torch.uint8 and b.is_contiguous()
    for i in range(3):
        ref = np.asarray(center_crop_resize(load_sample(5+i), 48))
        assert torch.equal(b[i], torch.from_numpy(np.array(ref)).permute(2, 0, 1))
    assert b.float().std() > 10  # real pictures, not a constant fill
    everything = sample_batch(size=16)
    assert everything.shape == (len(photos), 3, 16, 16)
    assert sample_batch(size=16, start=len(photos)-2).shape[0] == 2
    assert torch.equal(sample_batch(1, size=16, start=len(photos)-1)[0], everything[-1])


def test_sample_batch_errors(photos):
    n = len(photos)
    with pytest.raises(ValueError, match=str(n)):
        sample_batch(n+1, size=8)  # no wrapping around
    with pytest.raises(ValueError, match='between 1 and 2'):
        sample_batch(3, size=8, start=n-2)
    with pytest.raises(ValueError, match='out of range'):
        sample_batch(start=n)
    with pytest.raises(ValueError):
        sample_batch(0, size=8)
    with pytest.raises(ValueError):
        sample_batch(1, size=8, start=-1)
