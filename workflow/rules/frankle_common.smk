# Frankle et al. 2021: configuration and helper functions of frankle.smk (kept apart from
# the rules, as Snakemake's linter asks).

from spp.frankle import grid as FK

FRANKLE = config.get("frankle") or {}

FRANKLE_ENABLED = bool(FRANKLE.get("enabled", True))

if FRANKLE_ENABLED:
    FK.check_names(FRANKLE["methods"], FRANKLE["ablations"])
    FR_SEEDS = list(FRANKLE.get("seeds") or config["seeds"])
    # The methods' options set in the config (each a Method.options name of spp.pruning.catalog).
    FR_OPTIONS = {
        "grasp": {"temperature": float(FRANKLE["grasp_temperature"])},
        "synflow": {"iterations": int(FRANKLE["synflow_iterations"])},
    }
    FR_SPARSITIES = [float(s) for s in FRANKLE["sparsities"]]

    def _fr_net(n):
        """The dense X.Net of a frankle network: its init folder, and its dense training."""
        return X.Net(
            dataset=n["dataset"],
            arch=n["arch"],
            activation=n.get("activation"),
            width=float(n.get("width", 1.0)),
            init=n.get("init", "kaiming-normal"),
            gamma=None,
            method="dense",
            loss=None,
            sparsity=0.0,
            repair="none",
            train_dataset=n["dataset"],
        )

    FR_NETS = {}  # (dataset, model token, init token) -> (config entry, dense Net)
    for _n in FRANKLE["networks"]:
        _net = _fr_net(_n)
        FR_NETS[(_net.dataset, _net.model_token, _net.init_token)] = (_n, _net)
        _d = _net.stage_dir(R, "init")  # our seeds in the shared init folder
        SEEDS_BY_DIR[_d] = sorted(set(SEEDS_BY_DIR.get(_d, [])) | set(FR_SEEDS))

    if FRANKLE["job_per_run"]:
        FR_PARTS = [f"s{X.fmt(s)}_seed{k}" for s in FR_SPARSITIES for k in FR_SEEDS]
    else:
        FR_PARTS = ["all"]

    def _fr_entry(wc):
        return FR_NETS[(wc.dataset, wc.model, wc.init)]

    def _fr_part(wc):
        """(sparsities, seeds) of a job's part token."""
        if wc.part == "all":
            return FR_SPARSITIES, FR_SEEDS
        s, _, k = wc.part.partition("_seed")
        return [X.parse_sparsity_token(s)], [int(k)]

    def _fr_recipe(wc):
        """The network's own recipe (OpenLTH's default_hparams for that model)."""
        return _fr_entry(wc)[0]["training"]

    def _fr_dense(key, seeds, what):
        d, m, i = key
        return [f"{R}/frankle/dense/{d}/{m}/{i}/seed{k}.{what}" for k in seeds]

    def _fr_inputs(wc):
        n, net = _fr_entry(wc)
        inputs = {"init": net.stage_dir(R, "init"), "data": data_file(wc.dataset)}
        if METHODS.method_info(wc.method).after_training:  # scores the trained dense network
            key = (wc.dataset, wc.model, wc.init)
            inputs["dense"] = _fr_dense(key, _fr_part(wc)[1], "pt")
            inputs["rewind"] = _fr_dense(key, _fr_part(wc)[1], "rewind.pt")
        return inputs
