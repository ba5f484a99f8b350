"""The model contract (nbs/88_contract.ipynb): every registered architecture keeps it, and a model that breaks it is told how."""
import pytest
import torch
from torch import nn

from colorize_nbdev.contract import ContractError, check_colorizer
from colorize_nbdev.modelfile import ARCHS, register_arch
from colorize_nbdev.train import import_archs

import_archs()


@pytest.mark.parametrize('arch', sorted(a for a in ARCHS if not a.startswith('test-')))
def test_every_architecture_keeps_the_contract(arch):
    info = check_colorizer(arch, shape=(1, 35, 41))
    assert info['io'] in {('lab_l', 'lab_ab'), ('yuv_y', 'yuv_uv'), ('sketch_rgb', 'rgb')}
    assert info['out_shape'][:2] == (1, 3 if info['io'] == ('sketch_rgb', 'rgb') else 2)


@pytest.fixture
def arch_named():
    made = []
    def reg(name, ctor): register_arch(name)(ctor); made.append(name); return name
    yield reg
    for n in made: ARCHS.pop(n, None)


def test_broken_models_are_told_every_rule_they_break(arch_named):
    class RGBOut(nn.Module):
        train_defaults = dict(epoch=3, loss='ce')   # a typo'd key, and its own loss with no training_parts to give it
        multiple = 0
        def __init__(self, width: int = 4, act=nn.ReLU()): super().__init__(); self.c = nn.Conv2d(1, 3, 1)
        def forward(self, x): return self.c(x)
    with pytest.raises(ContractError) as e: check_colorizer(arch_named('test-contract-rgb', RGBOut))
    msg = str(e.value)
    for words in ("option 'act' defaults to ReLU, not plain data", "unknown keys ['epoch']", "multiple=0 is not a positive integer",
                  "own loss 'ce' but the model has no training_parts", "returned torch.Size([2, 3, 37, 50]), not (B,2,h,w)"):
        assert words in msg, (words, msg)

    class NoDefault(nn.Module):
        def __init__(self, width): super().__init__()
    with pytest.raises(ContractError, match="option 'width' has no default.*cannot be built"):
        check_colorizer(arch_named('test-contract-nodefault', NoDefault))

    class NaNs(nn.Module):
        def __init__(self): super().__init__(); self.p = nn.Parameter(torch.zeros(1))
        def forward(self, x): return (x[:, :1]*float('nan')).expand(-1, 2, -1, -1) + self.p
    with pytest.raises(ContractError, match='NaN or inf'): check_colorizer(arch_named('test-contract-nan', NaNs))

    class Unsaved(nn.Module):   # state the model file cannot restore: a buffer re-randomised at every build
        def __init__(self):
            super().__init__()
            self.register_buffer('noise', torch.randn(1, 2, 1, 1), persistent=False)
            self.c = nn.Conv2d(1, 2, 1)
        def forward(self, x): return self.c(x) + self.noise
    with pytest.raises(ContractError, match='reloaded model file gives other outputs'): check_colorizer(arch_named('test-contract-unsaved', Unsaved))
    with pytest.raises(ContractError, match="'nope' is not registered"): check_colorizer('nope')
