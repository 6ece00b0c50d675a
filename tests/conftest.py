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
def _deterministic_threads():
    # Two-core machines: oversubscribed intra-op threads make tests slower, not faster.
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    yield
