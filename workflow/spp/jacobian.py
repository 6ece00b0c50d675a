"""Jacobian singular values (placeholder: being written)."""


def jacobian_singular_values(model, batches):
    raise NotImplementedError
