"""The results layout (spp.paths): one definition that the rules' patterns, the library's folders
and the per-seed file names all come from."""

import re

import pytest
from spp import paths as P
from spp.tables import experiments as X

NET = X.Net("cifar10", "resnet32", "lrelu", 0.25, "sg", 1e-4, "snip", "pred-raw", 0.9, "ai",
            "cifar10")


@pytest.mark.parametrize("stage", P.STAGES)
def test_a_rule_pattern_matches_the_folder_the_library_names(stage):
    """Snakemake fills a stage's output pattern from the wildcards a Net's folder has: the same
    layout, written once."""
    pattern = P.stage_pattern("R", stage)
    regex = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", pattern)
    m = re.fullmatch(regex, NET.stage_dir("R", stage))
    assert m is not None, (pattern, NET.stage_dir("R", stage))
    assert m.groupdict() == {t: NET.tokens[t] for t in P.STAGE_TOKENS[stage]}
    assert P.stage_dir("R", stage, m.groupdict()) == NET.stage_dir("R", stage)


def test_layout_of_the_files():
    train = NET.stage_dir("R", "train")
    assert train == "R/train/cifar10/resnet32_lrelu_w0.25/sg_g0.0001/snip_pred-raw/s0.9/ai/cifar10"
    assert str(P.seed_metrics(train, 3)) == f"{train}/seed3/metrics.json"
    assert str(P.seed_history(train, 3)) == f"{train}/seed3/history.csv"
    assert str(P.seed_tensors("R/mask/x", 0)) == "R/mask/x/seed0.pt"
    assert str(P.seed_signal("R/signal/x", 0)) == "R/signal/x/seed0.json"
    assert P.log_pattern("R", "score") == "R/logs/score/{dataset}/{model}/{init}/{score}.log"
    assert P.benchmark_pattern("R", "train", per_seed=True).endswith(
        "/{repair}/{train_dataset}/seed{seed}.tsv")
    # a cell's checkpoints lie beside its folder (Snakemake deletes a failed job's folder)
    assert str(P.train_checkpoint(train)) == f"{train}.checkpoint.ckpt"
    assert str(P.train_checkpoint(train, 2)) == f"{train}.seed2.checkpoint.ckpt"
    assert str(P.train_checkpoint(f"{train}/seed2", 2, per_seed_job=True)) == (
        f"{train}/seed2/checkpoint.ckpt")


def test_weights_of_a_reinit_cell_come_from_the_fresh_init():
    reinit = X.Net(**{**NET.to_dict(), "repair": "reinit-vs-lecun"})
    assert reinit.weights_dir("R") == "R/init/cifar10/resnet32_lrelu_w0.25/vs-lecun"
    assert NET.weights_dir("R") == NET.stage_dir("R", "repair")
    plain = X.Net(**{**NET.to_dict(), "repair": "none"})
    assert plain.weights_dir("R") == plain.stage_dir("R", "init")


def test_bad_stage_or_missing_token_is_named():
    with pytest.raises(ValueError, match="unknown stage 'prune'.*valid: init, score"):
        P.stage_dir("R", "prune", NET.tokens)
    with pytest.raises(ValueError, match=r"needs tokens \['sparsity'\]"):
        P.stage_dir("R", "mask", {k: v for k, v in NET.tokens.items() if k != "sparsity"})
