#!/usr/bin/env bash
# The GPU benchmark in one call: the official step (all 7 flow pairs) at
# batch 8 and 32, in float32 and bfloat16, with the card's matmul peak, the
# fraction of it and the step's memory, as JSON and Markdown.
#
#   bash mol_jax/tools/gpu_benchmark.sh prepare   # here, once: missing wheels into .whl/
#   bash mol_jax/tools/gpu_benchmark.sh run DIR    # on the GPU machine, from the repository root
#
# `run` installs .whl/ (if present) into a temporary folder, runs from the
# source tree without installing the project, and writes DIR/gpu_{float32,bfloat16}.json,
# DIR/gpu.md (the tables for docs/PERFORMANCE.md) and DIR/nvidia-smi.txt.
# docs/PERFORMANCE.md says how it was last run.
set -euo pipefail
cd "$(dirname "$0")/../.."

# What mol_jax.tools.benchmark imports beyond jax, flax, optax, orbax and
# OpenCV (which GPU images usually have).
WHEELS=(ml-collections==1.1.0 tensorflow-datasets==4.9.10 array-record==0.8.6 dm-tree==0.1.10
        immutabledict==4.3.1 simple-parsing==0.1.9 docstring-parser==0.18.0
        tensorflow-metadata==1.21.0 termcolor==3.3.0 toml==0.10.2)

case "${1:-}" in
  prepare)
    mkdir -p .whl
    python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
      --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
      --platform manylinux2014_x86_64 --platform any -d .whl "${WHEELS[@]}"
    # promise ships as source only; it is pure Python, so a wheel built here serves.
    python3 -m pip wheel -q --no-deps -w .whl promise==2.3
    ;;
  run)
    out="${2:?usage: gpu_benchmark.sh run DIR}"
    mkdir -p "$out"
    if compgen -G '.whl/*.whl' > /dev/null; then
      python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/mol_jax_site .whl/*.whl
      export PYTHONPATH="/tmp/mol_jax_site${PYTHONPATH:+:$PYTHONPATH}"
    fi
    export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
    nvidia-smi > "$out/nvidia-smi.txt" 2>&1 || true
    : > "$out/gpu.md"
    for dtype in bfloat16 float32; do
      python3 -m mol_jax.tools.benchmark --batch_sizes=8,32 --flow_pairs=7 --repeats=5 \
        --compute_dtype="$dtype" --out="$out/gpu_$dtype.json" --append_to="$out/gpu.md"
    done
    cat "$out/gpu.md"
    ;;
  *)
    echo "usage: $0 prepare | run DIR" >&2
    exit 2
    ;;
esac
