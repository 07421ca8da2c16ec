#!/bin/bash
# Builds the project's Python environment (nova 34.0.0 + test tools, pinned by
# constraints.txt) once per set of requirements, and installs this checkout
# into it. Prints the environment's path on stdout.
set -euo pipefail
source "$(dirname "$0")/common.sh"
cd "$ALTDRIVER_TOP"

key=$(content_hash requirements.txt test-requirements.txt doc/requirements.txt \
    constraints.txt tools/setup-venv.sh)
venv="$ALTDRIVER_CACHE/venv-$key"
if [ ! -f "$venv/.complete" ]; then
    log "building Python environment $venv"
    rm -rf "$venv"
    mkdir -p "$ALTDRIVER_CACHE"
    "$PYTHON" -m venv "$venv"
    "$venv/bin/pip" install -q --upgrade pip setuptools wheel >&2
    "$venv/bin/pip" install -q -c constraints.txt -r requirements.txt \
        -r test-requirements.txt -r doc/requirements.txt >&2
    touch "$venv/.complete"
    for old in "$ALTDRIVER_CACHE"/venv-*; do
        [ "$old" = "$venv" ] || rm -rf "$old"
    done
fi
# This checkout, editable: the cached environment serves every clone.
pip_log="$ALTDRIVER_CACHE/pip-editable.log"
"$venv/bin/pip" install -q --no-deps --no-build-isolation -e . >"$pip_log" 2>&1 \
    || { cat "$pip_log" >&2; die "installing this checkout failed"; }
# nova only loads drivers from nova.virt.<name>, and an editable install
# cannot put a file into nova's own package: link the one-line shim there.
virt_dir=$("$venv/bin/python" -c 'import os, nova.virt; print(os.path.dirname(nova.virt.__file__))')
ln -sfn "$ALTDRIVER_TOP/nova/virt/nova_altdriver" "$virt_dir/nova_altdriver"
echo "$venv"
