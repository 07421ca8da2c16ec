#!/bin/bash
# Builds the all-in-one cloud's Python environment once per set of inputs and
# installs this checkout into it (editable). Prints the environment's path.
set -euo pipefail
source "$(dirname "$0")/../common.sh"
cd "$ALTDRIVER_TOP"

key=$(content_hash constraints.txt tools/aio/requirements.txt tools/aio/venv.sh)
venv="$ALTDRIVER_CACHE/aio-venv-$key"
if [ ! -f "$venv/.complete" ]; then
    log "building the all-in-one Python environment $venv (about 2-3 min)"
    rm -rf "$venv"
    mkdir -p "$ALTDRIVER_CACHE"
    "$PYTHON" -m venv "$venv"
    "$venv/bin/pip" install -q --upgrade pip setuptools wheel >&2
    "$venv/bin/pip" install -q -c constraints.txt -r tools/aio/requirements.txt >&2
    touch "$venv/.complete"
    for old in "$ALTDRIVER_CACHE"/aio-venv-*; do
        [ "$old" = "$venv" ] || rm -rf "$old"
    done
fi
pip_log="$ALTDRIVER_CACHE/aio-pip-editable.log"
"$venv/bin/pip" install -q --no-deps --no-build-isolation -e . >"$pip_log" 2>&1 \
    || { cat "$pip_log" >&2; die "installing this checkout failed"; }
virt_dir=$("$venv/bin/python" -c 'import os, nova.virt; print(os.path.dirname(nova.virt.__file__))')
ln -sfn "$ALTDRIVER_TOP/nova/virt/nova_altdriver" "$virt_dir/nova_altdriver"
echo "$venv"
