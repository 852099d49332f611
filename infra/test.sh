#!/usr/bin/env bash
# Install everything (all extras, Triton's own environment, Debian packages the tests use) and run
# every test. Extra arguments go to pytest, e.g. `infra/test.sh tests/backend -x`.
source "$(dirname "$0")/lib.sh"
ensure_venv "serve,train,triton,dev"
bash infra/triton/setup.sh  # Triton's own virtualenv (numpy<2, pytriton server, perf_analyzer), libb64

# PostgreSQL and Redis run on every development and CI machine; start them if they are stopped.
if command -v pg_isready >/dev/null && ! pg_isready -q -h 127.0.0.1 -p 5432; then
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start || true
fi
if command -v redis-cli >/dev/null && ! redis-cli -h 127.0.0.1 ping >/dev/null 2>&1; then
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no >/dev/null || true
fi

# The app's checks and its end-to-end tests: Debian's Chromium (driven by playwright-core) and the
# mobile packages from the committed lockfile (npm ci only when the lockfile changed).
apt_install chromium
ensure_node_modules mobile
ensure_node_modules tests/e2e

export DERMALINK_SHARED="${DERMALINK_SHARED:-$ROOT/../shared}"
exec .venv/bin/python -m pytest "$@"
