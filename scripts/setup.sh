#!/usr/bin/env bash
# Install what fondplan needs: Debian packages (when missing), the Python venv, the npm packages.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
  postgresql-15 postgresql-15-postgis-3 postgresql-15-pgrouting postgresql-contrib
  osmium-tool osm2pgsql
  chromium fonts-noto-core fonts-dejavu-core
  gdal-bin poppler-utils
  qgis python3-qgis
  docker-compose
  libegl1 libegl-mesa0 libgles2 libgl1-mesa-dri libopengl0 libcurl4 libuv1 libicu72
  libgl1 libglx-mesa0
  libjpeg62-turbo libpng16-16 libwebp7
  libcairo2-dev pkg-config
)
# Node.js may come from another repository that bundles npm: only ask Debian when it is absent.
command -v npm >/dev/null 2>&1 || APT_PACKAGES+=(nodejs npm)

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${missing[*]}"
  if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
  echo "setup: Debian packages present"
fi
# Debian's cluster manager starts a default cluster we do not use; fondplan runs its own.

PYTHON="${PYTHON:-}"
if [ -z "$PYTHON" ]; then
  for cand in python3.11 python3.12 python3; do
    if command -v "$cand" >/dev/null 2>&1 && "$cand" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
      PYTHON="$cand"; break
    fi
  done
fi
[ -n "$PYTHON" ] || { echo "error: Python 3.11 or newer is needed (apt-get install python3)"; exit 1; }

if ! "$PYTHON" -m venv --help >/dev/null 2>&1 || ! "$PYTHON" -c 'import ensurepip' 2>/dev/null; then
  echo "setup: installing python3-venv"
  if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends python3-venv
fi
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv with $PYTHON"
  "$PYTHON" -m venv .venv
fi
stamp=.venv/.fondplan-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  echo "setup: installing fondplan and its test dependencies into .venv"
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q -e '.[test]'
  # The routing kernels the engines and an update's patch run, compiled once into numba's
  # disk cache: the first engine process and the first update after an install do not
  # compile them (seconds each).
  .venv/bin/python -c 'from routing.warm import warm_patches, warm_up; warm_up(); warm_patches()' || true
  touch "$stamp"
else
  echo "setup: Python packages present"
fi

if [ -f package.json ]; then
  nstamp=node_modules/.fondplan-installed
  if [ ! -f "$nstamp" ] || [ package.json -nt "$nstamp" ] || [ package-lock.json -nt "$nstamp" ]; then
    echo "setup: installing npm packages"
    if [ -f package-lock.json ]; then npm ci --no-audit --no-fund --loglevel=error; else npm install --no-audit --no-fund --loglevel=error; fi
    touch "$nstamp"
  else
    echo "setup: npm packages present"
  fi
fi
echo "setup: done"
