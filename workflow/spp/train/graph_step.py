"""The training step of one module captured as a CUDA graph (``FastPath(cuda_graph=True)``).

Why: a ResNet-32 step at batch 128 is several hundred small kernels (forward, backward, the SGD
update, the mask), each a few microseconds of GPU work behind a few microseconds of Python and
launch overhead: on an H100-class GPU the step is launch-bound, not FLOP-bound. Captured once
as a CUDA graph, the whole update is replayed by one launch.

What is captured, and what is not. :class:`GraphStepper` wraps a
``spp.train.training.ModuleStepper`` and splits its step in two:

1. *Batch* (eager, every step): gather the examples of ``indices`` from the device-resident
   split, normalise, augment (drawing from the run's generator, so the data order and the
   augmentation draws are the engine's, in its order), lay out channels-last when asked, and copy
   into **static batch buffers** made once. The random draws stay out of the graph: a replay
   would otherwise have to reproduce the generator's stream, which ``torch.randperm`` of the next
   epoch reads too.
2. *Update* (captured): forward and loss (bf16 autocast when asked; its weight-cast cache off,
   as capture requires: same numerics), backward, ``optimizer.step()``, pruned weights
   multiplied by their mask, on the static buffers. The loss lands in a static tensor; the step
   returns a copy of it (the loop accumulates it on the device, no host sync).

Gradients are set to ``None`` before capture, so backward allocates them from the graph's
private memory pool and every replay writes (not accumulates) them there, as in PyTorch's
whole-network capture recipe.

Warm-up: the first ``warmup`` steps run eagerly on a side stream (real steps of the run, on the
same static buffers): SGD's momentum buffers come into being at its first step (fused SGD
treats "no buffer yet" as a different kernel), cuDNN autotuning and torch.compile run their
one-time work, none of which may happen inside a capture.

The learning rate. ``spp.train.train_loop.run_training`` owns the schedule: it sets
``group["lr"] = <float>`` whenever ``cfg.lr_at(it)`` changes, and this module leaves that code
alone. SGD passes a float lr to its kernels as an argument, so a capture *bakes in* the lr of its
moment. This stepper therefore reads the groups' lr before every replay and

- re-captures when they differ from the captured ones (a step decay: once per milestone, a
  capture is milliseconds against hours of training);
- runs the step eagerly, same buffers and kernels, while the lr changes from one step to the
  next (a linear warm-up ramp), and captures once it has held still for two steps.

The alternative, tensor lrs in the param groups updated in place, needs no re-capture but changes
more than this module: SGD then takes its tensor-lr kernel path (and, where fused SGD is missing,
a host sync per step, which cannot be captured), the optimiser state that checkpoints store holds
tensors instead of floats, and the loop would have to write into the tensors instead of setting
the lr. Re-capture keeps the optimiser, its checkpoints and the schedule code exactly as the eager
engine has them: a checkpoint written with the graph resumes without it and vice versa.

Other state changes: loading a checkpoint replaces the optimiser's momentum tensors (the graph
holds their old addresses), so ``load_state_dict`` drops the graph and the next steps warm up and
capture again. Evaluation (``error_rates``) runs the model eagerly in eval mode, outside the
graph; it changes no tensor the graph uses.

Where: CUDA only. On CPU ``capture_step`` returns the stepper unchanged; the same code path minus
the capture (``GraphStepper(..., capture=False)``: static buffers, eager update) is what
``tests/test_graph_step.py`` holds bit-identical to the plain step. Not for stacked seeds
(``spp.train.stacked``), nor with a compile mode that makes CUDA graphs itself (``FastPath`` refuses
that combination).
"""

from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F

from spp.train.fastpath import bf16_supported

WARMUP_STEPS = 3


def _lrs(optimizer: torch.optim.Optimizer) -> list[float]:
    return [float(g["lr"]) for g in optimizer.param_groups]


class CudaGraphs:
    """How :class:`GraphStepper` runs a warm-up step and captures one (CUDA)."""

    def __init__(self, device: torch.device):
        self.device = device

    def warm(self, fn):
        """``fn()`` eagerly on a side stream (PyTorch's recipe before a capture); its output is
        marked as used by the current stream, which reads it next."""
        current = torch.cuda.current_stream(self.device)
        side = torch.cuda.Stream(self.device)
        side.wait_stream(current)
        with torch.cuda.stream(side):
            out = fn()
        current.wait_stream(side)
        out.record_stream(current)
        return out

    def capture(self, fn):
        """(replay, output): ``fn`` captured (not run), and its output tensor, which each
        ``replay()`` rewrites."""
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            out = fn()
        return graph.replay, out


