"""The training protocol, written once: what every run does around its SGD steps.

``run_training`` is the loop both engines share: ``spp.train.training.train`` (one ``nn.Module``)
and ``spp.train.stacked.train_stacked`` (several seeds as one stacked computation) each build a
*stepper* and hand it to this loop, so learning-rate schedule, data order, evaluation cadence,
divergence, checkpoints, SIGTERM and resume cannot drift apart between them. A stepper holds N runs
(one for a module, S for a stack); the loop keeps N of everything per run.

Data order: one ``torch.Generator`` per run, seeded with its seed on the training device; each
epoch every run draws a fresh on-device permutation and all runs read it at the same position.
The stepper draws its augmentation from the same generators, after the permutation, so a seed
sees the same batches stacked or alone.

Divergence: a non-finite training loss is detected at the points where the loss is read anyway
(every ``log_every`` iterations and at each evaluation), not per step, to keep the device
asynchronous. That run stops, is marked ``diverged`` and keeps the metrics of its last good
evaluation (None if there was none): at most ``log_every`` wasted iterations. The others go on;
the loop ends when every run has stopped.

Checkpoints (atomic; plain tensors and Python values, loadable with ``weights_only=True``) hold
the loop's state (iteration, generators, permutations and position, loss accumulators,
histories, divergence) plus the optimiser and the stepper's own state, so a resumed run
finishes bit-identical to an uninterrupted one (on CPU; CUDA kernels may not be deterministic).
A checkpoint records what it was trained from (``inputs_fingerprint``): one of other inputs (a
rebuilt init, mask or dataset upstream) is discarded, not resumed. On SIGTERM (SLURM's warning
before a time limit) the loop finishes the current step, checkpoints and raises
:class:`TrainingInterrupted`, a ``SystemExit`` with status 143: the job fails cleanly and a
retry resumes. After the last iteration a final checkpoint is written, and a rerun with it
returns the stored result at once. Removing it is the caller's job, once the run's outputs are
written (e.g. ``Path(ckpt).unlink(missing_ok=True)``).
"""

from __future__ import annotations

import hashlib
import math
import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol

import torch

from spp.atomic import load_tensors, save_tensors
from spp.data.datasets import DataSplits
from spp.train.graph_step import capture_step

CHECKPOINT_FORMAT = "spp-train-checkpoint/2"
SIGTERM_EXIT_STATUS = 143  # 128 + SIGTERM, what a shell reports for a process ended by SIGTERM
# config fields a checkpoint may be resumed with other values of: they do not change the result
# (log_every), or are recorded per run instead (seed: the checkpoint's "seeds")
_NOT_COMPARED = ("log_every", "seed")
# TrainConfig fields added after checkpoint format 2, with the defaults older runs trained with
_ADDED_FIELDS = {"milestones": None, "gamma": 0.1, "warmup": 0}


@dataclass
class TrainResult:
    summary: dict
    history: list[dict]


class TrainingInterrupted(SystemExit):
    """Raised after SIGTERM (or SIGINT, Ctrl-C) once the checkpoint is written; exits with
    status 128 + the signal's number if uncaught (143 for SIGTERM)."""

    def __init__(self, iteration: int, checkpoint_path: str | None,
                 status: int = SIGTERM_EXIT_STATUS):
        super().__init__(status)
        self.iteration = iteration
        self.checkpoint_path = checkpoint_path


class Stepper(Protocol):
    """What the loop needs from the thing it trains: N runs stepped together.

    ``name`` is the log prefix and what a checkpoint records as its writer (a checkpoint is
    resumed only by the kind of stepper that wrote it: their own states differ);
    ``per_seed_logs``: log lines name each run's seed.
    """

    name: str
    per_seed_logs: bool
    optimizer: torch.optim.Optimizer

    def inputs_fingerprint(self) -> str:
        """``inputs_fingerprint`` of the starting weights, masks and data (before any step)."""

    def step(self, indices: list[torch.Tensor], generators: list[torch.Generator]
             ) -> torch.Tensor:
        """One SGD step of every run on its training examples ``indices[run]`` (augmentation
        drawn from ``generators[run]``); returns the detached losses, one per run (or a 0-dim
        tensor for a single run), without a host sync."""

    def error_rates(self, split: str) -> list[float]:
        """Top-1 error in percent of every run on a whole split."""

    def stop(self, run: int) -> None:
        """``run`` diverged: it takes no further part (its weights stay as they are now)."""

    def state_dict(self) -> dict:
        """The stepper's own state, besides the optimiser (keys not used by the loop)."""

    def load_state_dict(self, state: dict) -> None:
        """Restore what ``state_dict`` wrote (``state`` is the whole checkpoint)."""


