"""Approximate isometry (placeholder: being written)."""


def approximate_isometry(model, mask, steps=10_000, lr=0.1):
    raise NotImplementedError


def orthogonality_score(model, mask=None):
    raise NotImplementedError
