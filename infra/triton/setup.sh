#!/usr/bin/env bash
# Set up the Triton side of DermaLink on a CPU-only Linux machine; idempotent, safe to re-run (CI runs it).
#
# Creates <repo>/.venv-triton (its own environment: Triton's python backend needs numpy < 2) with
#   - nvidia-pytriton: ships a real tritonserver binary with the python backend,
#   - onnxruntime: the derived CPU repository runs model.onnx inside a python-backend model,
#   - tritonclient[all]==2.50.0 + nvidia-cuda-runtime-cu12: perf_analyzer and its libcudart
#     (2.55+ needs glibc 2.38; see ../shared/NOTES.md),
# and installs Debian's libb64-0d (perf_analyzer needs libb64.so.0d) when it is missing.
#
# Usage: infra/triton/setup.sh [VENV_DIR]    (default: <repo>/.venv-triton, or $DERMALINK_TRITON_VENV)
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
venv=${1:-${DERMALINK_TRITON_VENV:-$repo/.venv-triton}}
python=${PYTHON:-python3.11}
command -v "$python" >/dev/null || python=python3

# Keep in step with backend/inference/triton_server.py (it checks the same versions).
PYTRITON_VERSION=0.7.0
TRITONCLIENT_VERSION=2.50.0

log() { printf '[triton-setup] %s\n' "$*"; }

# 1. libb64.so.0d for perf_analyzer.
if ! ldconfig -p 2>/dev/null | grep -q 'libb64\.so\.0d'; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    log "installing libb64-0d (apt)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q libb64-0d >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q libb64-0d >/dev/null; }
  else
    log "WARNING: libb64.so.0d is missing and this is not root with apt-get: perf_analyzer will not start" >&2
  fi
fi

# 2. The virtual environment.
if [ ! -x "$venv/bin/python" ]; then
  log "creating $venv"
  "$python" -m venv "$venv"
fi
stamp="$venv/.dermalink-triton-setup"
want="pytriton=$PYTRITON_VERSION tritonclient=$TRITONCLIENT_VERSION $(cat "$0" "$repo/infra/triton/constraints.txt" | sha256sum | cut -c1-16)"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  log "$venv is up to date ($want)"
else
  log "installing packages into $venv"
  "$venv/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip 2> >(grep -v "is ignored: it is neither" >&2)
  # Triton's side has its own pins (numpy 1.26; the same onnxruntime as the backend, for exact parity).
  "$venv/bin/python" -m pip install -q --disable-pip-version-check -c "$repo/infra/triton/constraints.txt" \
    "nvidia-pytriton==$PYTRITON_VERSION" \
    "numpy<2" \
    "onnxruntime>=1.18" \
    "tritonclient[all]==$TRITONCLIENT_VERSION" \
    "nvidia-cuda-runtime-cu12" \
    2> >(grep -v "is ignored: it is neither" >&2)
  echo "$want" > "$stamp"
fi

# 3. Check that the pieces are where the launcher expects them.
"$venv/bin/python" - <<'PY'
import importlib.util, pathlib, sys, sysconfig
import numpy
assert numpy.__version__.split(".")[0] == "1", f"numpy {numpy.__version__}: the python backend needs numpy < 2"
pytriton = pathlib.Path(importlib.util.find_spec("pytriton").origin).parent
server = pytriton / "tritonserver" / "bin" / "tritonserver"
stub = pytriton / "tritonserver" / "python_backend_stubs" / f"{sys.version_info.major}.{sys.version_info.minor}" / "triton_python_backend_stub"
data = pathlib.Path(sysconfig.get_paths()["data"])
pa = next(iter(data.glob("bin/perf_analyzer")), None) or next(pathlib.Path(sysconfig.get_paths()["purelib"]).glob("tritonclient*/**/perf_analyzer"), None)
for what, p in [("tritonserver", server), ("python backend stub", stub), ("perf_analyzer", pa)]:
    if p is None or not p.exists():
        sys.exit(f"[triton-setup] missing {what}: {p}")
    print(f"[triton-setup] {what}: {p}")
PY
log "done"
