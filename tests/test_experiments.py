"""Grid expansion: config -> nets and folders (spp.tables.experiments), against the paper's
tables."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import spp
import spp.data.datasets
import yaml
from snakemake.utils import validate as schema_validate
from spp.tables import experiments as X
from spp.tables import table_specs

REPO = Path(__file__).resolve().parents[1]


def load_config(name: str) -> dict:
    cfg = yaml.safe_load((REPO / "config" / name).read_text())
    schema_validate(cfg, str(REPO / "config" / "config.schema.yaml"))  # fills defaults
    return cfg


@pytest.fixture(scope="module")
def quick() -> dict:
    return load_config("config.yaml")


@pytest.fixture(scope="module")
def paper() -> dict:
    return load_config("paper.yaml")


def semantic_check(cfg: dict) -> None:
    X.validate(cfg, architectures=spp.ARCHITECTURES, init_schemes=spp.INIT_SCHEMES,
               score_methods=spp.SCORE_METHODS, datasets=spp.data.datasets.DATASETS, base_dir=REPO)


def test_tokens_round_trip():
    net = X.Net("cifar10", "resnet32", "lrelu", 0.25, "sg", 1e-4, "snip", "pred-raw", 0.984375,
                "ai", "cifar10")
    assert net.model_token == "resnet32_lrelu_w0.25"
    assert X.parse_model_token(net.model_token) == {"arch": "resnet32", "activation": "lrelu",
                                                     "width": 0.25}
    assert X.parse_model_token("mlp-7-tanh_default_w1")["activation"] is None
    assert X.parse_init_token(net.init_token) == {"scheme": "sg", "gamma": 1e-4}
    assert X.parse_init_token("vs-lecun") == {"scheme": "vs-lecun", "gamma": None}
    assert X.parse_score_token(net.score_token) == {"method": "snip", "loss": "pred-raw"}
    assert X.parse_score_token("random") == {"method": "random", "loss": None}
    assert X.parse_sparsity_token(net.tokens["sparsity"]) == 0.984375
    assert net.stage_dir("R", "train") == (
        "R/train/cifar10/resnet32_lrelu_w0.25/sg_g0.0001/snip_pred-raw/s0.984375/ai/cifar10")
    # a sparsity computed from parameter counts survives the path to 10 significant digits
    s = 1 - 269722 / 17178826
    assert abs(X.parse_sparsity_token(f"s{X.fmt(s)}") - s) < 1e-10


def test_quick_preset_has_every_cell_of_the_papers_tables(quick):
    t = X.expand(quick)
    assert set(t) == {"table1", "table2", "table3", "table4", "table5", "figure3"}
    assert len(t["table1"]) == 6  # six SG(gamma) rows
    assert len(t["table2"]) == 5 * 5 + 4  # inits x networks, + unsupervised LDI row (4 nets)
    assert len(t["table3"]) == 5 * 2 * 3  # inits x {VGG16, ResNet32} x {tanh, lrelu, selu}
    assert len(t["table4"]) == 4 * 3 + 2  # losses x K, + ||J||_1, ||J||_2 at K = 7
    assert len(t["table5"]) == 4 and all(set(r["runs"]) == {"sup", "unsup", "rand"}
                                         for r in t["table5"])
    assert len(t["figure3"]) == 4
    assert all(r["seeds"] == [0, 1] for rows in t.values() for r in rows)


def test_paper_preset_seeds_follow_the_paper(paper):
    t = X.expand(paper)
    assert all(len(r["seeds"]) == 10 for n in ("table1", "table4", "table5") for r in t[n])
    assert all(len(r["seeds"]) == 5 for n in ("table2", "table3", "figure3") for r in t[n])
    nets = X.all_nets(t)
    # the orthogonal 7-layer tanh MLP pruned with the supervised loss is Table 4's GT K=7 cell
    k7 = next(r["runs"]["main"] for r in t["table4"] if r["keys"] == {
        "loss": "GT", "supervised": True, "K": 7})
    assert nets[k7] == list(range(10))


def test_ldi_and_ldi_ai_share_init_score_and_mask(quick):
    rows = X.expand(quick)["table2"]
    ldi = next(r["runs"]["main"] for r in rows if r["keys"]["init"] == "LDI"
               and r["keys"]["network"] == "ResNet32")
    ai = next(r["runs"]["main"] for r in rows if r["keys"]["init"] == "LDI-AI"
              and r["keys"]["network"] == "ResNet32")
    for stage in ("init", "score", "mask"):
        assert ldi.stage_dir("R", stage) == ai.stage_dir("R", stage)
    assert ldi.stage_dir("R", "train") != ai.stage_dir("R", "train")
    assert ai.weights_dir("R") == ai.stage_dir("R", "repair")
    assert ldi.weights_dir("R") == ldi.stage_dir("R", "init")
    # the unsupervised row shares the init with LDI but not the score
    unsup = next(r["runs"]["main"] for r in rows if r["keys"]["init"] == "LDI (unsup.)"
                 and r["keys"]["network"] == "ResNet32")
    assert unsup.stage_dir("R", "init") == ldi.stage_dir("R", "init")
    assert unsup.stage_dir("R", "score") != ldi.stage_dir("R", "score")


def test_shared_nets_appear_once(quick):
    t = X.expand(quick)
    nets = X.all_nets(t)
    inits = {n.stage_dir("R", "init") for n in nets}
    masks = {n.stage_dir("R", "mask") for n in nets}
    assert len(inits) < len(masks) < len(nets)  # shared work is one folder, built once
    # random pruning is data-free: one mask and one training per training dataset, whatever
    # dataset the row says it prunes on
    rand = [r["runs"]["rand"] for r in t["table5"]]
    assert len(rand) == 4
    assert len({n.stage_dir("R", "score") for n in rand}) == 2
    assert len({n.stage_dir("R", "train") for n in rand}) == 2  # trained on MNIST and F-MNIST


def test_table1_measures_the_jacobian_of_the_dense_init(quick):
    row = X.expand(quick)["table1"][0]
    dense, pruned = row["runs"]["init"], row["runs"]["main"]
    assert dense.sparsity == 0 and dense.method == "dense"
    assert dense.stage_dir("R", "init") == pruned.stage_dir("R", "init")
    assert row["needs"]["init"] == ("signal",)
    assert row["needs"]["main"] == ("signal", "train")


def test_table5_transfer_rows_train_on_the_other_dataset(quick):
    rows = X.expand(quick)["table5"]
    transfer = [r for r in rows if r["keys"]["category"] == "Transfer"]
    assert {(r["keys"]["prune"], r["keys"]["train"]) for r in transfer} == {
        ("fashion-mnist", "mnist"), ("mnist", "fashion-mnist")}
    for r in transfer:
        sup = r["runs"]["sup"]
        assert sup.dataset == r["keys"]["prune"] and sup.train_dataset == r["keys"]["train"]
        assert sup.sparsity == 0.97 and r["runs"]["unsup"].loss == "unif"


def test_figure3_sparsity_from_parameter_counts(paper):
    rows = X.expand(paper)["figure3"]
    base = rows[0]["keys"]["params_total"]
    assert base == X.count_prunable("resnet20", "cifar10", None, 1.0)
    assert abs(base - 269_000) < 1_000  # the paper: "the same number of parameters (269k)"
    for row in rows[1:]:
        k = row["keys"]
        assert abs(k["params_kept"] - base) <= 1
        assert k["sparsity"] == pytest.approx(1 - base / k["params_total"])
    eq1 = next(r for r in rows if r["keys"]["model"].startswith("Equivalent 1"))
    assert eq1["keys"]["sparsity"] == pytest.approx(0.984, abs=5e-4)  # Section 5.3: 98.4%


def test_figure3_counts_use_the_injected_counter(quick):
    counts = {("resnet20", 0.25): 100, ("resnet20", 1.0): 1600, ("resnet14", 0.5): 300,
              ("resnet56", 0.25): 400}
    rows = X.figure3_rows(quick, counter=lambda arch, ds, act, w: counts[(arch, w)])
    assert [r["keys"]["sparsity"] for r in rows] == [0.0, 1 - 100 / 1600, 1 - 100 / 300, 0.75]


def test_quick_and_paper_presets_pass_the_semantic_check(quick, paper):
    semantic_check(quick)
    semantic_check(paper)


@pytest.mark.parametrize("edit, message", [
    (lambda c: c["table2"]["columns"][0].update(arch="resnet33"), "table2.columns[0].arch"),
    (lambda c: c["table4"].update(init="xavier"), "table4.init"),
    (lambda c: c["data"].update(mirror="/no/such/folder"), "data.mirror"),
    (lambda c: c["table2"]["unsupervised_row"].update(columns=["VGG19"]),
     "table2.unsupervised_row.columns"),
    (lambda c: c["figure3"]["variants"][0].update(arch="resnet8", width=0.125),
     "figure3.variants[0]"),
    (lambda c: c["training"].pop("fashion-mnist"), "training.fashion-mnist"),
    (lambda c: c["table1"].update(gammas=[0.0]), "table1.gammas"),
])
def test_bad_config_names_the_key(quick, edit, message):
    cfg = copy.deepcopy(quick)
    edit(cfg)
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        semantic_check(cfg)
        X.expand(cfg)


def test_arch_family():
    assert X.arch_family("mlp-3-tanh") == "mlp-K-ACT"
    assert X.arch_family("resnet110") == "resnetD"
    assert X.arch_family("wrn-16-8") == "wrn-16-k"
    for bad in ("resnet21", "mlp-7-gelu", "vgg19"):
        with pytest.raises(ValueError, match="valid"):
            X.arch_family(bad)


def _quick_cfg():
    cfg = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    schema_validate(cfg, str(REPO / "config" / "config.schema.yaml"))
    return cfg


def test_paper_values_only_for_the_papers_cells_and_titles_from_the_config():
    """Issue: a relu Table 1 sat beside the paper's tanh numbers under a title saying tanh."""
    from spp.tables import aggregate as A

    cfg = _quick_cfg()
    assert all(r["paper_key"] for r in X.expand(cfg)["table1"])
    cfg["table1"]["arch"] = "mlp-7-relu"
    rows = X.expand(cfg)["table1"]
    assert all(r["paper_key"] is None for r in rows)
    empty = {"signal": None, "train": None, "seeds": []}
    df = A.build_table("table1", [{"keys": r["keys"], "paper_key": r["paper_key"],
                                   "runs": {"main": empty}} for r in rows],
                       A.load_paper(REPO / "config" / "paper_results.csv"))
    assert df[[c for c in df.columns if c.startswith("paper_")]].isna().all().all()
    title = table_specs.table_title("table1", cfg)
    assert "mlp-7-relu" in title and "tanh" not in title and "90%" in title
    cfg["table5"]["sparsity"] = 0.95
    assert "95%" in table_specs.table_title("table5", cfg)
    assert all(r["paper_key"] is None for r in X.expand(cfg)["table5"])


