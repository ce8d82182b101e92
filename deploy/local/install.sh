#!/usr/bin/env bash
# Installs what the stack and the tests need and is not yet on this machine:
# OS packages (PostgreSQL, RabbitMQ, nginx, Chromium, docker-compose for the offline compose check),
# uv, the locked Python dependencies and the UI test's npm packages. Safe to run again: it skips what is there.
set -euo pipefail
cd "$(dirname "$0")/../.."

need=()
command -v psql >/dev/null 2>&1 && ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || need+=(postgresql)
[ -x /usr/lib/rabbitmq/bin/rabbitmq-server ] || need+=(rabbitmq-server)
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need+=(nginx)
command -v unshare >/dev/null 2>&1 || need+=(util-linux)
if [ "${PORTAL_SKIP_BROWSER:-0}" != 1 ]; then
  command -v chromium >/dev/null 2>&1 || need+=(chromium)
  command -v npm >/dev/null 2>&1 || need+=(npm)
fi
command -v docker-compose >/dev/null 2>&1 || need+=(docker-compose)

if [ ${#need[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "==> installing OS packages: ${need[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  # The Debian packages start their own servers where systemd runs; ours run on other ports, under var/.
fi

if ! command -v uv >/dev/null 2>&1; then
  echo "==> installing uv"
  python3 -m pip install --quiet --user uv 2>/dev/null || python3 -m pip install --quiet --break-system-packages uv
  export PATH="$HOME/.local/bin:$PATH"
fi
export UV_PYTHON_DOWNLOADS=never
uv sync --frozen --quiet

if [ -f ui-tests/package-lock.json ] && [ ! -d ui-tests/node_modules ] && command -v npm >/dev/null 2>&1; then
  echo "==> installing UI test packages (npm)"
  (cd ui-tests && npm ci --silent --no-audit --no-fund)
fi
