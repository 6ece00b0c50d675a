#!/usr/bin/env bash
# Fill .gpu_carry/ (git-ignored) with Snakemake and everything it needs, as wheels, for an
# offline install on a GPU machine that has no network and no Snakemake
# (benchmarks/gpu_check.sh installs from it; benchmarks/README.md, "GPU check").
#
#   bash benchmarks/gpu_prepare.sh            # here, with PyPI reachable
#
# The device machine's python3 is 3.12 as last seen (/work/.library/device/KINDS.md), which may
# change: the closure is resolved for each of GPU_PYTHON_VERSIONS (default 3.12 3.11 3.13), so
# pure-python wheels serve all of them and compiled ones come once per version. Packages that
# PyPI has only as source are built into pure-python wheels here first.
# Prints the folder's size and the size of everything a device call sends (64 MiB at most).
set -euo pipefail
cd "$(dirname "$0")/.."

CARRY=${CARRY:-.gpu_carry}
PY=${PYTHON:-python3}
VERSIONS=${GPU_PYTHON_VERSIONS:-"3.12 3.11 3.13"}
SNAKEMAKE=${SNAKEMAKE_VERSION:-$($PY -c 'import importlib.metadata as m; print(m.version("snakemake"))' 2>/dev/null || echo 9.27.1)}
PLATFORMS=""
for p in manylinux_2_39 manylinux_2_35 manylinux_2_34 manylinux_2_31 manylinux_2_28 manylinux_2_27 \
         manylinux_2_24 manylinux_2_17 manylinux2014 manylinux_2_12 manylinux2010 manylinux_2_5 manylinux1; do
  PLATFORMS="$PLATFORMS --platform ${p}_x86_64"
done

tmp="$CARRY.partial"
rm -rf "$tmp"
mkdir -p "$tmp"
echo "gpu_prepare: snakemake==$SNAKEMAKE and its dependencies for python $VERSIONS -> $CARRY/"
# 1. This python's closure; source-only packages become wheels here.
$PY -m pip wheel -q --disable-pip-version-check --wheel-dir "$tmp" "snakemake==$SNAKEMAKE"
# 2. Each device python's closure, binary only; what step 1 built is found in the folder.
for v in $VERSIONS; do
  abi="cp${v/./}"
  $PY -m pip download -q --disable-pip-version-check --only-binary=:all: --find-links "$tmp" \
    --python-version "$v" --implementation cp --abi "$abi" --abi abi3 --abi none $PLATFORMS \
    -d "$tmp" "snakemake==$SNAKEMAKE"
done
rm -rf "$CARRY"
mv "$tmp" "$CARRY"

carry_kib=$(du -sk "$CARRY" | cut -f1)
tree_kib=$( (git ls-files -z --cached --others --exclude-standard | xargs -0 du -skc 2>/dev/null || true) \
  | awk '/\ttotal$/ {s += $1} END {print s + 0}')
echo "gpu_prepare: $CARRY holds $(ls "$CARRY" | wc -l) wheels, $((carry_kib / 1024)) MiB ($carry_kib KiB)"
echo "gpu_prepare: working tree $((tree_kib / 1024)) MiB + carry = $(((tree_kib + carry_kib) / 1024)) MiB of the 64 MiB a device call may send"
if [ $((tree_kib + carry_kib)) -gt $((64 * 1024)) ]; then
  echo "gpu_prepare: too large for one device call" >&2
  exit 1
fi