def test_a_custom_preset_does_not_inherit_the_quick_note():
    quick = _quick_cfg()["preset_note"]
    assert X.preset_note({"preset": "quick", "preset_note": quick}, quick) == quick
    mine = X.preset_note({"preset": "mine", "preset_note": quick}, quick)
    assert "mine" in mine and "smoke test" not in mine
    assert X.preset_note({"preset": "mine", "preset_note": "my own"}, quick) == "my own"


def test_a_sparsity_that_keeps_nothing_is_refused_before_any_job():
    cfg = _quick_cfg()
    cfg["table1"]["sparsity"] = 0.9999999
    with pytest.raises(ValueError, match=r"table1.sparsity: 0.9999999 keeps 0 of the 130,010"):
        X.validate(cfg, architectures=[], init_schemes=[], score_methods=[])


def test_a_disconnecting_mask_is_flagged_in_its_table(tmp_path):
    import json

    from spp.tables import aggregate as A

    sig = tmp_path / "signal"
    sig.mkdir()
    for s, last in ((0, 1.0), (1, 0.5)):
        (sig / f"seed{s}.json").write_text(json.dumps(
            {"jacobian": {}, "layer_sparsity": {"l1": 0.9, "l2": last}}))
    rows = [{"keys": {"init": "SG (gamma=1e+01)", "gamma": 10.0}, "paper_key": None,
             "runs": {"main": {"signal": str(sig), "train": None, "seeds": [0, 1]}}}]
    df = A.build_table("table1", rows)
    assert df.iloc[0]["disconnected_n"] == 1
    assert "1 seeds: a layer fully pruned" in A.to_markdown(df)


