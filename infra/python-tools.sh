#!/usr/bin/env bash
# Installs the project's Python-distributed tools into <repo>/.tools/venv: what `make test`
# uses (infra/requirements.txt), and with `package` also what only packaging uses
# (infra/requirements-package.txt: cargo-lambda and zig). Idempotent: the venv is created only
# when missing, and pip runs only when a requirements file differs from the one last installed
# (its sha256 is kept in a stamp file inside the venv). pip keeps no cache: on a small CI disk
# the wheels would be stored twice. Needs only python3 with the venv module and PyPI.
#
#   bash infra/python-tools.sh           # then use .tools/venv/bin/cfn-lint, moto_server, ...
#   bash infra/python-tools.sh package   # and .tools/venv/bin/cargo-lambda
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
set_name=${1:-test}
case "$set_name" in
  test) req="$repo/infra/requirements.txt"; stamp_name=requirements ;;
  package) req="$repo/infra/requirements-package.txt"; stamp_name=requirements-package ;;
  *) echo "usage: infra/python-tools.sh [test|package]" >&2; exit 2 ;;
esac
if [[ "$set_name" == package ]]; then
  # Packaging runs beside the test tools (check-package.py reads YAML with PyYAML).
  bash "$0" test
fi
venv="$repo/.tools/venv"
stamp="$venv/.$stamp_name.sha256"
python="${PYTHON:-python3}"

sha256_of() {
  if command -v sha256sum >/dev/null 2>&1; then
    sha256sum "$1" | cut -d' ' -f1
  else
    "$python" -c 'import hashlib,sys; print(hashlib.sha256(open(sys.argv[1],"rb").read()).hexdigest())' "$1"
  fi
}

want="$(sha256_of "$req")"

# A venv whose interpreter no longer runs (python3 upgraded or removed) is rebuilt.
if [[ -x "$venv/bin/python" ]] && ! "$venv/bin/python" -c '' >/dev/null 2>&1; then
  rm -rf "$venv"
fi

if [[ -x "$venv/bin/python" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
  echo "python tools ($set_name): up to date"
  exit 0
fi

echo "python tools ($set_name): installing $(basename "$req") into .tools/venv"

if [[ ! -x "$venv/bin/python" ]]; then
  mkdir -p "$(dirname "$venv")"
  if ! "$python" -m venv "$venv" >/dev/null 2>&1; then
    # Debian/Ubuntu's python3 without the python3-venv package has no ensurepip: make the
    # venv without pip and put pip into it with the machine's own pip (pip >= 22.3).
    rm -rf "$venv"
    "$python" -m venv --without-pip "$venv"
    "$python" -m pip --python "$venv/bin/python" install -q --disable-pip-version-check pip
  fi
fi

rm -f "$stamp"
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
"$venv/bin/python" -m pip install -q --upgrade pip
"$venv/bin/python" -m pip install -q -r "$req"
echo "$want" >"$stamp"
