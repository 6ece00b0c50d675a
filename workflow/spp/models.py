"""Architectures by name (placeholder: being written)."""

ARCHITECTURES: tuple[str, ...] = ()


def build_model(arch, input_shape, num_classes, activation=None, width=1.0):
    raise NotImplementedError


def prunable_parameters(model):
    raise NotImplementedError
