"""Fixtures shared by the test files."""
import pytest
import torch


@pytest.fixture(scope='module')
def one_thread():
    "Small models on a shared 2-core machine: one torch thread is faster (restored after the module). Use with `pytestmark`."
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
