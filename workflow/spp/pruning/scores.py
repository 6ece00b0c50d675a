"""Pruning methods: one registry holding each method's function and the facts callers need.

A score method is a function ``fn(model, batches, **options) -> {param_name: tensor}`` over the
prunable parameters; higher means keep. Register it with ``@register(name, needs_data=...,
context=...)`` in a module of this package (`_load_methods` imports them all). The facts are what
the workflow plans with: whether the method reads the scoring data (else its mask is the same on any
dataset, and the score stage gets no data), which per-run values the caller must supply
(``context``: a seed, the target sparsity, the input shape, the inversion ablation), and whether
it scores trained weights (``after_training``: a variant of a method at initialization).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch
from torch import nn

ScoreFn = Callable[..., dict[str, torch.Tensor]]
CONTEXT = ("seed", "sparsity", "input_shape", "invert")  # per-run values a caller can supply


@dataclass(frozen=True)
class Method:
    name: str
    fn: ScoreFn
    needs_data: bool
    context: tuple[str, ...] = ()
    after_training: bool = False
    base: str = ""  # the registered function's name (a variant's method at initialization)

    @property
    def options(self) -> tuple[str, ...]:
        """The keyword options a user may set (the function's, less the caller's context)."""
        params = list(inspect.signature(self.fn).parameters.values())[2:]
        return tuple(p.name for p in params
                     if p.kind is not inspect.Parameter.VAR_KEYWORD and p.name not in CONTEXT)


_REGISTRY: dict[str, Method] = {}


def register(name: str, *, needs_data: bool, context: tuple[str, ...] = ()
             ) -> Callable[[ScoreFn], ScoreFn]:
    bad = sorted(set(context) - set(CONTEXT))
    if bad:
        raise ValueError(f"score method {name!r}: unknown context {bad}; valid: {CONTEXT}")

    def add(fn: ScoreFn) -> ScoreFn:
        if name in _REGISTRY:
            raise ValueError(f"score method {name!r} is registered twice")
        _REGISTRY[name] = Method(name, fn, needs_data, tuple(context), base=name)
        return fn

    return add


def register_after_training(name: str, of: str) -> None:
    """``name`` is method ``of`` applied to the trained weights (Frankle et al.'s ablation)."""
    m = _REGISTRY[of]
    _REGISTRY[name] = Method(name, m.fn, m.needs_data, m.context, after_training=True, base=of)


def method_info(name: str) -> Method:
    _load_methods()
    if name not in _REGISTRY:
        raise ValueError(f"unknown score method {name!r}; valid methods: {', '.join(methods())}")
    return _REGISTRY[name]


def methods(after_training: bool | None = None) -> tuple[str, ...]:
    """Registered method names (``after_training``: only those scoring trained / initial
    weights), sorted."""
    _load_methods()
    return tuple(sorted(n for n, m in _REGISTRY.items()
                        if after_training is None or m.after_training == after_training))


def needs_data(method: str) -> bool:
    return method_info(method).needs_data


def score(
    model: nn.Module,
    method: str,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]] | None = None,
    **options,
) -> dict[str, torch.Tensor]:
    """Score every prunable weight of ``model`` with ``method``; higher means keep. ``options``
    are the method's options and any of its context values."""
    info = method_info(method)
    from spp.nets.models import prunable_parameters

    if not prunable_parameters(model):
        raise ValueError(f"{type(model).__name__} has no linear or conv layer: nothing to score "
                         "or prune")
    params = list(inspect.signature(info.fn).parameters.values())[2:]
    allowed = [p.name for p in params]
    open_ended = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params)
    unknown = sorted(set(options) - set(allowed))
    if unknown and not open_ended:
        raise ValueError(
            f"unknown option(s) {', '.join(unknown)} for score method {method!r}; "
            f"valid options: {', '.join(allowed) or 'none'}"
        )
    return info.fn(model, batches, **options)


def score_in_context(model: nn.Module, method: str, *, batches: Callable[[], Iterable] | None,
                     context: dict, options: dict | None = None) -> dict[str, torch.Tensor]:
    """`score` as a pipeline calls it: the data only if the method reads it (``batches`` is a
    factory, so a data-free method never touches the data), and from ``context`` just the
    values the method takes. A missing one is named."""
    info = method_info(method)
    missing = [k for k in info.context if context.get(k) is None and k != "invert"]
    if missing:
        raise ValueError(f"score method {method!r} needs {missing} from its caller")
    data = batches() if info.needs_data and batches is not None else None
    taken = {k: context[k] for k in info.context if k in context}
    return score(model, info.base, batches=data, **taken, **(options or {}))


def _load_methods() -> None:
    # Every module of this package, for its @register side effects: a new method is one module
    # here. Lazy, so that those modules may import this one.
    import importlib
    import pkgutil

    import spp.pruning

    for m in pkgutil.iter_modules(spp.pruning.__path__):
        importlib.import_module(f"spp.pruning.{m.name}")

    if "magnitude-after-training" not in _REGISTRY:
        register_after_training("magnitude-after-training", of="magnitude")


def __getattr__(name: str):
    if name == "SCORE_METHODS":
        return methods(after_training=False)
    raise AttributeError(name)
