"Tests of `colorize_nbdev.data.core` (lesson 01): reading awkward files, the photo and paired DataLoaders, the gray filter."
import io, pickle, random, struct, warnings, zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageFile

from colorize_nbdev.data.core import IMAGE_EXTS, find_images, ImageReadError, open_rgb, warn_skipped
from colorize_nbdev.data.samples import load_sample, center_crop_resize, sample_photos


@pytest.fixture(scope='module')
def photo():
    "A 64x48 colourful RGB photo (from the bundled sample)."
    return center_crop_resize(load_sample(3), 64).crop((0, 0, 64, 48))

def _jpeg(im, **kw):
    b = io.BytesIO(); im.save(b, 'JPEG', **kw); return b.getvalue()

def _png16(path, a):
    "Write uint16 array `a` (H,W,C) as a 16-bit PNG with a hand-made encoder (PIL can't write 16-bit RGB)."
    h, w, c = a.shape
    def chunk(t, d): return struct.pack('>I', len(d)) + t + d + struct.pack('>I', zlib.crc32(t + d) & 0xffffffff)
    raw = b''.join(b'\x00' + a[y].astype('>u2').tobytes() for y in range(h))
    ihdr = struct.pack('>IIBBBBB', w, h, 16, {1: 0, 3: 2, 4: 6}[c], 0, 0, 0)
    path.write_bytes(b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', ihdr) + chunk(b'IDAT', zlib.compress(raw)) + chunk(b'IEND', b''))


# ---- find_images

def test_find_images(tmp_path):
    (tmp_path/'s'/'t').mkdir(parents=True)
    names = ['a.JPG', 'b.jpeg', 'c.Png', 's/d.webp', 's/t/e.bmp', 's/f.tif', 'g.TIFF', 'h.txt', 'i.gif', 'jpg']
    for n in names: (tmp_path/n).write_bytes(b'x')
    (tmp_path/'dir.jpg').mkdir()   # a folder named like an image is not an image
    got = [p.relative_to(tmp_path).as_posix() for p in find_images(tmp_path)]
    assert got == sorted(['a.JPG', 'b.jpeg', 'c.Png', 's/d.webp', 's/t/e.bmp', 's/f.tif', 'g.TIFF'])
    assert [p.name for p in find_images(tmp_path, recursive=False)] == ['a.JPG', 'b.jpeg', 'c.Png', 'g.TIFF']
    assert set(IMAGE_EXTS) == {'.jpg', '.jpeg', '.png', '.webp', '.bmp', '.tif', '.tiff'}
    assert all(isinstance(p, Path) for p in find_images(str(tmp_path)))

def test_find_images_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match='nowhere'): find_images(tmp_path/'nowhere')
    (tmp_path/'f.jpg').write_bytes(b'x')
    with pytest.raises(NotADirectoryError, match='f.jpg'): find_images(tmp_path/'f.jpg')


# ---- ImageReadError, warn_skipped

def test_image_read_error():
    e = ImageReadError('x/y.jpg', 'empty file')
    assert isinstance(e, ValueError) and e.path == Path('x/y.jpg') and e.reason == 'empty file'
    assert str(e) == f"{Path('x/y.jpg')}: empty file"
    e2 = pickle.loads(pickle.dumps(e))   # crosses DataLoader worker processes
    assert (e2.path, e2.reason, str(e2)) == (e.path, e.reason, str(e))

def test_warn_skipped():
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter('always')
        warn_skipped([])
        assert len(w) == 0
        warn_skipped([ImageReadError('a.jpg', 'empty file (0 bytes)'), ('b/c.png', 'truncated')], what='sketch pairs')
    assert len(w) == 1
    msg = str(w[0].message)
    assert 'a.jpg: empty file (0 bytes)' in msg and f"{Path('b/c.png')}: truncated" in msg.replace('b/c.png', str(Path('b/c.png')))
    assert '2 sketch pairs' in msg


# ---- open_rgb: files that must be refused

@pytest.mark.parametrize('name,data,reason', [
    ('empty.jpg', b'', 'empty'),
    ('text.jpg', b'<html><body>404 Not Found</body></html>\n', 'not an image'),
    ('noise.png', bytes(np.random.default_rng(1).integers(0, 256, 2000, dtype=np.uint8)), 'not an image'),
])
def test_open_rgb_refuses(tmp_path, name, data, reason):
    p = tmp_path/name; p.write_bytes(data)
    with pytest.raises(ImageReadError, match=reason) as ei: open_rgb(p)
    assert ei.value.path == p and str(ei.value).startswith(str(p))

