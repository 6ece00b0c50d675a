"""Shared fixtures: where the original datasets live, and a fast default device."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]


def _shared_data_dir() -> Path:
    return Path(os.environ.get("SPP_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The folder of original dataset files (../shared/data); skip when it is absent."""
    path = _shared_data_dir()
    if not (path / "mnist" / "train-images-idx3-ubyte.gz").is_file():
        pytest.skip(f"original datasets not found at {path} (set SPP_SHARED_DATA to point to them)")
    return path


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(autouse=True)
def _one_thread():
    # The tests' tensors are small: a second intra-op thread gains nothing, and on a busy
    # 2-core machine spinning OpenMP threads make small matmuls and LAPACK calls 10-50x slower.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
