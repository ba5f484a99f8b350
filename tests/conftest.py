"""Fixtures shared by the test files."""
import shutil

import pytest
import torch


@pytest.fixture(scope='module')
def one_thread():
    "Small models on a shared 2-core machine: one torch thread is faster (restored after the module). Use with `pytestmark`."
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope='module')
def photos(tmp_path_factory):
    "A folder with 12 of the bundled sample photos (a module may define its own `photos`)."
    from colorize_nbdev.data.samples import sample_photos
    d = tmp_path_factory.mktemp('photos')
    for p in sample_photos()[:12]: shutil.copy(p, d/p.name)
    return d
