"""Experiment grids: config -> the networks to build and the files that hold them.

Pure functions, so the Snakefile stays thin and the expansion is unit-tested. A `Net` is one
trained configuration (all of its seeds): where it was initialized and pruned, how, what repaired
it, and what it is trained on. Its tokens name the result folders; two tables asking for the same
`Net` get the same folders, which is how Snakemake builds shared work once (one init feeds LDI and
LDI-AI; one pruned network feeds every table that needs it).

The results layout (stage folders, per-seed files) is `spp.paths`.

Tokens: model ``<arch>_<activation|default>_w<width>``; init ``<scheme>`` or ``sg_g<gamma>``;
score ``<method>`` or ``<method>_<loss>`` (``dense`` = nothing pruned); repair ``none`` | ``ai`` |
``reinit-<scheme>`` (the mask trained from a fresh ``<scheme>`` init: P/init/.../<scheme>/).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

from spp import paths
from spp.data.specs import DATASETS
from spp.nets import catalog as nets
from spp.nets.catalog import arch_family
from spp.pruning import catalog as scores

# Paper row names of Tables 2 and 3 -> (init scheme, repair).
ROW_INITS: dict[str, tuple[str, str]] = {
    "VS-L": ("vs-lecun", "none"),
    "VS-G": ("vs-glorot", "none"),
    "VS-H": ("vs-he", "none"),
    "LDI": ("orthogonal", "none"),
    "LDI-AI": ("orthogonal", "ai"),
}


# Losses of connection sensitivity (contract: spp.pruning.scores "snip" option loss=...).
SNIP_LOSSES = ("supervised", "unif", "pred-raw", "pred-softmax", "jac-l1", "jac-l2")

# Paper row labels of Table 4 for each loss.
LOSS_LABELS = {
    "supervised": "GT",
    "pred-raw": "Pred. (raw)",
    "pred-softmax": "Pred. (softmax)",
    "unif": "Unif.",
    "jac-l1": "||J||_1",
    "jac-l2": "||J||_2",
}

# Input shape and class count of every dataset (spp.data.specs), to count the parameters of a
# model without loading data (Figure 3 sparsities).
DATASET_SHAPES: dict[str, tuple[tuple[int, int, int], int]] = {
    name: (spec.input_shape, spec.num_classes) for name, spec in DATASETS.items()
}

DATASET_LABELS = {
    "mnist": "MNIST",
    "fashion-mnist": "F-MNIST",
    "cifar10": "CIFAR-10",
    "cifar10-64": "CIFAR-10 at 64x64 (stand-in for Tiny-ImageNet)",
    "tiny-imagenet": "Tiny-ImageNet",
}

STAGES = paths.STAGES


def fmt(x: float) -> str:
    """A float as it appears in a path: short, exact enough to round-trip a sparsity."""
    return format(float(x), ".10g")


@dataclass(frozen=True)
class Net:
    """One trained network configuration; its seeds share every folder."""

    dataset: str  # initialized and pruned on (scoring data)
    arch: str
    activation: str | None
    width: float
    init: str  # scheme
    gamma: float | None
    method: str  # score method, or "dense"
    loss: str | None
    sparsity: float
    repair: str  # "none" | "ai"
    train_dataset: str

    @property
    def model_token(self) -> str:
        return f"{self.arch}_{self.activation or 'default'}_w{fmt(self.width)}"

    @property
    def init_token(self) -> str:
        return self.init if self.gamma is None else f"{self.init}_g{fmt(self.gamma)}"

    @property
    def score_token(self) -> str:
        return self.method if self.loss is None else f"{self.method}_{self.loss}"

    @property
    def tokens(self) -> dict[str, str]:
        """The folder tokens of every stage (the rules' wildcards)."""
        return {"dataset": self.dataset, "model": self.model_token, "init": self.init_token,
                "score": self.score_token, "sparsity": fmt(self.sparsity),
                "repair": self.repair, "train_dataset": self.train_dataset}

    def stage_dir(self, root: str, stage: str) -> str:
        """Folder of one stage's per-seed files for this net, under results root ``root``."""
        return paths.stage_dir(root, stage, self.tokens)

    def weights_dir(self, root: str) -> str:
        return weights_dir(root, self.tokens)

    def to_dict(self) -> dict:
        return asdict(self)


REINIT_PREFIX = "reinit-"


def reinit_scheme(repair: str) -> str | None:
    """The init scheme of a ``reinit-<scheme>`` repair token (None for ``none`` and ``ai``)."""
    return repair[len(REINIT_PREFIX):] if repair.startswith(REINIT_PREFIX) else None


def weights_dir(root: str, tokens) -> str:
    """Where the weights that get measured and trained live: the init, its AI repair, or (repair
    ``reinit-<scheme>``) a fresh init of ``<scheme>`` at the same seed, the mask's kept weights
    re-drawn from it (Table 1's second variant). ``tokens``: a Net's, or a rule's wildcards."""
    tokens = dict(tokens.items())  # a dict, or Snakemake's wildcards
    scheme = reinit_scheme(tokens["repair"])
    if scheme is not None:
        return paths.stage_dir(root, "init", {**tokens, "init": scheme})
    return paths.stage_dir(root, "repair" if tokens["repair"] == "ai" else "init", tokens)


def parse_model_token(token: str) -> dict:
    """Inverse of `Net.model_token`: the keyword arguments of `spp.build_model`."""
    m = re.fullmatch(r"([^_/]+)_([^_/]+)_w([0-9.e+-]+)", token)
    if not m:
        raise ValueError(
            f"bad model token {token!r}; expected <arch>_<activation|default>_w<width>"
        )
    act = None if m.group(2) == "default" else m.group(2)
    return {"arch": m.group(1), "activation": act, "width": float(m.group(3))}


def parse_init_token(token: str) -> dict:
    """Inverse of `Net.init_token`: scheme and gamma for `spp.initialize`."""
    m = re.fullmatch(r"([^_/]+?)(?:_g([0-9.e+-]+))?", token)
    if not m:
        raise ValueError(f"bad init token {token!r}; expected <scheme> or <scheme>_g<gamma>")
    gamma = float(m.group(2)) if m.group(2) else None
    return {"scheme": m.group(1), "gamma": gamma}


def parse_score_token(token: str) -> dict:
    """Inverse of `Net.score_token`: method and (for snip) loss."""
    method, _, loss = token.partition("_")
    return {"method": method, "loss": loss or None}


def parse_sparsity_token(token: str) -> float:
    return float(token[1:] if token.startswith("s") else token)


# --------------------------------------------------------------------------------------------
# Architecture names


# --------------------------------------------------------------------------------------------
# Grid expansion: one function per table, each returning rows (dicts) with the Net(s) per row.
#
# A row is {"table": str, "keys": {label columns}, "paper_key": (row, col), "runs": {role: Net},
# "needs": {role: ("signal", "train") or a part}, "seeds": [...]}. Roles: "main" for single-run
# rows; Table 1 adds "init" (the dense network before pruning: its Jacobian); Table 5 uses "sup",
# "unsup", "rand". Only tables that report signal quantities ask for the signal stage.

_TEXT_KEYS = ("preset", "preset_note", "name")  # strings whatever they look like


def coerce_overrides(value, key: str = ""):
    """``--config seeds=[0,1]`` arrives as ['0', '1'] (Snakemake parses the list, not its
    items): turn strings that read as YAML numbers, booleans or null into those, at any depth,
    so the advertised overrides pass the schema. Free-text keys stay strings."""
    import yaml

    if isinstance(value, dict):
        return {k: coerce_overrides(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [coerce_overrides(v, key) for v in value]
    if isinstance(value, str) and key not in _TEXT_KEYS:
        try:
            parsed = yaml.safe_load(value)
        except yaml.YAMLError:
            return value
        if value.strip().lower() in ("true", "false"):  # not YAML 1.1's yes / no / on / off
            return value.strip().lower() == "true"
        if parsed is None or (isinstance(parsed, (int, float)) and not isinstance(parsed, bool)):
            return parsed
        if re.fullmatch(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+", value.strip()):
            return float(value)  # 1e-4: YAML 1.1 reads it as text
    return value


def refuse(problems: Iterable[str]) -> None:
    """Stop the Snakefile on a bad config, said in its own lines before any job: a raised error
    would get Snakemake's "in file, line" and a traceback line around it."""
    import sys

    print("invalid config (every key: config/README.md):", *problems, sep="\n  ", file=sys.stderr)
    sys.exit(1)


def yaml_problem(path: str | Path) -> str | None:
    """A config file's YAML syntax error as one line naming the file, line and column (Snakemake's
    own message names neither), or None when the file parses."""
    import yaml

    try:
        yaml.safe_load(Path(path).read_text())
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        what = getattr(err, "problem", None) or str(err).splitlines()[0]
        return f"{where}: invalid YAML: {what}"
    return None


def schema_problems(cfg: dict, schema_path: str | Path, limit: int = 3) -> list[str]:
    """The config's schema violations, one short line each (key path and what is wrong), for a
    message that does not bury the one useful line under a dump of the schema."""
    import jsonschema
    import yaml

    schema = yaml.safe_load(Path(schema_path).read_text())
    validator = jsonschema.Draft202012Validator(schema)
    out = []
    for err in sorted(validator.iter_errors(cfg), key=lambda e: list(e.absolute_path))[:limit]:
        where = ".".join(str(k) for k in err.absolute_path) or "top level"
        out.append(f"{where}: {err.message}")
    return out


def preset_note(cfg: dict, quick_note: str) -> str:
    """The note printed with every output. A preset file without its own ``preset_note`` would
    inherit the quick preset's ("a smoke test"), which is false of it: say what it is instead."""
    note = cfg.get("preset_note", "")
    if cfg.get("preset") != "quick" and note.strip() == quick_note.strip():
        return (f"Preset {cfg.get('preset')}: a custom configuration; it follows the paper's "
                "protocol only where its settings do (a cell gets the paper's value only when its "
                "table keeps the paper's setup).")
    return note


def _seeds(cfg: dict, exp: dict) -> list[int]:
    return list(exp.get("seeds") or cfg["seeds"])


def table1_rows(cfg: dict) -> list[dict]:
    t = cfg["table1"]
    rows = []
    for g in t["gammas"]:
        net = Net(t["dataset"], t["arch"], None, 1.0, "sg", float(g), "snip", t["loss"],
                  t["sparsity"], "none", t["dataset"])
        dense = Net(t["dataset"], t["arch"], None, 1.0, "sg", float(g), "dense", None, 0.0,
                    "none", t["dataset"])
        label = f"SG (gamma={float(g):.0e})"
        runs = {"main": net, "init": dense}
        needs = {"init": ("signal",)}
        if t.get("reinit"):  # the same mask trained from a variance-scaling init
            runs["reinit"] = Net(t["dataset"], t["arch"], None, 1.0, "sg", float(g), "snip",
                                 t["loss"], t["sparsity"], REINIT_PREFIX + t["reinit"],
                                 t["dataset"])
            needs["reinit"] = ("train",)
        rows.append({"table": "table1", "keys": {"init": label, "gamma": float(g)},
                     "paper_key": (label, ""), "runs": runs, "needs": needs})
    return rows


def _init_rows(rows_cfg: Iterable[str]) -> list[tuple[str, str, str]]:
    return [(label, *ROW_INITS[label]) for label in rows_cfg]


def table2_rows(cfg: dict) -> list[dict]:
    t = cfg["table2"]
    rows = []
    for label, scheme, repair in _init_rows(t["rows"]):
        for col in t["columns"]:
            net = Net(col["dataset"], col["arch"], None, col.get("width", 1.0), scheme, None,
                      "snip", "supervised", t["sparsity"], repair, col["dataset"])
            rows.append({"table": "table2",
                         "keys": {"init": label, "network": col["name"],
                                  "dataset": col["dataset"]},
                         "paper_key": (label, col["name"]), "runs": {"main": net}})
    unsup = t.get("unsupervised_row") or {}
    if unsup.get("enabled", True) and unsup.get("columns"):
        by_name = {c["name"]: c for c in t["columns"]}
        for name in unsup["columns"]:
            col = by_name[name]
            net = Net(col["dataset"], col["arch"], None, col.get("width", 1.0), "orthogonal", None,
                      "snip", "unif", t["sparsity"], "none", col["dataset"])
            label = "LDI (unsup.)"
            rows.append({"table": "table2",
                         "keys": {"init": label, "network": name, "dataset": col["dataset"]},
                         "paper_key": (label, name), "runs": {"main": net}})
    return rows


def table3_rows(cfg: dict) -> list[dict]:
    t = cfg["table3"]
    rows = []
    for label, scheme, repair in _init_rows(t["rows"]):
        for col in t["networks"]:
            for act in t["activations"]:
                net = Net(t["dataset"], col["arch"], act, col.get("width", 1.0), scheme, None,
                          "snip", "supervised", t["sparsity"], repair, t["dataset"])
                rows.append({"table": "table3",
                             "keys": {"init": label, "network": col["name"], "activation": act},
                             "paper_key": (label, f"{col['name']} {act}"),
                             "runs": {"main": net}})
    return rows


def table4_rows(cfg: dict) -> list[dict]:
    t = cfg["table4"]
    rows = []
    grid = [(loss, k) for loss in t["losses"] for k in t["depths"]]
    jac = t.get("jacobian_losses") or {}
    grid += [(loss, k) for loss in jac.get("losses", []) for k in jac.get("depths", [])]
    for loss, k in grid:
        arch = f"mlp-{k}-{t['activation']}"
        net = Net(t["dataset"], arch, None, 1.0, t["init"], None, "snip", loss, t["sparsity"],
                  "none", t["dataset"])
        rows.append({"table": "table4",
                     "keys": {"loss": LOSS_LABELS[loss], "supervised": loss == "supervised",
                              "K": k},
                     "paper_key": (LOSS_LABELS[loss], f"K={k}"), "runs": {"main": net}})
    return rows


def table5_rows(cfg: dict) -> list[dict]:
    t = cfg["table5"]
    rows = []
    for r in t["rows"]:
        def net(method: str, loss: str | None, r=r) -> Net:
            # A data-free mask does not depend on the dataset it is "pruned on": score (and
            # train) it once, on the training dataset, for every row that trains there.
            prune = r["prune"] if scores.needs_data(method) else r["train"]
            return Net(prune, t["arch"], None, 1.0, t["init"], None, method, loss,
                       t["sparsity"], "none", r["train"])

        category = "Standard" if r["prune"] == r["train"] else "Transfer"
        runs = {"sup": net("snip", t["supervised_loss"]),
                "unsup": net("snip", t["unsupervised_loss"])}
        if t.get("random", True):
            runs["rand"] = net("random", None)
        rows.append({"table": "table5",
                     "keys": {"category": category, "prune": r["prune"], "train": r["train"]},
                     "paper_key": (f"{DATASET_LABELS[r['prune']]} -> "
                                   f"{DATASET_LABELS[r['train']]}", ""),
                     "runs": runs})
    return rows


def count_prunable(arch: str, dataset: str, activation: str | None, width: float) -> int:
    """Number of prunable weights and biases of a model: counted from its plan where the catalog
    can (no torch needed, so the Snakefile plans Figure 3 and checks Table 1 with Snakemake
    alone), else built on the meta device (no memory, no data)."""
    shape, classes = DATASET_SHAPES[dataset]
    counted = nets.prunable_count(arch, shape, classes, width)
    if counted is not None:
        return counted
    import torch

    import spp

    try:
        with torch.device("meta"):
            model = spp.build_model(arch, shape, classes, activation=activation, width=width)
    except Exception:  # a constructor that does real math at build time: build on the CPU
        model = spp.build_model(arch, shape, classes, activation=activation, width=width)
    return int(sum(p.numel() for p in spp.prunable_parameters(model).values()))


def figure3_rows(cfg: dict, counter: Callable[..., int] = count_prunable) -> list[dict]:
    """Sculpting: each variant pruned (at init) to the base network's prunable-weight count."""
    t = cfg["figure3"]
    ds = t["dataset"]
    base = t["base"]
    n_base = counter(base["arch"], ds, None, base.get("width", 1.0))
    rows = [{"table": "figure3",
             "keys": {"model": base["name"], "arch": base["arch"], "width": base.get("width", 1.0),
                      "params_total": n_base, "params_kept": n_base, "sparsity": 0.0},
             "paper_key": (base["name"], ""),
             "runs": {"main": Net(ds, base["arch"], None, base.get("width", 1.0), t["init"], None,
                                  "dense", None, 0.0, "none", ds)}}]
    for i, v in enumerate(t["variants"]):
        n = counter(v["arch"], ds, None, v.get("width", 1.0))
        if n <= n_base:
            raise ValueError(
                f"figure3.variants[{i}] ({v['name']}: {v['arch']} width {v['width']}) has {n} "
                f"prunable weights, not more than the base's {n_base}: nothing to prune; "
                "use a wider or deeper variant"
            )
        sparsity = 1.0 - n_base / n
        # figure3.loss is connection sensitivity's: a method without a loss option gets none
        loss = t["loss"] if "loss" in scores.method_info(t["method"]).options else None
        net = Net(ds, v["arch"], None, v.get("width", 1.0), t["init"], None, t["method"], loss,
                  sparsity, "none", ds)
        rows.append({"table": "figure3",
                     "keys": {"model": v["name"], "arch": v["arch"], "width": v.get("width", 1.0),
                              "params_total": n, "params_kept": round(n * (1 - sparsity)),
                              "sparsity": sparsity},
                     "paper_key": (v["name"], ""), "runs": {"main": net}})
    return rows


def expand(cfg: dict, counter: Callable[..., int] = count_prunable) -> dict[str, list[dict]]:
    """Every enabled table -> its rows; each row carries the Nets it needs (see above)."""
    from spp.tables.table_specs import SPECS, follows_paper

    out = {}
    for name, spec in SPECS.items():
        if not cfg.get(name, {}).get("enabled", True):
            continue
        rows = spec.rows(cfg, counter) if name == "figure3" else spec.rows(cfg)
        paper_cells = follows_paper(name, cfg[name])
        for row in rows:
            row["seeds"] = _seeds(cfg, cfg[name])
            if not paper_cells:
                row["paper_key"] = None  # not the paper's cell: no published value beside it
            default = ("signal", "train") if spec.signal else ("train",)
            row["needs"] = {role: row.get("needs", {}).get(role, default) for role in row["runs"]}
        out[name] = rows
    return out


def all_nets(tables: dict[str, list[dict]]) -> dict[Net, list[int]]:
    """Distinct nets over all tables -> union of their seeds (shared work appears once)."""
    nets: dict[Net, set[int]] = {}
    for rows in tables.values():
        for row in rows:
            for net in row["runs"].values():
                nets.setdefault(net, set()).update(row["seeds"])
    return {n: sorted(s) for n, s in nets.items()}


def net_index(nets: Iterable[Net], root: str) -> dict[str, Net]:
    """Lookup from any stage folder to a Net that owns it (for Snakemake input functions)."""
    index = {}
    for net in nets:
        for stage in STAGES:
            index.setdefault(net.stage_dir(root, stage), net)
    return index


# --------------------------------------------------------------------------------------------
# Semantic validation (the JSON Schema checks types and names of keys first)


class Checks:
    """The config checks a table's spec calls (`spp.tables.table_specs`): each raises a ValueError
    naming the key, the bad value and what is allowed."""

    def __init__(self, architectures: Iterable[str], init_schemes: Iterable[str],
                 score_methods: Iterable[str], datasets: Iterable[str] | None = None):
        self.architectures, self.init_schemes = set(architectures), set(init_schemes)
        self.score_methods = set(score_methods)
        known = set(datasets) if datasets else set(DATASET_SHAPES)
        self.datasets = known & set(DATASET_SHAPES)

    def arch(self, key: str, arch: str) -> None:
        try:
            family = arch_family(arch)
        except ValueError as e:
            raise ValueError(f"{key}: {e}") from None
        if self.architectures and family not in self.architectures:
            raise ValueError(f"{key}: architecture {arch!r} ({family}) is not provided by "
                             f"spp.nets.models; available: {', '.join(sorted(self.architectures))}")

    def dataset(self, key: str, ds: str) -> None:
        if ds not in self.datasets:
            raise ValueError(f"{key}: unknown dataset {ds!r}; valid: "
                             f"{', '.join(sorted(self.datasets))}")

    def init(self, key: str, scheme: str) -> None:
        if self.init_schemes and scheme not in self.init_schemes:
            raise ValueError(f"{key}: unknown init scheme {scheme!r}; valid: "
                             f"{', '.join(sorted(self.init_schemes))}")

    def method(self, key: str, method: str) -> None:
        if self.score_methods and method not in self.score_methods:
            raise ValueError(f"{key}: unknown score method {method!r}; valid: "
                             f"{', '.join(sorted(self.score_methods))}")
        if method in scores.methods():
            late = sorted(set(scores.method_info(method).context) & {"sparsity", "input_shape"})
            if late:
                raise ValueError(f"{key}: score method {method!r} needs {late} when it scores, "
                                 "which the score stage (before any sparsity) does not have; "
                                 "it runs in the frankle experiment")


def validate(cfg: dict, *, architectures: Iterable[str], init_schemes: Iterable[str],
             score_methods: Iterable[str], datasets: Iterable[str] | None = None,
             base_dir: str | Path = ".") -> None:
    """Raise ValueError naming the config key and what is allowed; run before any job."""
    from spp.tables.table_specs import SPECS

    checks = Checks(architectures, init_schemes, score_methods, datasets)
    data = cfg.get("data", {})
    mirror = data.get("mirror")
    if mirror:
        path = Path(mirror) if Path(mirror).is_absolute() else Path(base_dir) / mirror
        if not path.is_dir():
            raise ValueError(f"data.mirror: folder {str(path)!r} does not exist; give an existing "
                             "folder holding the dataset files, or null (official: download; "
                             "subset: data/subsets)")
    for ds in cfg.get("training", {}):
        checks.dataset(f"training.{ds}", ds)
    for name, spec in SPECS.items():
        if name not in cfg or not cfg[name].get("enabled", True):
            continue
        spec.check(cfg[name], checks)
        for ds in spec.datasets(cfg[name]):
            if ds not in cfg.get("training", {}):
                raise ValueError(f"{name}: dataset {ds!r} has no training recipe; add "
                                 f"training.{ds} (have: {', '.join(cfg.get('training', {}))})")
