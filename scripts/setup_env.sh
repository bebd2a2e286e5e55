#!/usr/bin/env bash
# Set-up used by `make demo` / `make test` (and so by CI): a Python environment with nnunetv2-dca installed.
# - An activated virtual environment ($VIRTUAL_ENV) is used as it is; otherwise ./.venv is created.
# - torch: an existing torch is kept (and pinned for the rest of the install, so no dependency can replace it);
#   without one, the CPU build torch==2.13.0 (+ torchvision==0.28.0, which timm, an nnU-Net dependency, needs) is
#   installed first, because an unpinned `torch` requirement would pull several GB of CUDA wheels.
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
  echo "setup: no torch in $PY; installing the CPU build torch==2.13.0 torchvision==0.28.0"
  "${PIP[@]}" "torch==2.13.0" "torchvision==0.28.0"
fi
constraints="$(mktemp)"
trap 'rm -f "$constraints"' EXIT
"$PY" -c "import torch; print(f'torch=={torch.__version__}')" > "$constraints"
echo "setup: keeping $(cat "$constraints"); installing nnunetv2-dca (editable) with test extras"
"${PIP[@]}" -c "$constraints" -e ".[test]"
echo "setup: done ($PY)"
