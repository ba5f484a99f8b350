"""The saved-model format (`colorize_nbdev.modelfile`): round trip, atomic writes, and a clear error for every bad file."""
import os, pickle, sys

import pytest
import torch
from torch import nn

from colorize_nbdev import modelfile as MF
from colorize_nbdev.modelfile import (ARCHS, MODEL_FORMAT, ModelFileError, build_model, load_model, read_model_file,
                                      register_arch, save_model)


@register_arch('test-tiny-l2ab')
def tiny(hidden:int=3):
    return nn.Sequential(nn.Conv2d(1, hidden, 1), nn.Tanh(), nn.Conv2d(hidden, 2, 1))


@pytest.fixture
def saved(tmp_path):
    torch.manual_seed(0)
    m = tiny(4)
    p = save_model(m, tmp_path/'m.pth', 'test-tiny-l2ab', {'hidden': 4, 'size': 64})
    return m, p


def test_round_trip(saved):
    m, p = saved
    m2, cfg = load_model(p, device='cpu')
    assert cfg == {'input': 'lab_l', 'output': 'lab_ab', 'hidden': 4, 'size': 64}
    x = torch.rand(2, 1, 8, 8)
    with torch.no_grad(): torch.testing.assert_close(m2(x), m(x), rtol=0, atol=0)
    assert not m2.training and next(m2.parameters()).device.type == 'cpu'
    obj = torch.load(p, weights_only=True)             # plain contents: the safe loader reads them
    assert obj['format'] == MODEL_FORMAT and obj['version'] == 1 and obj['arch'] == 'test-tiny-l2ab'
    assert obj['module'] == __name__                    # where the architecture lives
    assert sorted(f.name for f in p.parent.iterdir()) == ['m.pth']   # no temporary file left


def test_prep_keys_are_not_constructor_arguments():
    assert len(build_model('test-tiny-l2ab', {'hidden': 5, 'size': 32, 'input': 'lab_l'})[0].bias) == 5


def test_save_is_atomic(saved, monkeypatch):
    m, p = saved
    good = p.read_bytes()
    def crash(obj, f):
        f.write(b'PK\x03\x04 half a model')
        raise KeyboardInterrupt('power cut')
    monkeypatch.setattr(MF.torch, 'save', crash)
    with pytest.raises(KeyboardInterrupt): save_model(m, p, 'test-tiny-l2ab', {'hidden': 4})
    assert p.read_bytes() == good                       # the old model is intact
    assert sorted(f.name for f in p.parent.iterdir()) == ['m.pth']


def test_save_checks_before_writing(tmp_path, saved):
    m, _ = saved
    with pytest.raises(ValueError, match='do not fit'): save_model(m, tmp_path/'a.pth', 'test-tiny-l2ab', {'hidden': 2})
    with pytest.raises(ValueError, match='not registered'): save_model(m, tmp_path/'a.pth', 'no-such-arch')
    with pytest.raises(TypeError, match=r"config\['f'\] is a builtin"): save_model(m, tmp_path/'a.pth', 'test-tiny-l2ab', {'hidden': 4, 'f': len})
    with pytest.raises(ValueError, match='cannot build'): save_model(m, tmp_path/'a.pth', 'test-tiny-l2ab', {'hidden': 4, 'typo': 1})
    photo = tmp_path/'photo.jpg'
    photo.write_bytes(b'\xff\xd8\xff my holiday')
    with pytest.raises(FileExistsError, match='not replacing it'): save_model(m, photo, 'test-tiny-l2ab', {'hidden': 4})
    assert photo.read_bytes() == b'\xff\xd8\xff my holiday'
    with pytest.raises(IsADirectoryError): save_model(m, tmp_path, 'test-tiny-l2ab', {'hidden': 4})
    assert not (tmp_path/'a.pth').exists()
    save_model(m, photo, 'test-tiny-l2ab', {'hidden': 4}, overwrite=True)   # when asked
    assert load_model(photo, device='cpu')[1]['hidden'] == 4


