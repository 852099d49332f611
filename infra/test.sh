#!/usr/bin/env bash
# Install everything (all extras, Triton's own environment, Debian packages the tests use) and run
# every test. Extra arguments go to pytest, e.g. `infra/test.sh tests/backend -x`.
source "$(dirname "$0")/lib.sh"
ensure_venv "serve,train,triton,dev"
apt_install chromium  # tests/backend/test_live_server.py renders /docs in a headless browser
bash infra/triton/setup.sh  # Triton's own virtualenv (numpy<2, pytriton server, perf_analyzer), libb64
# The cluster tests run the production topology as processes: HAProxy, Prometheus, a Redis of their own.
apt_install haproxy prometheus redis-server

# PostgreSQL and Redis run on every development and CI machine; start them if they are stopped.
if command -v pg_isready >/dev/null && ! pg_isready -q -h 127.0.0.1 -p 5432; then
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start || true
fi
if command -v redis-cli >/dev/null && ! redis-cli -h 127.0.0.1 ping >/dev/null 2>&1; then
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no >/dev/null || true
fi

# The single sign-on tests run a real OpenID Provider (node oidc-provider) on loopback.
(cd tests/oidc_provider && npm ci --no-audit --no-fund --silent)
# Lint and format are part of the test: the tree stays `ruff check` and `ruff format` clean.
.venv/bin/ruff check .
.venv/bin/ruff format --check .

export DERMALINK_SHARED="${DERMALINK_SHARED:-$ROOT/../shared}"
exec .venv/bin/python -m pytest "$@"
