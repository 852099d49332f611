#!/usr/bin/env bash
# Install everything (all extras, Triton's own environment, Debian packages the tests use) and run
# every test. Extra arguments go to pytest, e.g. `infra/test.sh tests/backend -x`.
source "$(dirname "$0")/lib.sh"
ensure_venv "serve,train,triton,dev"
apt_install chromium  # headless browser: /docs (test_live_server.py) and the app's end-to-end tests
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

# Lint and format are part of the test: the tree stays `ruff check` and `ruff format` clean.
.venv/bin/ruff check .
.venv/bin/ruff format --check .
# The app's checks and its end-to-end tests: Debian's Chromium (driven by playwright-core) and the
# mobile packages from the committed lockfile (npm ci only when the lockfile changed).
ensure_node_modules mobile
ensure_node_modules tests/e2e
# The single sign-on tests run a real OpenID Provider (node oidc-provider) on loopback.
ensure_node_modules tests/oidc_provider

export DERMALINK_SHARED="${DERMALINK_SHARED:-$ROOT/../shared}"
exec .venv/bin/python -m pytest "$@"
