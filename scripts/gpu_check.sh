#!/usr/bin/env bash
# The project's CUDA checks, for a machine with an NVIDIA GPU (docs/gpu.md).
#
#   scripts/gpu_check.sh [OUT_DIR]        # from the repository root; OUT_DIR defaults to gpu-check/
#
# Each step's output goes to OUT_DIR/<step>.txt, one line per step to OUT_DIR/summary.txt;
# the exit status is non-zero when a step failed. $PY (default python3) must import torch
# with CUDA, sentence-transformers and the project's dependencies; vLLM is not needed
# (test_versions_come_from_metadata... asserts the venv's vLLM and fails without it).
# DEVICE=cpu runs the same steps without a GPU: a dry run of the script itself.
# MINILM=DIR uses that model folder instead of the packaged MiniLM (e.g. a float16 copy
# of its weights, which the engine computes in float32).
set -u
PY=${PY:-python3}
DEVICE=${DEVICE:-cuda}
OUT=${1:-gpu-check}
MODEL=()
[[ -n "${MINILM:-}" ]] && MODEL=(--model "$MINILM")
mkdir -p "$OUT"
: > "$OUT/summary.txt"
# One tokenizer thread, as the tests and benches run (see docs/gpu.md for the figure with it on).
export TOKENIZERS_PARALLELISM=false
failed=0

step() {
    local name=$1
    shift
    echo "== $name: $*"
    local t0=$SECONDS
    timeout "${STEP_TIMEOUT_S:-300}" "$@" >"$OUT/$name.txt" 2>&1
    local rc=$?
    local line="$name: $([[ $rc -eq 0 ]] && echo ok || echo "FAILED (exit $rc)") in $((SECONDS - t0)) s"
    echo "$line" | tee -a "$OUT/summary.txt"
    [[ $rc -eq 0 ]] || failed=1
}

if [[ $DEVICE != cpu ]]; then
    step nvidia-smi nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
fi
# NVML fingerprint: what a run records about the GPU, and the test that compares it with nvidia-smi.
step fingerprint "$PY" -c "from store import fingerprint as f; print(f.hardware()); print(f.software_versions())"
step tests env SAGETUI_TEST_DEVICE="$DEVICE" "$PY" -m pytest -q -p no:cacheprovider \
    tests/engine/test_st_engine.py tests/store/test_store_fingerprint.py
# sentence-transformers on the device against the same model on the CPU (cosine), then speed.
step encode-cpu "$PY" benches/bench_serve_embed.py --part encode --device cpu "${MODEL[@]}" \
    --encode-seconds 1 --save-vectors "$OUT/cpu.npy"
step encode "$PY" benches/bench_serve_embed.py --part encode --device "$DEVICE" "${MODEL[@]}" \
    --reference "$OUT/cpu.npy"
# serve-embed launched on the device, one text per request over HTTP.
step http "$PY" benches/bench_serve_embed.py --part http --device "$DEVICE" "${MODEL[@]}" \
    --max-batch 128 --seconds 5
exit $failed