def summarize(history: list[dict], diverged: bool, iterations_run: int) -> dict:
    """error: test error at the best validation evaluation (earliest on ties);
    error_paper_protocol: minimum test error (the paper's selection on the test set)."""
    if not history:
        return {"error": None, "error_paper_protocol": None, "final_error": None,
                "best_iteration": None, "diverged": diverged, "iterations_run": iterations_run}
    best = min(history, key=lambda r: (r["val_error"], r["iteration"]))
    return {
        "error": best["test_error"],
        "error_paper_protocol": min(r["test_error"] for r in history),
        "final_error": history[-1]["test_error"],
        "best_iteration": best["iteration"],
        "diverged": diverged,
        "iterations_run": iterations_run,
    }


def inputs_fingerprint(states: Sequence[dict], masks: Sequence[dict | None],
                       data: DataSplits) -> str:
    """A content digest of what a run trains from: the starting weights, the masks and the data.

    Stored in every checkpoint: a checkpoint whose inputs changed since (a rebuilt init, mask or
    dataset upstream) is discarded, not resumed. Taken when checkpointing is on; it hashes the
    tensors' bytes (the MNIST split: ~0.1 s).
    """
    h = hashlib.sha256()

    def add(name: str, t: torch.Tensor) -> None:
        t = t.detach().to("cpu").reshape(-1).contiguous()
        h.update(f"{name}:{t.dtype}:{t.numel()};".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")

    for i, (state, mask) in enumerate(zip(states, masks, strict=True)):
        for k, v in state.items():
            add(f"{i}.w.{k}", v)
        for k, v in (mask or {}).items():
            add(f"{i}.m.{k}", v.to(torch.uint8))
    for split in sorted(data.x):
        add(f"x.{split}", data.x[split])
        add(f"y.{split}", data.y[split])
    return h.hexdigest()


def stale_checkpoint(state: dict, fingerprint: str, ckpt: Path, log: Callable[[str], None]) -> bool:
    """True (and said in the log) when a checkpoint was trained from other inputs; the caller
    then starts afresh."""
    if state.get("inputs") == fingerprint:
        return False
    log(f"[train] discarding checkpoint {ckpt}: it was trained from other inputs (the init, "
        "mask or data changed since it was written); starting afresh")
    return True


class _SigtermFlag:
    """Sets ``raised`` (the signal's name) on SIGTERM or SIGINT (main thread only): Ctrl-C
    checkpoints as SLURM's warning does. Restores the previous handlers on exit."""

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self):
        self.raised: str | None = None
        self.status = SIGTERM_EXIT_STATUS
        self._prev: dict = {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self._prev = {s: signal.signal(s, self._handle) for s in self.SIGNALS}
        return self

    def _handle(self, signum, frame):
        self.raised = signal.Signals(signum).name
        self.status = 128 + signum

    def __exit__(self, *exc):
        for s, prev in self._prev.items():
            signal.signal(s, prev if prev is not None else signal.SIG_DFL)


def _cell_folder(ckpt: Path) -> Path:
    """The training folder a checkpoint belongs to (spp.paths.train_checkpoint's layouts):
    ``<folder>/checkpoint.ckpt`` or ``<folder>[.seed<k>].checkpoint.ckpt``."""
    if ckpt.name == "checkpoint.ckpt":
        return ckpt.parent
    name = ckpt.name.removesuffix(".checkpoint.ckpt")
    head, _, tail = name.rpartition(".seed")
    return ckpt.with_name(head if head and tail.isdigit() else name)


def _remove_it(ckpt: Path, what: str) -> str:
    """Two lines: what is wrong with this cell's checkpoint, and the command that removes
    exactly it (the cell then trains afresh; nothing else is touched)."""
    import shlex

    return (f"{what}; it cannot resume the training of {_cell_folder(ckpt)}\n"
            f"to train that cell afresh, remove exactly its checkpoint: "
            f"rm {shlex.quote(str(ckpt))}")


def _differences(old: dict, new: dict) -> str:
    """``key: old -> new`` for each value that differs, e.g. ``lr: 0.1 -> 0.05``."""
    keys = [k for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)]
    return ", ".join(f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in keys)


def _load_checkpoint(ckpt: Path, device) -> dict:
    """A checkpoint's state; a damaged or refused one is named with the command removing it."""
    try:
        return _upgrade(load_tensors(ckpt, map_location=device))
    except ValueError as e:
        raise ValueError(_remove_it(ckpt, str(e).split("; results are")[0])) from None


