"""GPU fast path (spp.train.fastpath): exact no-ops on CPU, the real thing on CUDA when present."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from spp.nets.models import build_model
from spp.train.fastpath import (
    FastPath,
    autocast_context,
    compile_model,
    prepare_model,
    to_device_batch,
)

cuda = pytest.mark.cuda  # skipped without a GPU (tests/conftest.py)


def test_cpu_is_untouched_bit_for_bit():
    torch.manual_seed(0)
    model = build_model("resnet8", (3, 8, 8), 10)
    x = torch.randn(4, 3, 8, 8)
    reference = model(x)
    fast = FastPath(bf16=True, channels_last=True, cudnn_benchmark=True, tf32=True, compile=True)
    assert FastPath.for_device("cpu") == FastPath() and not FastPath.for_device("cpu").enabled
    assert prepare_model(model, "cpu", fast) is model
    assert model.conv1.weight.is_contiguous()  # not channels-last
    assert compile_model(model, "cpu", fast) is model
    xb = to_device_batch(x, "cpu", fast)
    assert xb is x
    with autocast_context("cpu", enabled=True):
        out = model(xb)
    assert out.dtype == torch.float32
    assert torch.equal(out, reference)


def test_bad_compile_mode_is_refused():
    with pytest.raises(ValueError, match="compile_mode"):
        FastPath(compile=True, compile_mode="fastest")


@cuda
def test_cuda_bf16_channels_last_close_to_fp32():
    torch.manual_seed(0)
    model = build_model("resnet8", (3, 16, 16), 10).cuda()
    x = torch.randn(32, 3, 16, 16, device="cuda")
    y = torch.randint(0, 10, (32,), device="cuda")
    ref = F.cross_entropy(model(x), y)
    fast = FastPath.for_device("cuda")
    prepare_model(model, "cuda", fast)
    assert model.conv1.weight.is_contiguous(memory_format=torch.channels_last)
    with autocast_context("cuda", fast.bf16):
        logits = model(to_device_batch(x, "cuda", fast))
        loss = F.cross_entropy(logits, y)
    assert logits.dtype == torch.bfloat16 and model.conv1.weight.dtype == torch.float32
    assert abs(loss.item() - ref.item()) < 0.05 * abs(ref.item())


def test_cuda_flags_are_a_noop_on_cpu_and_restored():
    from spp.train.fastpath import cuda_flags

    before = (torch.backends.cudnn.benchmark, torch.backends.cuda.matmul.allow_tf32)
    with cuda_flags("cpu", FastPath(cudnn_benchmark=True, tf32=True)):
        assert (torch.backends.cudnn.benchmark, torch.backends.cuda.matmul.allow_tf32) == before
    assert (torch.backends.cudnn.benchmark, torch.backends.cuda.matmul.allow_tf32) == before


@cuda
def test_cuda_flags_restore_fp32_reference_settings():
    from spp.train.fastpath import cuda_flags

    torch.backends.cuda.matmul.allow_tf32 = False
    with cuda_flags("cuda", FastPath(tf32=True)):
        assert torch.backends.cuda.matmul.allow_tf32
    assert not torch.backends.cuda.matmul.allow_tf32
