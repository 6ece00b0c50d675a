"""Shared fixtures: where the original datasets live, the device under test, one CPU thread.

The device: tests that take the ``device`` fixture run on ``SPP_TEST_DEVICE`` (default ``cpu``;
``cuda`` or ``cuda:N`` on a GPU machine: ``SPP_TEST_DEVICE=cuda pytest -m "not slow"``, as
``benchmarks/gpu_check.py`` does). Tests marked ``@pytest.mark.cuda`` need a CUDA GPU and skip
without one (``pytest -m cuda`` selects them). Asking for a CUDA device where there is none is a
usage error, not a silent CPU run.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
DEVICE_VARIABLE = "SPP_TEST_DEVICE"


def _test_device() -> torch.device:
    name = os.environ.get(DEVICE_VARIABLE, "").strip() or "cpu"
    try:
        return torch.device(name)
    except RuntimeError as e:
        raise pytest.UsageError(f"{DEVICE_VARIABLE}={name!r} is not a torch device: {e}") from e


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "cuda: needs a CUDA GPU; skipped without one (select them with -m cuda)")
    device = _test_device()
    if device.type == "cuda" and not torch.cuda.is_available():
        raise pytest.UsageError(f"{DEVICE_VARIABLE}={device} but CUDA is not available here")


def pytest_runtest_setup(item):
    if item.get_closest_marker("cuda") is not None and not torch.cuda.is_available():
        pytest.skip("needs CUDA (no GPU here)")


def pytest_report_header(config):
    return f"device under test ({DEVICE_VARIABLE}): {_test_device()}"


@pytest.fixture(scope="session")
def device() -> torch.device:
    """The device under test: ``SPP_TEST_DEVICE`` (default cpu)."""
    return _test_device()


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