class GraphStepper:
    """A ``ModuleStepper`` whose update is replayed from a CUDA graph (see the module doc).

    ``capture=False``: the same static-buffer step without a graph (every step eager; for
    checking it against the plain step, on CPU too). ``graphs``: the capture backend
    (:class:`CudaGraphs` on the stepper's device by default; tests substitute one that runs on
    CPU). ``captures`` counts the captures made, ``eager_steps`` the steps run without a graph.
    Checkpoints are the wrapped stepper's, under its name: interchangeable with the plain step.
    """

    def __init__(self, inner, capture: bool = True, graphs=None, warmup: int = WARMUP_STEPS):
        self.inner = inner
        self.name, self.per_seed_logs = inner.name, inner.per_seed_logs
        self.optimizer = inner.optimizer
        self.capture = capture
        self.graphs = graphs if graphs is not None else (
            CudaGraphs(inner.device) if capture else None)
        self.warmup = max(1, int(warmup))  # momentum buffers exist only after one eager step
        self._x = self._y = None  # static batch buffers
        self._replay = self._loss = None  # the captured update, its static loss
        self._captured_lrs: list[float] | None = None
        self._last_lrs: list[float] | None = None
        self._warm_done = 0
        self.captures = 0
        self.eager_steps = 0

    # --- the Stepper protocol: what is not the step is the wrapped stepper's
    def inputs_fingerprint(self) -> str:
        return self.inner.inputs_fingerprint()

    def error_rates(self, split: str) -> list[float]:
        return self.inner.error_rates(split)

    def stop(self, run: int) -> None:
        self.inner.stop(run)

    def state_dict(self) -> dict:
        return self.inner.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.inner.load_state_dict(state)
        self.release()
        self._warm_done = 0  # the optimiser's state tensors are new: warm up, capture again

    def release(self) -> None:
        """Drop the graph (its memory pool goes with the gradients it allocated)."""
        self._replay = self._loss = self._captured_lrs = None
        self.optimizer.zero_grad(set_to_none=True)

    # --- the step
    def _batch(self, indices, generators) -> None:
        """The plain step's input side (``ModuleStepper.step``), into the static buffers."""
        x, y = self.inner.batch(indices, generators)
        if self._x is None or self._x.shape != x.shape:
            self._x = torch.empty_like(x)  # keeps channels-last
            self._y = torch.empty_like(y)
            self.release()
        self._x.copy_(x)
        self._y.copy_(y)

    def _autocast(self):
        inner = self.inner
        if inner.fast.bf16 and bf16_supported(inner.device):
            # no weight-cast cache: a capture must not keep casts made outside it (same values)
            return torch.autocast(device_type="cuda", dtype=torch.bfloat16, cache_enabled=False)
        return contextlib.nullcontext()

    def _update(self) -> torch.Tensor:
        """Forward, loss, backward, SGD step and mask on the static buffers (gradients must be
        None or zero before); returns the detached loss."""
        inner = self.inner
        with self._autocast():
            loss = F.cross_entropy(inner.step_model(self._x), self._y)
        loss.backward()
        self.optimizer.step()
        if inner.masked_params:
            with torch.no_grad():
                torch._foreach_mul_(inner.masked_params, inner.mask_values)
        return loss.detach()

    def _eager(self) -> torch.Tensor:
        self.eager_steps += 1
        self.optimizer.zero_grad(set_to_none=True)
        if self.graphs is None:
            return self._update()
        return self.graphs.warm(self._update)

    def step(self, indices: list[torch.Tensor], generators: list[torch.Generator]
             ) -> torch.Tensor:
        self._batch(indices, generators)
        lrs, last = _lrs(self.optimizer), self._last_lrs
        self._last_lrs = lrs
        if not self.capture:
            return self._eager()
        if self._replay is not None and lrs != self._captured_lrs:
            self.release()  # the schedule moved: the graph holds the old lr
        if self._replay is None:
            if self._warm_done < self.warmup or lrs != last:  # warming up, or lr still moving
                self._warm_done += 1
                return self._eager()
            self.optimizer.zero_grad(set_to_none=True)
            self._replay, self._loss = self.graphs.capture(self._update)
            self._captured_lrs = lrs
            self.captures += 1
        self._replay()
        return self._loss.clone()  # the static loss is rewritten by the next replay


def capture_step(stepper, device):
    """``stepper`` with its update captured as a CUDA graph when its fast path asks for it
    (``fast.cuda_graph``) on a CUDA device and it is a one-module stepper; else ``stepper``."""
    fast = getattr(stepper, "fast", None)
    if not (fast is not None and getattr(fast, "cuda_graph", False)):
        return stepper
    device = torch.device(device)
    if device.type != "cuda" or not torch.cuda.is_available():
        return stepper
    if not getattr(stepper, "graph_capturable", False):  # one module's step (ModuleStepper)
        return stepper
    return GraphStepper(stepper)
