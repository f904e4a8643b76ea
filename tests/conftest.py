"""Shared test set-up: torch on one thread.

The tests use tiny tensors, where starting threads costs more than it saves, and the
suite runs on a shared 2-core machine.
"""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def _single_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
