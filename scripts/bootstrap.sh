#!/usr/bin/env bash
# Create the project's virtual environment and install everything SeeingSounds needs.
#   bash scripts/bootstrap.sh [--if-needed] [VENV_DIR]      (default .venv)
# --if-needed (what `make` runs) does nothing when VENV_DIR/.installed records an install made from
# the same pyproject.toml, bootstrap script and TORCH_SPEC (file contents, not times: a fresh clone
# beside an installed environment does not reinstall).
# torch is installed FIRST and pinned, so nothing later pulls a multi-GB CUDA build:
#   TORCH_SPEC   default "torch==2.13.0" (the CPU build this project is developed on)
#   TORCH_INDEX  optional extra index, e.g. https://download.pytorch.org/whl/cu128 for a GPU build
# Progress: one line per stage (what, and roughly how long), then a line per package pip collects;
# pip's full output goes to VENV_DIR/pip.log, whose end is printed when pip fails.
set -euo pipefail
cd "$(dirname "$0")/.."
IF_NEEDED=0
if [ "${1:-}" = "--if-needed" ]; then IF_NEEDED=1; shift; fi
VENV="${1:-.venv}"
TORCH_SPEC="${TORCH_SPEC:-torch==2.13.0}"
INSTALL_ID="$({ cat pyproject.toml scripts/bootstrap.sh; echo "$TORCH_SPEC ${TORCH_INDEX:-}"; } | sha256sum | cut -d' ' -f1)"
if [ "$IF_NEEDED" = 1 ] && [ -x "$VENV/bin/python" ] && [ "$(cat "$VENV/.installed" 2>/dev/null)" = "$INSTALL_ID" ]; then
  exit 0
fi
START=$SECONDS
STAGE_START=$SECONDS

stage() {  # stage N/M "what" "how long, roughly"
  STAGE_START=$SECONDS
  echo "[bootstrap] ($1) $2 — $3"
}
stage_done() {
  echo "[bootstrap]       done in $((SECONDS - STAGE_START)) s"
}

if [ ! -x "$VENV/bin/python" ]; then
  stage 1/5 "creating the virtual environment $VENV" "a few seconds"
  python3 -m venv "$VENV"
  stage_done
fi
LOG="$VENV/pip.log"
: >"$LOG"
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check)
# pip's output as one short line per package it collects or downloads (read line by line: no buffering)
pip_lines() {
  local n=0 collected=0 line words
  while IFS= read -r line; do
    read -r -a words <<<"$line"
    case "$line" in
      "WARNING: Location"*) ;;  # this machine's pip config names empty local indexes
      "Collecting "*) n=$((n + 1)); printf '    %3d  %s\n' "$n" "${words[1]}"; collected=1 ;;
      *"Processing "*)
        if [ "$collected" = 0 ]; then n=$((n + 1)); printf '    %3d  %s\n' "$n" "${line##*/}"; fi
        collected=0 ;;
      *"Downloading "*) printf '         %s\n' "${words[*]}"; collected=0 ;;
      "Installing collected packages:"*)
        printf '    unpacking %d packages (the longest step; no output until it ends)...\n' "$((${#words[@]} - 3))" ;;
      "Successfully installed"*) printf '    installed %d packages\n' "$((${#words[@]} - 2))" ;;
    esac
  done
}
# pip with its full output in $LOG; fails when pip fails, showing the end of that output
pip_install() {
  local status
  set +e
  PYTHONUNBUFFERED=1 "${PIP[@]}" install "$@" 2>&1 | tee -a "$LOG" | pip_lines
  status="${PIPESTATUS[0]}"
  set -e
  if [ "$status" != 0 ]; then
    echo "[bootstrap] pip failed (exit $status); the end of its output (all of it: $LOG):" >&2
    tail -n 25 "$LOG" | grep -v "^WARNING: Location" >&2 || true
  fi
  return "$status"
}

stage 2/5 "updating pip, setuptools and wheel" "under a minute"
pip_install --upgrade pip setuptools wheel
stage_done
if ! "$VENV/bin/python" -c "import torch" 2>/dev/null; then
  stage 3/5 "installing $TORCH_SPEC (CPU build: a ~200 MB wheel)" "about a minute"
  if [ -n "${TORCH_INDEX:-}" ]; then
    pip_install "$TORCH_SPEC" --extra-index-url "$TORCH_INDEX"
  else
    pip_install "$TORCH_SPEC"
  fi
  stage_done
else
  echo "[bootstrap] (3/5) torch is already installed: $("$VENV/bin/python" -c 'import torch; print(torch.__version__)')"
fi
stage 4/5 "installing seeingsounds and its dependencies (transformers, diffusers, gradio, ...: ~100 packages)" "3-7 min"
pip_install -e ".[offline,app,test]"
# Pretrained weights that ship inside wheels whose pinned dependencies (old numpy, librosa,
# torchaudio) would break this environment: installed without dependencies; SeeingSounds loads
# their checkpoints with its own code.
pip_install --no-deps "aisfx==0.1.2" "wav2clip==0.1.0"
stage_done
stage 5/5 "checking the environment" "a few seconds"
"$VENV/bin/python" - <<'PY'
import importlib.util, sys
bad = [m for m in ("torchvision", "torchaudio", "open_clip", "timm") if importlib.util.find_spec(m)]
if bad:
    sys.exit(f"[bootstrap] {bad} installed: they break transformers' CLIP imports here; uninstall them")
import torch
print(f"[bootstrap] ready: torch {torch.__version__}, cuda={torch.cuda.is_available()}")
PY
echo "$INSTALL_ID" >"$VENV/.installed"
echo "[bootstrap] installed in $((SECONDS - START)) s"
