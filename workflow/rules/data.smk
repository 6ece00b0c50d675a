# Stage 1, data: fetch (download, or copy from data.mirror / the shipped subsets), verify md5,
# parse to one compact uint8 tensor file per dataset (train / val / test, fixed seed-0 val split).


rule data:
    output:
        f"{R}/data/{{dataset}}.pt",
    log:
        f"{R}/logs/data/{{dataset}}.log",
        usage=f"{R}/benchmarks/data/{{dataset}}.tsv",
    conda:
        CONDA_ENV
    envmodules:
        *ENVMODULES,
    params:
        code=script_code("data.py"),
        source=config["data"]["source"],
        mirror=_mirror(),
        raw_dir=lambda wc: f"{R}/data/raw/{wc.dataset}",
    script:
        "../scripts/data.py"