def _err(path):
    with pytest.raises((ModelFileError, FileNotFoundError)) as e: load_model(path, device='cpu')
    msg = str(e.value)
    assert str(path) in msg and '\n' not in msg and 'Traceback' not in msg
    return msg


def test_bad_files_give_clear_errors(tmp_path, saved):
    _, p = saved
    good = p.read_bytes()
    obj = read_model_file(p)
    files = {'truncated.pth': good[:len(good)//2], 'empty.pth': b'', 'text.pth': b'hello, not a model',
             'photo.pth': b'\xff\xd8\xff\xe0' + os.urandom(200), 'random.pth': b'PK\x03\x04' + os.urandom(300)}
    for n, b in files.items(): (tmp_path/n).write_bytes(b)
    assert 'truncated or corrupt' in _err(tmp_path/'truncated.pth')
    assert 'empty file' in _err(tmp_path/'empty.pth')
    assert 'not a PyTorch file' in _err(tmp_path/'text.pth')
    assert 'is an image' in _err(tmp_path/'photo.pth')
    assert 'truncated or corrupt' in _err(tmp_path/'random.pth')
    assert 'no such model file' in _err(tmp_path/'missing.pth')
    assert 'is a folder' in _err(tmp_path)
    with open(tmp_path/'objects.pth', 'wb') as f: pickle.dump({'model': nn.Linear(1, 1)}, f)
    assert 'refused' in _err(tmp_path/'objects.pth')
    torch.save(nn.Linear(1, 1), tmp_path/'whole_module.pth')            # torch.save(model): pickled objects
    assert 'refused' in _err(tmp_path/'whole_module.pth')
    torch.save(obj['state_dict'], tmp_path/'bare.pth')
    assert 'bare state_dict' in _err(tmp_path/'bare.pth')
    torch.save({**obj, 'version': 2}, tmp_path/'future.pth')
    assert 'newer' in _err(tmp_path/'future.pth')
    torch.save({**obj, 'version': 'one'}, tmp_path/'badversion.pth')
    assert 'invalid format version' in _err(tmp_path/'badversion.pth')
    torch.save({k: v for k, v in obj.items() if k != 'state_dict'}, tmp_path/'nostate.pth')
    assert "'state_dict'" in _err(tmp_path/'nostate.pth')
    sd = dict(obj['state_dict']); sd['0.weight'] = torch.zeros(9, 1, 1, 1)
    torch.save({**obj, 'state_dict': sd}, tmp_path/'misfit.pth')
    assert 'do not fit' in _err(tmp_path/'misfit.pth')
    torch.save({**obj, 'config': {'hidden': 4, 'nonsense': 1}}, tmp_path/'badcfg.pth')
    assert 'cannot build' in _err(tmp_path/'badcfg.pth')


def test_unknown_arch_never_imports_foreign_modules(tmp_path, saved, monkeypatch):
    _, p = saved
    marker = tmp_path/'imported'
    (tmp_path/'evil_arch_mod.py').write_text(f"open({str(marker)!r}, 'w').write('ran')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    torch.save({**read_model_file(p), 'arch': 'evil', 'module': 'evil_arch_mod'}, tmp_path/'evil.pth')
    msg = _err(tmp_path/'evil.pth')
    assert "'evil', which is not registered" in msg and '--module evil_arch_mod' in msg
    assert not marker.exists() and 'evil_arch_mod' not in sys.modules


def test_unknown_arch_in_colorize_nbdev_module_is_imported(tmp_path, saved, monkeypatch):
    "A file naming a module of the course imports it (that is how the model lessons' architectures register)."
    _, p = saved
    monkeypatch.delitem(ARCHS, 'test-tiny-l2ab')
    imported = []
    monkeypatch.setattr(MF.importlib, 'import_module', lambda name: imported.append(name) or ARCHS.setdefault('test-tiny-l2ab', tiny))
    torch.save({**read_model_file(p), 'module': 'colorize_nbdev.some_models'}, tmp_path/'ours.pth')
    model, _ = load_model(tmp_path/'ours.pth', device='cpu')
    assert imported == ['colorize_nbdev.some_models'] and isinstance(model, nn.Sequential)