def _upgrade(state: dict) -> dict:
    """A checkpoint written before the loop was shared, in today's layout, so that a job killed
    before an update resumes after it. The stacked format is today's layout; a single run's
    held one of each per-run field and its config with the seed."""
    fmt = state.get("format")
    if fmt == "spp-stacked-checkpoint/1":
        return {**state, "format": CHECKPOINT_FORMAT, "stepper": "train-stacked"}
    if fmt != "spp-train-checkpoint/1":
        return state
    config = state["config"]
    return {**state, "format": CHECKPOINT_FORMAT, "stepper": "train",
            "config": {k: v for k, v in config.items() if k not in _NOT_COMPARED},
            "seeds": [config["seed"]], "generators": [state["generator"]],
            "perms": [state["perm"]], "loss_sum": state["loss_sum"].reshape(1),
            "log_sum": state["log_sum"].reshape(1), "histories": [state["history"]],
            "diverged": [state["diverged"]], "stopped_at": [state["iteration"]]}


def run_training(stepper: Stepper, cfg, seeds: Sequence[int], n_train: int, device,
                 checkpoint_path: str | Path | None = None,
                 log: Callable[[str], None] = print,
                 after_step: Callable[[int], None] | None = None) -> list[TrainResult]:
    """Train ``stepper``'s runs (run ``r`` with seed ``seeds[r]``) under ``cfg`` (a
    ``spp.train.training.TrainConfig``) on ``n_train`` training examples; one result per run.

    Resumes from ``checkpoint_path`` when that file exists (same config, seeds, stepper kind and
    inputs; see the module doc).
    """
    # FastPath(cuda_graph=True) on CUDA: the update replayed as a CUDA graph (spp.train.graph_step)
    stepper = capture_step(stepper, device)
    seeds = list(seeds)
    num = len(seeds)
    tag = f"[{stepper.name}]"
    ckpt = Path(checkpoint_path) if checkpoint_path is not None else None
    inputs = stepper.inputs_fingerprint() if ckpt else ""
    config = {k: v for k, v in asdict(cfg).items() if k not in _NOT_COMPARED}
    bsz = cfg.batch_size

    def who(run: int) -> str:
        return f"seed {seeds[run]} " if stepper.per_seed_logs else ""

    # --- the state a checkpoint holds
    gens = [torch.Generator(device=device) for _ in seeds]
    for g, s in zip(gens, seeds, strict=True):
        g.manual_seed(s)
    it, pos = 0, n_train  # pos past the end: the first step starts an epoch
    perms = [torch.empty(0, dtype=torch.long, device=device)] * num
    # training loss summed on the device since the last evaluation / log line (no host sync)
    loss_sum, log_sum = torch.zeros(num, device=device), torch.zeros(num, device=device)
    loss_n = log_n = 0
    histories: list[list[dict]] = [[] for _ in seeds]
    diverged, stopped_at = [False] * num, [0] * num
    saved_at = -1

    def save_checkpoint():
        nonlocal saved_at
        if ckpt is None or saved_at == it:
            return
        saved_at = it
        save_tensors({
            "format": CHECKPOINT_FORMAT, "stepper": stepper.name, "config": config,
            "seeds": seeds, "inputs": inputs, "iteration": it,
            "generators": [g.get_state() for g in gens], "perms": perms, "pos": pos,
            "loss_sum": loss_sum, "loss_n": loss_n, "log_sum": log_sum, "log_n": log_n,
            "histories": histories, "diverged": diverged, "stopped_at": stopped_at,
            "optimizer": stepper.optimizer.state_dict(), **stepper.state_dict(),
        }, ckpt)

    # --- resume: a checkpoint of other inputs is discarded; of another run, refused
    state = None
    if ckpt is not None and ckpt.exists():
        state = _load_checkpoint(ckpt, device)
        if state.get("format") == CHECKPOINT_FORMAT and stale_checkpoint(state, inputs, ckpt,
                                                                          log):
            state = None
    if state is not None:
        if state.get("format") != CHECKPOINT_FORMAT or state.get("stepper") != stepper.name:
            raise ValueError(_remove_it(ckpt, f"{ckpt}: not a {stepper.name} checkpoint"))
        # fields added since a checkpoint was written compare at their defaults
        state["config"] = {**_ADDED_FIELDS, **state["config"]}
        if state["config"] != config or list(state["seeds"]) != seeds:
            changed = _differences({**state["config"], "seeds": list(state["seeds"])},
                                   {**config, "seeds": seeds})
            raise ValueError(_remove_it(ckpt, f"{ckpt}: written with other settings ({changed})"))
        stepper.optimizer.load_state_dict(state["optimizer"])
        stepper.load_state_dict(state)
        for g, st in zip(gens, state["generators"], strict=True):
            g.set_state(st.cpu())
        it, pos, loss_n, log_n = state["iteration"], state["pos"], state["loss_n"], state["log_n"]
        perms, loss_sum, log_sum = list(state["perms"]), state["loss_sum"], state["log_sum"]
        histories = [list(h) for h in state["histories"]]
        diverged, stopped_at = list(state["diverged"]), list(state["stopped_at"])
        saved_at = it
        log(f"{tag} resumed from {ckpt} at iteration {it}/{cfg.iterations}")

    lr_now = None
    t_last, it_last = time.perf_counter(), it
    with _SigtermFlag() as sigterm:
        while it < cfg.iterations and not all(diverged):
            # --- data order: a fresh permutation per run at each epoch, read in batches
            if pos + bsz > n_train:
                perms = [torch.randperm(n_train, generator=g, device=device) for g in gens]
                pos = 0
            indices = [p[pos:pos + bsz] for p in perms]
            pos += bsz
            # --- schedule: step decay by iteration, not epoch (the authors' code)
            if cfg.lr_at(it) != lr_now:
                lr_now = cfg.lr_at(it)
                for group in stepper.optimizer.param_groups:
                    group["lr"] = lr_now
            losses = stepper.step(indices, gens)
            loss_sum += losses
            log_sum += losses
            loss_n += 1
            log_n += 1
            it += 1
            if after_step is not None:
                after_step(it)

            # --- read points: log line, evaluation; the only host syncs; divergence shows here
            newly = []
            if it % cfg.log_every == 0 or it == cfg.iterations:
                means = [v / log_n for v in log_sum.tolist()]
                now = time.perf_counter()
                rate = (it - it_last) / max(now - t_last, 1e-9)
                live = [r for r in range(num) if not diverged[r]]
                per_seed = (f" seeds {num}", f" ({rate * len(live):.1f} seed-it/s)")
                seeds_part, seed_rate = per_seed if stepper.per_seed_logs else ("", "")
                log(f"{tag} iter {it}/{cfg.iterations}{seeds_part} loss "
                    f"{' '.join(f'{means[r]:.4f}' for r in live)} lr {lr_now:.4g} "
                    f"{rate:.1f} it/s{seed_rate}")
                t_last, it_last = now, it
                log_sum.zero_()
                log_n = 0
                newly = [r for r in live if not math.isfinite(means[r])]
            evaluate = it % cfg.eval_every == 0 or it == cfg.iterations
            if evaluate:
                train_losses = [v / loss_n for v in loss_sum.tolist()]
                newly += [r for r in range(num) if not diverged[r] and r not in newly
                          and not math.isfinite(train_losses[r])]
            for r in newly:  # it stops here and keeps its last good evaluation
                diverged[r], stopped_at[r] = True, it
                log(f"{tag} {who(r)}loss is not finite at iteration {it}: diverged; it stops and "
                    "keeps its last good evaluation")
                stepper.stop(r)
            if evaluate:
                live = [r for r in range(num) if not diverged[r]]
                if live:
                    val, test = stepper.error_rates("val"), stepper.error_rates("test")
                    for r in live:
                        histories[r].append({"iteration": it, "train_loss": train_losses[r],
                                             "val_error": val[r], "test_error": test[r]})
                    log(f"[eval] iter {it} " + "; ".join(
                        f"{who(r)}train_loss {train_losses[r]:.4f} val_error {val[r]:.2f}% "
                        f"test_error {test[r]:.2f}%" for r in live))
                    t_last = time.perf_counter()  # evaluation time is not training speed
                loss_sum.zero_()
                loss_n = 0
            if all(diverged):
                break

            # --- checkpoints: periodic, and on SIGTERM before exiting
            if cfg.checkpoint_every and it % cfg.checkpoint_every == 0:
                save_checkpoint()
            if sigterm.raised:
                save_checkpoint()
                log(f"{tag} {sigterm.raised}: checkpoint written at iteration {it} to {ckpt}; "
                    f"exiting with status {sigterm.status}, rerun to resume")
                raise TrainingInterrupted(it, str(ckpt) if ckpt else None, sigterm.status)
        save_checkpoint()

    return [TrainResult(summary=summarize(histories[r], diverged[r],
                                          stopped_at[r] if diverged[r] else it),
                        history=histories[r])
            for r in range(num)]
