"""Approximate isometry and the orthogonality score (Lee et al. 2020, eq. 8 and Sec. 5.1)."""

from __future__ import annotations

import pytest
import spp
import torch
from spp.nets.models import prunable_parameters
from spp.signal.isometry import gram_deviation


def _orthogonal_mlp(depth: int = 7):
    model = spp.build_model(f"mlp-{depth}-tanh", (1, 28, 28), 10)
    return spp.initialize(model, "orthogonal", seed=0)


def test_gram_is_over_output_rows_and_the_norm_is_unsquared():
    q, _ = torch.linalg.qr(torch.randn(784, 100))
    assert gram_deviation(q.T) < 1e-5  # [out=100, in=784] with orthonormal rows: G = I (100x100)
    assert gram_deviation(q) > 1.0  # its transpose is no isometry on the output side
    w = 2 * torch.eye(3)  # G = 4 I: ||3 I||_F = 3 sqrt(3), not 27
    torch.testing.assert_close(gram_deviation(w), torch.tensor(3 * 3**0.5))
    conv = torch.randn(8, 3, 3, 3)  # flattened to [8, 27], Gram 8 x 8
    flat = conv.reshape(8, 27)
    torch.testing.assert_close(gram_deviation(conv), torch.linalg.matrix_norm(flat @ flat.T -
                                                                            torch.eye(8)))


def test_orthogonality_score_is_the_mean_over_layers_with_the_mask_applied():
    model = _orthogonal_mlp()
    assert spp.orthogonality_score(model) < 1e-4  # LDI: every layer orthogonal
    mask = spp.global_mask(spp.score(model, "random", seed=0), 0.9)
    expected = torch.stack([
        gram_deviation(p.detach() * mask[n])
        for n, p in prunable_parameters(model, biases=False).items()
    ]).mean()
    assert spp.orthogonality_score(model, mask) == pytest.approx(float(expected), rel=1e-6)


def test_ai_lowers_os_of_a_90_percent_pruned_orthogonal_mlp_and_keeps_pruned_zero():
    model = _orthogonal_mlp()
    biases = {n: p.detach().clone() for n, p in model.named_parameters() if n.endswith("bias")}
    mask = spp.global_mask(spp.score(model, "random", seed=0), 0.9)
    spp.apply_mask(model, mask)
    before = spp.orthogonality_score(model, mask)
    spp.approximate_isometry(model, mask, steps=1000)
    after = spp.orthogonality_score(model, mask)
    assert after <= before / 2, (before, after)
    for name, p in prunable_parameters(model).items():
        assert (p[~mask[name]] == 0).all(), name
        assert p.grad is None
    for name, b in biases.items():
        assert torch.equal(dict(model.named_parameters())[name], b)


def test_ai_zero_steps_only_zeroes_pruned_entries_and_bad_inputs_raise():
    model = _orthogonal_mlp(depth=3)
    mask = spp.global_mask(spp.score(model, "random", seed=0), 0.5)
    kept = {n: p.detach()[mask[n]].clone() for n, p in prunable_parameters(model).items()}
    spp.approximate_isometry(model, mask, steps=0)
    for name, p in prunable_parameters(model).items():
        assert (p[~mask[name]] == 0).all() and torch.equal(p.detach()[mask[name]], kept[name])
    for bad in (dict(steps=-1), dict(steps=1.5), dict(lr=0.0), dict(lr=-1)):
        with pytest.raises(ValueError, match="steps|lr"):
            spp.approximate_isometry(model, mask, **bad)
    with pytest.raises(ValueError, match="unknown names"):
        spp.approximate_isometry(model, {"nope": torch.ones(1, dtype=torch.bool)})