def test_config_overrides_get_their_types_back():
    """`--config seeds=[0,1]` arrives as strings inside the list (issue 13: '0' is not of type
    'integer'); the advertised overrides must pass the schema."""
    t1 = {"gammas": ["1e-4", "0.01"], "reinit": "null", "arch": "mlp-7-tanh"}
    got = X.coerce_overrides({"seeds": ["0", "1"], "table1": t1, "preset": "2020",
                              "data": {"mirror": "../shared/data"}})
    assert got == {"seeds": [0, 1], "table1": {"gammas": [1e-4, 0.01], "reinit": None,
                                                "arch": "mlp-7-tanh"},
                   "preset": "2020", "data": {"mirror": "../shared/data"}}


def test_yaml_problem_names_file_line_and_column(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("preset: x\nseeds: [0, 1\ntable1: {}\n")
    problem = X.yaml_problem(bad)
    assert problem.startswith(f"{bad}:3:") and "invalid YAML" in problem, problem
    assert "\n" not in problem
    assert X.yaml_problem(REPO / "config" / "config.yaml") is None


def test_schema_problems_are_one_short_line_each():
    cfg = _quick_cfg()
    cfg["bogus"] = 1
    cfg["seeds"] = ["a"]
    problems = X.schema_problems(cfg, REPO / "config" / "config.schema.yaml")
    assert problems == ["top level: Additional properties are not allowed ('bogus' was unexpected)",
                        "seeds.0: 'a' is not of type 'integer'"]
    assert X.schema_problems(_quick_cfg(), REPO / "config" / "config.schema.yaml") == []


def test_snakemake_accepts_the_advertised_overrides(tmp_path):
    import subprocess
    import sys

    cmd = [sys.executable, "-m", "snakemake", "-n", "--snakefile", str(REPO / "Snakefile"),
           "--directory", str(tmp_path), "--config", "seeds=[0,1]", "table1={seeds: [0]}"]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    bad = subprocess.run(cmd[:-2] + ["bogus=1"], capture_output=True, text=True, timeout=300)
    out = bad.stdout + bad.stderr
    assert bad.returncode != 0 and "('bogus' was unexpected)" in out
    assert len(out.splitlines()) < 40  # no schema dump


def test_a_method_needing_the_target_sparsity_is_refused_by_the_core_score_stage():
    """The registry says SynFlow scores for a given sparsity; the core score stage runs before
    any sparsity exists, so the config check refuses it there (naming the key) before any job."""
    cfg = _quick_cfg()
    cfg["figure3"]["method"] = "synflow"
    with pytest.raises(ValueError, match=r"figure3.method: score method 'synflow' needs "
                                         r"\['input_shape', 'sparsity'\]"):
        semantic_check(cfg)
    cfg["figure3"]["method"] = "magnitude"
    semantic_check(cfg)


def test_figure3_with_a_method_without_a_loss_gets_no_loss_token():
    cfg = _quick_cfg()
    cfg["figure3"]["method"] = "magnitude"
    def counter(arch, ds, act, width):  # the base is the smallest network
        return 100 if (arch, width) == ("resnet20", 0.25) else 200

    rows = X.expand(cfg, counter=counter)
    pruned = [r["runs"]["main"] for r in rows["figure3"] if r["runs"]["main"].method != "dense"]
    assert pruned and all(n.score_token == "magnitude" for n in pruned)
