#!/usr/bin/env bash
# The GPU measurement as one prepared command of the device tool (bench/RESULTS.md, "GPU"):
#   here, once:    make gpu-wheels
#   on the GPU:    run(command="bash bench/gpu/run.sh", carry=[".whl"], timeout_s=560)
# Installs the carried wheels, trains a few steps on the device first (a broken environment
# costs seconds, not the lease), then runs bench.gpu.busy; its log and results land in $OUT.
# DEVICE, PYTHON, WHEELS, BUSY_ARGS and BUSY_SECONDS change what runs (the tests run it on the
# CPU, with no wheels).
set -uo pipefail
OUT=${OUT:-bench/results}
DEVICE=${DEVICE:-cuda}
PYTHON=${PYTHON:-python3}
WHEELS=${WHEELS:-.whl}
BUSY_ARGS=${BUSY_ARGS:---models mvae,mopoe,mmvae --batch-sizes 64,256 --rounds 3}
mkdir -p "$OUT"
if compgen -G "$WHEELS/*.whl" > /dev/null; then
    "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site "$WHEELS"/*.whl || exit 1
    export PYTHONPATH=/tmp/site:$PWD
else
    export PYTHONPATH=$PWD
fi
export PYTHONUNBUFFERED=1
if command -v nvidia-smi > /dev/null; then
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$OUT/gpu.txt" 2>&1
fi
"$PYTHON" -m bench.gpu.busy --device "$DEVICE" --models mvae --batch-sizes 16 --ways eager \
    --rounds 1 --warm-steps 2 --steps 3 --profiled-steps 2 --out "$OUT" --name smoke \
    2>&1 | tee "$OUT/smoke.log" || exit 1
# shellcheck disable=SC2086  # BUSY_ARGS is a list of arguments
timeout "${BUSY_SECONDS:-420}" "$PYTHON" -m bench.gpu.busy --device "$DEVICE" $BUSY_ARGS \
    --out "$OUT" 2>&1 | tee "$OUT/busy.log"
