#!/usr/bin/env bash
# Rebuild the web app that the backend serves at / from mobile/ (Node 20 and npm needed), and its stamp.
# The output is committed (backend/static/app, plus backend/static/web-build.json with a digest of the
# sources it was built from) so that ./infra/run.sh needs no Node; tests/mobile/test_web_build.py fails
# when mobile/ changes without a rebuild. Run it after changing mobile/, then commit both paths.
source "$(dirname "$0")/lib.sh"
[ -x .venv/bin/python ] || ensure_venv "serve"  # only the stamp needs Python (any installed extras do)
cd "$ROOT/mobile"
[ -d node_modules ] || npm ci --no-audit --no-fund
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
CI=1 EXPO_NO_TELEMETRY=1 npx expo export --platform web --output-dir "$out/dist" --clear
cd "$ROOT"
rm -rf backend/static/app
mkdir -p backend/static
cp -r "$out/dist" backend/static/app
PYTHONPATH="$ROOT" .venv/bin/python -m backend.web stamp mobile
du -sh backend/static/app
