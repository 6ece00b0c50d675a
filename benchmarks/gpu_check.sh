#!/usr/bin/env bash
# GPU readiness check: every GPU path of the project checked and timed in one command
# (benchmarks/gpu_check.py says what each part does; benchmarks/README.md, "GPU check").
#
#   bash benchmarks/gpu_check.sh                 # on the lent GPU machine, from the repo root
#   bash benchmarks/gpu_check.sh --cpu-smoke     # anywhere: every part on the CPU at toy size
#
# Figures, summary.json and logs go to $OUT (default results/gpu_check); the summary to stdout.
# Snakemake, when missing (the GPU machine has none and no network), is installed offline from
# .gpu_carry/ (filled here by benchmarks/gpu_prepare.sh) into a temporary folder put on the path.
set -uo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
OUT=${OUT:-results/gpu_check}
mkdir -p "$OUT"
export OUT PYTHONUNBUFFERED=1 MPLBACKEND=Agg
export PYTHONPATH="$PWD/workflow${PYTHONPATH:+:$PYTHONPATH}"

if ! "$PY" -c "import snakemake" >/dev/null 2>&1; then
  if [ -d .gpu_carry ]; then
    site=$(mktemp -d "${TMPDIR:-/tmp}/spp-gpu-site.XXXXXX")
    if "$PY" -m pip install -q --disable-pip-version-check --no-index --find-links .gpu_carry \
        --target "$site" --no-compile --no-cache-dir snakemake >"$site.log" 2>&1 \
        && PYTHONPATH="$PYTHONPATH:$site" "$PY" -c "import snakemake" >>"$site.log" 2>&1; then
      export PYTHONPATH="$PYTHONPATH:$site" PATH="$site/bin:$PATH"
      echo "gpu_check: snakemake installed offline from .gpu_carry/ into $site"
    else
      echo "gpu_check: the offline install of snakemake from .gpu_carry/ failed; the snakemake" \
           "part and Snakemake's tests will fail:"
      tail -n 8 "$site.log"
    fi
  else
    echo "gpu_check: snakemake is missing and there is no .gpu_carry/ (bash" \
         "benchmarks/gpu_prepare.sh fills it): the snakemake part and Snakemake's tests will fail"
  fi
fi

"$PY" benchmarks/gpu_check.py "$@" 2>&1 | tee "$OUT/gpu_check.log"
exit "${PIPESTATUS[0]}"
