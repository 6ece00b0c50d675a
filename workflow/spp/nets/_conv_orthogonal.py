"""Orthogonal matrices and convolution-orthogonal kernels (Xiao et al., 2018).

A conv kernel with taps ``K[i, j]`` (each a ``c_out x c_in`` matrix) is, under circular padding and
stride 1, an orthogonal operator exactly when its polynomial matrix
``K(z1, z2) = sum_ij K[i, j] z1^i z2^j`` is unitary for every ``|z1| = |z2| = 1`` (paraunitary).
Xiao et al. ("Dynamical isometry and a mean field theory of CNNs", ICML 2018, Algorithm 2, the
``ConvolutionOrthogonal2D`` initializer of TensorFlow that the authors' code uses) build such
kernels from symmetric projections ``P``: ``P + (I - P) z`` is unitary on the unit circle because
``P`` and ``I - P`` are complementary orthogonal projectors, and products of paraunitary
polynomials are paraunitary. ``k - 1`` two-dimensional factors
``(P1 + (I - P1) z1)(P2 + (I - P2) z2)`` give a ``k x k`` kernel, and a final orthogonal matrix
mixes the channels. ``torch.nn.init.orthogonal_`` on a flattened kernel is *not* this: it makes the
flattened matrix orthogonal, not the convolution.
"""

from __future__ import annotations

import torch


def orthogonal_matrix(rows: int, cols: int, gen: torch.Generator) -> torch.Tensor:
    """A Haar-random ``rows x cols`` matrix with orthonormal rows or columns (float64).

    QR of a Gaussian matrix with the sign fix ``Q * sign(diag(R))`` (without it Q is not Haar
    distributed). For ``rows < cols`` the rows are orthonormal, otherwise the columns are; either
    way every singular value is 1.
    """
    n, m = max(rows, cols), min(rows, cols)
    a = torch.randn(n, m, generator=gen, dtype=torch.float64)
    q, r = torch.linalg.qr(a)
    d = torch.sign(torch.diagonal(r))
    d[d == 0] = 1.0
    q = q * d
    return q if rows >= cols else q.T


def symmetric_projection(n: int, gen: torch.Generator) -> torch.Tensor:
    """``P = C C^T`` with C a random orthogonal matrix whose columns are each kept with prob. 1/2.

    P is symmetric and idempotent: an orthogonal projector onto a random subspace.
    """
    q = orthogonal_matrix(n, n, gen)
    keep = (torch.randn(n, generator=gen, dtype=torch.float64) > 0).to(torch.float64)
    c = q * keep
    return c @ c.T


def _poly_mul(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Product of two matrix polynomials in (z1, z2) given as taps ``[k1, k2, n, n]``."""
    ka1, ka2, n, _ = a.shape
    kb1, kb2, _, _ = b.shape
    out = torch.zeros(ka1 + kb1 - 1, ka2 + kb2 - 1, n, n, dtype=a.dtype)
    for i in range(ka1):
        for j in range(ka2):
            out[i : i + kb1, j : j + kb2] += a[i, j] @ b
    return out


def _linear_factor(n: int, axis: int, gen: torch.Generator) -> torch.Tensor:
    """Taps of ``P + (I - P) z_axis`` for a random symmetric projection P."""
    p = symmetric_projection(n, gen)
    eye = torch.eye(n, dtype=torch.float64)
    taps = torch.stack([p, eye - p])  # [2, n, n]
    return taps[:, None] if axis == 0 else taps[None, :]


def paraunitary_taps(n: int, kh: int, kw: int, gen: torch.Generator) -> torch.Tensor:
    """Taps ``[kh, kw, n, n]`` of a random paraunitary polynomial matrix of degree (kh-1, kw-1).

    For a square kernel this is Xiao et al.'s product of ``k - 1`` two-dimensional block factors;
    a non-square kernel gets the extra one-dimensional factors along its longer side.
    """
    poly = torch.eye(n, dtype=torch.float64)[None, None]
    for t in range(max(kh, kw) - 1):
        if t < kh - 1:
            poly = _poly_mul(poly, _linear_factor(n, 0, gen))
        if t < kw - 1:
            poly = _poly_mul(poly, _linear_factor(n, 1, gen))
    return poly


def conv_orthogonal_kernel(
    c_out: int, c_in: int, kh: int, kw: int, gen: torch.Generator
) -> torch.Tensor:
    """A torch conv weight ``[c_out, c_in, kh, kw]`` (float64) whose circular convolution is
    orthogonal.

    ``c_out >= c_in``: the operator is an isometry (``||conv(x)|| = ||x||``, circular padding,
    stride 1), as in Xiao et al. / TensorFlow: taps ``P[i, j] @ H`` with P paraunitary
    (``c_out x c_out``) and H a ``c_out x c_in`` matrix with orthonormal columns.

    ``c_out < c_in`` (TensorFlow refuses this case): fallback, we build the kernel for the swapped
    channel counts and swap the channel axes. That is the adjoint's kernel up to a spatial flip,
    which keeps paraunitarity, so the operator has orthonormal rows: its adjoint preserves norms
    and every singular value of the operator is 1.

    A 1x1 kernel is a plain orthogonal matrix.
    """
    big, small = max(c_out, c_in), min(c_out, c_in)
    h = orthogonal_matrix(big, small, gen)  # orthonormal columns
    if kh == 1 and kw == 1:
        taps = h[None, None]
    else:
        taps = paraunitary_taps(big, kh, kw, gen) @ h  # [kh, kw, big, small]
    if c_out >= c_in:
        return taps.permute(2, 3, 0, 1).contiguous()
    return taps.permute(3, 2, 0, 1).contiguous()
