#!/usr/bin/env bash
# Create the project's virtual environment and install everything SeeingSounds needs.
#   bash scripts/bootstrap.sh [VENV_DIR]      (default .venv)
# torch is installed FIRST and pinned, so nothing later pulls a multi-GB CUDA build:
#   TORCH_SPEC   default "torch==2.13.0" (the CPU build this project is developed on)
#   TORCH_INDEX  optional extra index, e.g. https://download.pytorch.org/whl/cu128 for a GPU build
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${1:-.venv}"
TORCH_SPEC="${TORCH_SPEC:-torch==2.13.0}"

if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check -q)
# pip, without the notes about local package folders this machine's pip config names; fails when pip fails
pip_install() {
  "${PIP[@]}" install "$@" 2>&1 | { grep -v "^WARNING: Location" || true; }
  return "${PIPESTATUS[0]}"
}
pip_install --upgrade pip setuptools wheel
if ! "$VENV/bin/python" -c "import torch" 2>/dev/null; then
  echo "[bootstrap] installing $TORCH_SPEC"
  if [ -n "${TORCH_INDEX:-}" ]; then
    pip_install "$TORCH_SPEC" --extra-index-url "$TORCH_INDEX"
  else
    pip_install "$TORCH_SPEC"
  fi
fi
echo "[bootstrap] installing seeingsounds and its dependencies"
pip_install -e ".[offline,app,test]"
# Pretrained weights that ship inside wheels whose pinned dependencies (old numpy, librosa,
# torchaudio) would break this environment: installed without dependencies; SeeingSounds loads
# their checkpoints with its own code.
pip_install --no-deps "aisfx==0.1.2" "wav2clip==0.1.0"
"$VENV/bin/python" - <<'PY'
import importlib.util, sys
bad = [m for m in ("torchvision", "torchaudio", "open_clip", "timm") if importlib.util.find_spec(m)]
if bad:
    sys.exit(f"[bootstrap] {bad} installed: they break transformers' CLIP imports here; uninstall them")
import torch
print(f"[bootstrap] ready: torch {torch.__version__}, cuda={torch.cuda.is_available()}")
PY
touch "$VENV/.installed"
