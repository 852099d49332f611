# Shared by infra/run.sh and infra/test.sh: find Python 3.11 and keep .venv in step with pyproject.toml.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

python311() {
  for candidate in python3.11 python3; do
    if command -v "$candidate" >/dev/null && "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
      command -v "$candidate"; return
    fi
  done
  echo "DermaLink needs Python 3.11 (python3.11 or python3 on PATH)" >&2; exit 1
}

# ensure_venv EXTRAS: create .venv if needed and install the project with EXTRAS, pinned by constraints.txt.
# Skips pip when pyproject.toml, constraints.txt and the extras are unchanged since the last install.
ensure_venv() {
  local extras="$1" stamp=".venv/.dermalink-installed" want
  [ -x .venv/bin/python ] || "$(python311)" -m venv .venv
  want="$extras $(cat pyproject.toml constraints.txt | sha256sum | cut -c1-16)"
  if [ ! -f "$stamp" ] || ! grep -qxF "$want" "$stamp"; then
    echo "==> installing dermalink[$extras] into .venv (first run downloads packages)"
    .venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip 2>/dev/null
    .venv/bin/python -m pip install -q --disable-pip-version-check -c constraints.txt -e ".[$extras]" 2> >(grep -v "is ignored: it is neither" >&2)
    echo "$want" >> "$stamp"
  fi
}

# apt_install PACKAGE...: install Debian packages that are missing (as root, or through sudo).
apt_install() {
  local missing=()
  for pkg in "$@"; do dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg"); done
  [ ${#missing[@]} -eq 0 ] && return
  local sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "==> apt-get install ${missing[*]}"
  $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
}

# ensure_node_modules DIR: `npm ci` in DIR from its committed package-lock.json, skipped when the lockfile
# is unchanged since the last install (npm ci always starts from an empty node_modules, which is slow).
ensure_node_modules() {
  local dir="$1" want
  command -v npm >/dev/null || { echo "the app's checks need Node 20 and npm on PATH" >&2; exit 1; }
  want="$(sha256sum "$dir/package-lock.json" | cut -c1-16)"
  if [ "$(cat "$dir/node_modules/.dermalink-lock" 2>/dev/null)" != "$want" ]; then
    echo "==> npm ci in $dir (first run downloads packages)"
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
    echo "$want" > "$dir/node_modules/.dermalink-lock"
  fi
}
