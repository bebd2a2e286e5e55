#!/usr/bin/env bash
# Set-up used by `make demo` / `make test` (and so by CI): a Python environment with nnunetv2-dca installed.
# - An activated virtual environment ($VIRTUAL_ENV) is used as it is; otherwise ./.venv is created.
# - torch, as nnU-Net recommends, is yours to install first: an existing torch is kept and pinned (its distribution
#   version) for the rest of the install, so no dependency can replace it.
# - Without torch, torch==2.13.0 + torchvision==0.28.0 come from pip's configured index: on plain PyPI for Linux
#   x86_64 that is the CUDA build (several GB; it also runs on a CPU). For the CPU-only build set
#   DCA_TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu (or install torch yourself first).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${1:-.venv}"
if [ -n "${VIRTUAL_ENV:-}" ]; then
  PY="$VIRTUAL_ENV/bin/python"
else
  [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
  PY="$VENV/bin/python"
fi
PIP=("$PY" -m pip install --disable-pip-version-check -q)

if ! "$PY" -c "import torch" 2>/dev/null; then
  TORCH=("torch==2.13.0" "torchvision==0.28.0")
  if [ -n "${DCA_TORCH_INDEX_URL:-}" ]; then
    echo "setup: no torch in $PY; installing ${TORCH[*]} from $DCA_TORCH_INDEX_URL"
    "${PIP[@]}" --index-url "$DCA_TORCH_INDEX_URL" "${TORCH[@]}"
  else
    echo "setup: no torch in $PY; installing ${TORCH[*]} from pip's index (plain PyPI on Linux: the CUDA build," \
         "several GB; set DCA_TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu for the CPU-only build)"
    "${PIP[@]}" "${TORCH[@]}"
  fi
fi
constraints="$(mktemp)"
trap 'rm -f "$constraints"' EXIT
"$PY" scripts/torch_constraint.py > "$constraints"
echo "setup: keeping $(tr '\n' ' ' < "$constraints")($("$PY" -c 'import torch; print("torch", torch.__version__, "CUDA", torch.version.cuda or "none")'))"
echo "setup: installing nnunetv2-dca (editable) with test extras"
"${PIP[@]}" -c "$constraints" -e ".[test]"
echo "setup: done ($PY)"
