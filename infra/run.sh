#!/usr/bin/env bash
# Install what the platform needs and run it on its embedded defaults at http://127.0.0.1:8000
# (SQLite, a local encrypted blob store and master key under ./var, in-process ONNX Runtime).
source "$(dirname "$0")/lib.sh"
ensure_venv "serve"
exec .venv/bin/dermalink serve "$@"