def test_open_rgb_missing(tmp_path):
    with pytest.raises(ImageReadError, match='cannot open'): open_rgb(tmp_path/'gone.jpg')

@pytest.mark.parametrize('lenient', [False, True])
def test_open_rgb_truncated_jpeg(tmp_path, photo, lenient):
    "A JPEG cut in half is refused, even when some library has set PIL's LOAD_TRUNCATED_IMAGES; the switch is restored."
    p = tmp_path/'half.jpg'; j = _jpeg(photo, quality=95); p.write_bytes(j[:len(j)//2])
    old = ImageFile.LOAD_TRUNCATED_IMAGES
    ImageFile.LOAD_TRUNCATED_IMAGES = lenient
    try:
        with pytest.raises(ImageReadError, match='truncated'): open_rgb(p)
        assert ImageFile.LOAD_TRUNCATED_IMAGES is lenient
    finally: ImageFile.LOAD_TRUNCATED_IMAGES = old

def test_open_rgb_corrupt_header(tmp_path, photo):
    "Valid JPEG start, garbage after the first bytes."
    j = _jpeg(photo)
    p = tmp_path/'corrupt.jpg'; p.write_bytes(j[:20] + bytes(np.random.default_rng(2).integers(0, 256, len(j) - 20, dtype=np.uint8)))
    with pytest.raises(ImageReadError): open_rgb(p)

def test_open_rgb_truncated_png(tmp_path, photo):
    b = io.BytesIO(); photo.save(b, 'PNG'); d = b.getvalue()
    p = tmp_path/'cut.png'; p.write_bytes(d[:len(d)*2//3])
    with pytest.raises(ImageReadError): open_rgb(p)


# ---- open_rgb: modes converted correctly

def _rgb(p): return np.asarray(open_rgb(p)).astype(int)

def test_open_rgb_rgb_fully_loaded(tmp_path, photo):
    p = tmp_path/'ok.png'; photo.save(p)
    im = open_rgb(p)
    assert im.mode == 'RGB' and im.size == (64, 48)
    p.unlink()   # fully decoded: the file is not needed any more
    assert np.array_equal(np.asarray(im), np.asarray(photo))

def test_open_rgb_rgba_on_white(tmp_path, photo):
    a = np.asarray(photo.convert('RGBA')).copy()
    a[0, 0] = (0, 0, 0, 0)           # fully transparent black -> white
    a[0, 1] = (0, 0, 0, 128)         # half-transparent black -> mid gray
    a[0, 2, 3] = 255                 # opaque: unchanged
    p = tmp_path/'rgba.png'; Image.fromarray(a, 'RGBA').save(p)
    r = _rgb(p)
    assert tuple(r[0, 0]) == (255, 255, 255)
    assert np.all(np.abs(r[0, 1] - 127) <= 1)
    assert tuple(r[0, 2]) == tuple(a[0, 2, :3])

def test_open_rgb_la_on_white(tmp_path, photo):
    la = photo.convert('LA'); la.putpixel((5, 5), (0, 0)); p = tmp_path/'la.png'; la.save(p)
    r = _rgb(p)
    assert tuple(r[5, 5]) == (255, 255, 255) and np.array_equal(r[0, 0], [np.asarray(photo.convert('L'))[0, 0]]*3)

def test_open_rgb_palette(tmp_path, photo):
    pal = photo.convert('P', palette=Image.Palette.ADAPTIVE, colors=64)
    p = tmp_path/'pal.png'; pal.save(p)
    assert Image.open(p).mode == 'P'
    assert np.array_equal(_rgb(p), np.asarray(pal.convert('RGB')))
    assert np.abs(_rgb(p) - np.asarray(photo).astype(int)).mean() < 12   # the palette is looked up, colours kept

def test_open_rgb_palette_transparency(tmp_path):
    pal = Image.new('P', (8, 8), 0)
    pal.putpalette([0, 0, 0,  200, 30, 40] + [0]*762)
    pal.paste(1, (4, 0, 8, 8))
    p = tmp_path/'palt.png'; pal.save(p, transparency=0)   # index 0 (black) is transparent
    im = Image.open(p); assert im.mode == 'P' and 'transparency' in im.info
    r = _rgb(p)
    assert tuple(r[0, 0]) == (255, 255, 255) and tuple(r[0, 7]) == (200, 30, 40)

def test_open_rgb_cmyk(tmp_path, photo):
    p = tmp_path/'cmyk.jpg'; photo.convert('CMYK').save(p, quality=98)
    assert Image.open(p).mode == 'CMYK'
    assert np.abs(_rgb(p) - np.asarray(photo).astype(int)).mean() < 4
    p2 = tmp_path/'cmyk.tif'; Image.new('CMYK', (4, 4), (0, 255, 255, 0)).save(p2)   # pure cyan-free red
    assert tuple(_rgb(p2)[0, 0]) == (255, 0, 0)

def test_open_rgb_16bit_gray(tmp_path):
    "16-bit gray is scaled by 255/65535, not clipped at 255 as PIL's convert does."
    v = np.array([[0, 257, 32768, 65535, 1000, 60000]], dtype=np.uint16)
    p = tmp_path/'g16.png'; Image.fromarray(v).save(p)
    assert Image.open(p).mode.startswith('I')
    r = _rgb(p)
    assert np.array_equal(r[..., 0], np.rint(v.astype(float)*255/65535).astype(int)) and np.array_equal(r[..., 0], r[..., 2])
    _png16(tmp_path/'g16b.png', v[..., None])   # hand-encoded too
    assert np.array_equal(_rgb(tmp_path/'g16b.png'), r)

def test_open_rgb_16bit_rgb(tmp_path):
    a = np.random.default_rng(3).integers(0, 65536, (6, 7, 3)).astype(np.uint16)
    _png16(tmp_path/'rgb16.png', a)
    assert np.abs(_rgb(tmp_path/'rgb16.png') - a/257).max() <= 1
    _png16(tmp_path/'rgba16.png', np.concatenate([a, np.zeros_like(a[..., :1])], -1))   # all transparent
    assert (_rgb(tmp_path/'rgba16.png') == 255).all()

def test_open_rgb_32bit_int_and_float(tmp_path):
    v = np.array([[0, 65535, 32768]], dtype=np.int32)
    p = tmp_path/'i32.tif'; Image.fromarray(v, 'I').save(p)
    assert Image.open(p).mode == 'I'
    assert _rgb(p)[0, :, 0].tolist() == [0, 255, 128]
    f = tmp_path/'f.tif'; Image.fromarray(np.array([[0, 0.5, 1.0]], dtype=np.float32), 'F').save(f)
    assert _rgb(f)[0, :, 1].tolist() == [0, 128, 255]

@pytest.mark.parametrize('mode', ['L', '1'])
def test_open_rgb_grayscale_modes(tmp_path, photo, mode):
    g = photo.convert(mode); p = tmp_path/f'g{mode}.png'; g.save(p)
    assert Image.open(p).mode == mode
    r = _rgb(p)
    assert r.shape == (48, 64, 3) and np.array_equal(r[..., 0], r[..., 1]) and np.array_equal(r[..., 0], r[..., 2])
    assert np.array_equal(r[..., 0], np.asarray(g.convert('L')))

def test_open_rgb_exif_orientation(tmp_path):
    "Orientation 6: the stored image is rotated 90° clockwise for viewing (top-left -> top-right)."
    a = np.zeros((20, 40, 3), np.uint8); a[:10, :10] = (255, 0, 0)   # red block at the stored top-left
    exif = Image.Exif(); exif[0x0112] = 6
    p = tmp_path/'rot.jpg'; Image.fromarray(a).save(p, exif=exif.tobytes(), quality=95)
    assert Image.open(p).size == (40, 20)
    r = _rgb(p)
    assert r.shape == (40, 20, 3)                              # shown as 20 wide, 40 tall
    assert r[3, 16, 0] > 200 and r[3, 16, 1] < 60              # red now at the top-right
    assert r[3, 3, 0] < 60 and r[36, 3, 0] < 60


# ---- crops, small images, the gray filter, the split

from colorize_nbdev.data.core import (crop_resize, center_box, random_resized_box, to_uint8_tensor, PhotoDataset,
    mean_chroma, is_grayish, GRAY_CHROMA, scan_images, split_by_file, photo_dls, LabBatch, ColorDL,
    make_sketch_pairs, pencil_sketch, split_pair, PairDataset, pair_dls, to_pm1, from_pm1)
from colorize_nbdev.color import rgb_to_lab_norm, lab_norm_to_rgb


def _photos(folder, n, size=(80, 60), start=0):
    "Save `n` sample photos (resized to `size`) as JPEGs in `folder`."
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i, p in enumerate(sample_photos()[start:start + n]):
        q = folder/f'p{i:02d}.jpg'; open_rgb(p).resize(size).save(q, quality=90); out.append(q)
    return out

def test_smaller_than_crop_is_upscaled(tmp_path, photo):
    "The stated rule: a photo smaller than the crop is upscaled to size x size (valid: its centre square), never padded."
    small = photo.resize((40, 30)); p = tmp_path/'small.png'; small.save(p)
    va = PhotoDataset([p], size=64, train=False)[0][0]
    assert va.shape == (3, 64, 64) and va.dtype == torch.uint8
    ref = np.asarray(small.resize((64, 64), Image.Resampling.LANCZOS, box=(5, 0, 35, 30))).transpose(2, 0, 1)
    assert (va.numpy() == ref).all()   # the centre square, upscaled with Lanczos like `evaluate` (not padded: no flat border)
    assert va[:, :, :4].float().std() > 1 and va[:, :, -4:].float().std() > 1
    for _ in range(5): assert PhotoDataset([p], size=64, train=True)[0][0].shape == (3, 64, 64)

def test_crop_boxes():
    rng = random.Random(0)
    for w, h in [(300, 200), (64, 640), (10, 10)]:
        for _ in range(100):
            x0, y0, x1, y1 = random_resized_box(w, h, 0.3, rng=rng)
            assert 0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h
    assert center_box(300, 200) == (50, 0, 250, 200) and center_box(200, 301) == (0, 50, 200, 250)

def test_crop_resize_flip_and_threads(photo):
    t = to_uint8_tensor(photo)
    assert torch.equal(crop_resize(photo, (0, 0, 64, 48), (48, 64)), t)
    assert torch.equal(crop_resize(photo, (0, 0, 64, 48), (48, 64), flip=True), t.flip(-1))
    n = torch.get_num_threads()
    crop_resize(photo, (3, 3, 50, 40), 32)
    assert torch.get_num_threads() == n   # the one-thread section restores the setting

def test_gray_filter(tmp_path, photo):
    assert mean_chroma(photo.convert('L')) < 0.01 and not is_grayish(photo) and is_grayish(photo.convert('L'))
    files = _photos(tmp_path, 6)
    for i in range(3):   # gray photos saved as RGB JPEGs, and one as a gray-mode PNG
        open_rgb(sample_photos()[10 + i]).convert('L').convert('RGB').save(tmp_path/f'bw{i}.jpg', quality=85)
    open_rgb(sample_photos()[13]).convert('L').save(tmp_path/'bw3.png')
    sc = scan_images(find_images(tmp_path), gray_thresh=GRAY_CHROMA)
    assert sorted(p.name for p in sc['gray']) == ['bw0.jpg', 'bw1.jpg', 'bw2.jpg', 'bw3.png'] and len(sc['ok']) == 6
    dls = photo_dls(tmp_path, size=32, bs=2, num_workers=0, drop_gray=True, device='cpu')
    assert sorted(p.name for p in dls.gray) == ['bw0.jpg', 'bw1.jpg', 'bw2.jpg', 'bw3.png']
    assert sorted(p.name for p in dls.train_ds.files + dls.valid_ds.files) == [f.name for f in files]
    dls = photo_dls(tmp_path, size=32, bs=2, num_workers=0, device='cpu')   # off by default
    assert len(dls.gray) == 0 and len(dls.train_ds) + len(dls.valid_ds) == 10

def test_split_by_file_seeded():
    files = [Path(f'/data/photos/{c}/{i}.jpg') for c in 'ab' for i in range(50)]
    tr, va = split_by_file(files, 0.2, seed=7)
    assert len(va) == 20 and len(tr) == 80 and not set(tr) & set(va) and set(tr) | set(va) == set(files)
    assert split_by_file(files[::-1], 0.2, seed=7) == (tr, va)                # same seed, same split, any order
    assert split_by_file(files, 0.2, seed=8)[1] != va                         # another seed, another split
    moved = [Path('/elsewhere') / p.relative_to('/data') for p in files]       # the folder moved: same split
    assert [p.relative_to('/elsewhere') for p in split_by_file(moved, 0.2, seed=7)[1]] == [p.relative_to('/data') for p in va]
    tr2, va2 = split_by_file([p for p in files if p != tr[0]], 0.2, seed=7)    # one training file removed
    assert len(set(va2) ^ set(va)) <= 2
    assert split_by_file(files[:2], 0.01)[1] != [] and split_by_file(files[:1], 0.5) == (files[:1], [])
    with pytest.raises(ValueError, match='valid_pct'): split_by_file(files, 1.0)

def test_photo_dls_split_is_by_file_and_seeded(tmp_path):
    _photos(tmp_path, 20)
    a = photo_dls(tmp_path, size=32, bs=4, valid_pct=0.25, seed=3, num_workers=0, check=None, device='cpu')
    b = photo_dls(tmp_path, size=32, bs=4, valid_pct=0.25, seed=3, num_workers=0, check=None, device='cpu')
    c = photo_dls(tmp_path, size=32, bs=4, valid_pct=0.25, seed=4, num_workers=0, check=None, device='cpu')
    assert a.valid_ds.files == b.valid_ds.files and a.valid_ds.files != c.valid_ds.files
    assert len(a.valid_ds) == 5 and not set(a.train_ds.files) & set(a.valid_ds.files)


# ---- the photo DataLoaders

def test_photo_dls_batches(tmp_path):
    _photos(tmp_path/'sub', 10); _photos(tmp_path, 2, size=(50, 40), start=10)   # recursive; two smaller than the crop
    dls = photo_dls(tmp_path, size=48, bs=4, valid_pct=0.25, num_workers=0, device='cpu')
    assert len(dls.train_ds) + len(dls.valid_ds) == 12
    for dl in (dls.train, dls.valid):
        L, ab = dl.one_batch()
        assert L.shape == (4 if dl is dls.train else 3, 1, 48, 48) and ab.shape == (len(L), 2, 48, 48)
        assert L.dtype == ab.dtype == torch.float32 and L.device.type == 'cpu'
        assert -1 <= L.min() and L.max() <= 1 and ab.abs().max() <= 1 and ab.abs().mean() > 0.01
    assert len(list(dls.train)) == 2                                 # 9 training photos, bs 4, last partial batch dropped
    # valid batches are the exact (L, ab) of each photo's centre crop
    L, ab = dls.valid.one_batch()
    im = open_rgb(dls.valid_ds.files[0])
    L0, ab0 = rgb_to_lab_norm(to_uint8_tensor(center_crop_resize(im, 48))[None])   # validation: the crop `evaluate` scores
    torch.testing.assert_close(L[:1], L0); torch.testing.assert_close(ab[:1], ab0)
    # the training batch round-trips to an RGB image
    rgb = lab_norm_to_rgb(*dls.train.one_batch())
    assert rgb.shape == (4, 3, 48, 48) and 0 <= rgb.min() and rgb.max() <= 1

def test_photo_dls_workers_and_a_mid_epoch_failure(tmp_path, photo):
    "With 2 worker processes, a truncated file that passed a header-only scan is replaced, named once, and the epoch goes on."
    _photos(tmp_path, 11)
    j = _jpeg(photo); (tmp_path/'p05.jpg').write_bytes(j[:len(j)//2])
    dls = photo_dls(tmp_path, size=32, bs=4, valid_pct=0, num_workers=2, check='header', device='cpu', seed=0)
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter('always')
        batches = [b for _ in range(2) for b in dls.train]
    assert len(batches) == 4 and all(b[0].shape == (4, 1, 32, 32) for b in batches)
    msgs = [str(x.message) for x in w if 'could not be read' in str(x.message)]
    assert len(msgs) == 1 and 'p05.jpg' in msgs[0] and 'truncated' in msgs[0] and 'during training' in msgs[0]
    assert list(dls.skipped) == [tmp_path/'p05.jpg']

def test_photo_dls_awkward_folder(tmp_path, photo):
    "Every kind of unreadable file is left out up front, with ONE warning naming each; the readable odd modes are used."
    _photos(tmp_path, 4)
    j = _jpeg(photo)
    (tmp_path/'half.jpg').write_bytes(j[:len(j)//2]); (tmp_path/'zero.jpg').write_bytes(b'')
    (tmp_path/'text.jpg').write_text('not a photo'); (tmp_path/'junk.png').write_bytes(b'\x89PNG\r\n\x1a\n' + bytes(200))
    photo.convert('RGBA').save(tmp_path/'rgba.png'); photo.convert('CMYK').save(tmp_path/'cmyk.jpg')
    photo.convert('P').save(tmp_path/'pal.png')
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter('always')
        dls = photo_dls(tmp_path, size=32, bs=2, num_workers=0, device='cpu')
        for b in dls.train: pass
        for b in dls.valid: pass
    msgs = [str(x.message) for x in w if 'could not be read' in str(x.message)]
    assert len(msgs) == 1 and all(n in msgs[0] for n in ['half.jpg', 'zero.jpg', 'text.jpg', 'junk.png'])
    assert sorted(p.name for p in dls.skipped) == ['half.jpg', 'junk.png', 'text.jpg', 'zero.jpg']
    assert len(dls.train_ds) + len(dls.valid_ds) == 7

def test_photo_dls_errors(tmp_path):
    (tmp_path/'empty').mkdir()
    with pytest.raises(FileNotFoundError, match='No images'): photo_dls(tmp_path/'empty', num_workers=0)
    with pytest.raises(FileNotFoundError, match='nowhere'): photo_dls(tmp_path/'nowhere', num_workers=0)
    (tmp_path/'bad').mkdir()
    for i in range(3): (tmp_path/'bad'/f'{i}.jpg').write_bytes(b'')
    with pytest.warns(UserWarning, match='could not be read'), pytest.raises(ValueError, match='None of the 3'):
        photo_dls(tmp_path/'bad', num_workers=0)
    ds = PhotoDataset(sorted((tmp_path/'bad').iterdir()), 32)   # a folder of nothing but broken files: a clear stop
    with pytest.raises(RuntimeError, match='3 files in a row'): ds[0]

def test_show_batch(tmp_path):
    import matplotlib; matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    _photos(tmp_path, 6)
    dls = photo_dls(tmp_path, size=32, bs=4, num_workers=0, device='cpu')
    fig = dls.show_batch(max_n=4, show=False)
    titles = [ax.get_title() for ax in fig.axes]
    assert len(fig.axes) == 8 and titles.count('input L') == 4 and titles.count('target') == 4
    # the first panel is gray (equal channels), the second is the colour photo
    g, c = (np.asarray(ax.get_images()[0].get_array()) for ax in fig.axes[:2])
    assert np.abs(g[..., 0] - g[..., 1]).max() < 1e-3 and np.abs(c[..., 0] - c[..., 1]).mean() > 0.01
    b = dls.valid.one_batch()
    fig2 = dls.valid.show_results(b, b[1]*0, max_n=2, show=False)
    assert [ax.get_title() for ax in fig2.axes[:3]] == ['input L', 'prediction', 'target']
    plt.close('all')


# ---- paired sketch -> colour data

def test_split_pair_halves():
    a = np.zeros((4, 9, 3), np.uint8); a[:, :4] = (255, 0, 0); a[:, 5:] = (0, 0, 255); a[:, 4] = (0, 255, 0)
    s, c = split_pair(Image.fromarray(a))
    assert s.size == c.size == (4, 4)                                   # odd width: the middle column is dropped
    assert np.all(np.asarray(c) == (255, 0, 0)) and np.all(np.asarray(s) == (0, 0, 255))
    s, c = split_pair(Image.fromarray(a), colour_left=False)
    assert np.all(np.asarray(s) == (255, 0, 0))

def test_pair_dataset_halves_and_same_crop(tmp_path):
    "Left = colour, right = sketch; train crops/flips both halves identically; valid resizes to size."
    rng = np.random.default_rng(0)
    half = rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)
    half[:, :20] //= 4                                                    # asymmetric, so a flip shows
    same = tmp_path/'same.png'; Image.fromarray(np.concatenate([half, half], 1)).save(same)
    for i in range(12):
        s, c, failed = PairDataset([same], size=24, load_size=30, train=True)[0]
        assert torch.equal(s, c) and s.shape == (3, 24, 24) and failed.item() == -1
    red_blue = np.zeros((20, 40, 3), np.uint8); red_blue[:, :20, 0] = 255; red_blue[:, 20:, 2] = 255
    rb = tmp_path/'rb.png'; Image.fromarray(red_blue).save(rb)
    s, c, _ = PairDataset([rb], size=16, load_size=18, train=False)[0]
    assert (c[0] == 255).all() and (c[2] == 0).all() and (s[2] == 255).all() and (s[0] == 0).all()
    s, c, _ = PairDataset([rb], size=16, load_size=18, train=False, colour_left=False)[0]
    assert (s[0] == 255).all() and (c[2] == 255).all()
    with pytest.raises(ValueError, match='load_size'): PairDataset([rb], size=32, load_size=30)

def test_pair_flips_happen(tmp_path):
    "Over several draws both flipped and unflipped crops occur (the flip is random, and shared by the halves)."
    a = np.zeros((16, 32, 3), np.uint8); a[:, :4] = 255; a[:, 16:20] = 255   # a white bar at the left of each half
    p = tmp_path/'bar.png'; Image.fromarray(a).save(p)
    random.seed(0)
    left = [PairDataset([p], size=16, load_size=16, train=True)[0] for _ in range(30)]
    sides = {bool(c[0, 8, 0] == 255) for s, c, _ in left}
    assert sides == {True, False} and all(torch.equal(s, c) for s, c, _ in left)

def test_make_sketch_pairs_and_pair_dls(tmp_path):
    photos = _photos(tmp_path/'photos', 8)
    pairs = make_sketch_pairs(tmp_path/'photos', tmp_path/'pairs', size=40)
    assert [p.name for p in pairs] == [f'p{i:02d}.png' for i in range(8)]
    pr = np.asarray(Image.open(pairs[0])).astype(int)
    assert pr.shape == (40, 80, 3)
    src = np.asarray(center_crop_resize(open_rgb(photos[0]), 40)).astype(int)
    assert np.abs(pr[:, :40] - src).max() <= 1                             # colour on the left
    assert np.array_equal(pr[:, 40:, 0], pr[:, 40:, 2])                    # the sketch (right) is gray
    assert pr[:, 40:].mean() > 180                                         # mostly white paper, dark lines
    with pytest.raises(FileExistsError, match='overwrite=True'): make_sketch_pairs(photos[:1], tmp_path/'pairs', size=40)
    assert make_sketch_pairs(photos[:1], tmp_path/'pairs', size=40, overwrite=True) == pairs[:1]
    dls = pair_dls(tmp_path/'pairs', size=32, load_size=36, bs=3, valid_pct=0.25, num_workers=0, device='cpu')
    assert (len(dls.train_ds), len(dls.valid_ds)) == (6, 2)
    s, c = dls.one_batch()
    assert s.shape == c.shape == (3, 3, 32, 32) and s.dtype == torch.float32
    assert -1 <= min(s.min(), c.min()) and max(s.max(), c.max()) <= 1
    assert torch.equal(s[:, 0], s[:, 2]) and (c[:, 0] - c[:, 2]).abs().mean() > 0.02
    sv, cv = dls.valid.one_batch()
    assert sv.shape == (2, 3, 32, 32)
    torch.testing.assert_close(from_pm1(to_pm1(torch.tensor([0, 255], dtype=torch.uint8))), torch.tensor([0., 1.]))
    import matplotlib; matplotlib.use('Agg'); import matplotlib.pyplot as plt
    assert [ax.get_title() for ax in dls.show_batch(max_n=2, show=False).axes[:2]] == ['sketch', 'colour']
    plt.close('all')


def test_fastai_learner_fits_gets_preds_and_exports(tmp_path):
    "The DataLoaders work with a fastai Learner: fit, get_preds, show_results, export."
    import matplotlib; matplotlib.use('Agg'); import matplotlib.pyplot as plt
    from fastai.learner import Learner
    _photos(tmp_path/'ph', 10)
    dls = photo_dls(tmp_path/'ph', size=32, bs=4, valid_pct=0.2, num_workers=0, device='cpu', seed=0)
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(8, 2, 3, padding=1))
    learn = Learner(dls, model, loss_func=torch.nn.functional.mse_loss, path=tmp_path)
    learn.fit(1, 1e-3)
    preds, targs = learn.get_preds()
    assert preds.shape == targs.shape == (2, 2, 32, 32)
    learn.show_results(max_n=2); plt.close('all')
    learn.export(tmp_path/'learner.pkl')
    assert (tmp_path/'learner.pkl').stat().st_size > 0
