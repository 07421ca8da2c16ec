#!/bin/bash
# Builds a Python environment pinned by constraints.txt once per set of
# requirements, and installs this checkout into it. Prints its path.
#
#   setup-venv.sh                     the project's own: nova 34.0.0 + tests
#   setup-venv.sh NAME REQUIREMENTS   another one (the all-in-one cloud's);
#                                     this checkout goes in only where the
#                                     requirements bring nova (not tempest's)
set -euo pipefail
source "$(dirname "$0")/common.sh"
cd "$ALTDRIVER_TOP"

name=${1:-venv}
reqs=("${@:2}")
((${#reqs[@]})) || reqs=(requirements.txt test-requirements.txt doc/requirements.txt)
key=$(content_hash "${reqs[@]}" constraints.txt tools/setup-venv.sh)
venv="$ALTDRIVER_CACHE/$name-$key"
if [ ! -f "$venv/.complete" ]; then
    log "building Python environment $venv"
    rm -rf "$venv"
    mkdir -p "$ALTDRIVER_CACHE"
    "$PYTHON" -m venv "$venv"
    "$venv/bin/pip" install -q --upgrade pip setuptools wheel >&2
    req_args=()
    for req in "${reqs[@]}"; do req_args+=(-r "$req"); done
    "$venv/bin/pip" install -q -c constraints.txt "${req_args[@]}" >&2
    touch "$venv/.complete"
    for old in "$ALTDRIVER_CACHE/$name"-*; do
        [ "$old" = "$venv" ] || rm -rf "$old"
    done
fi
"$venv/bin/python" -I -c 'import nova' 2>/dev/null || { echo "$venv"; exit 0; }
# This checkout, editable: the cached environment serves every clone.
pip_log="$ALTDRIVER_CACHE/$name-pip-editable.log"
"$venv/bin/pip" install -q --no-deps --no-build-isolation -e . >"$pip_log" 2>&1 \
    || { cat "$pip_log" >&2; die "installing this checkout failed"; }
# nova only loads drivers from nova.virt.<name>, and an editable install
# cannot put a file into nova's own package: link the one-line shim there.
virt_dir=$("$venv/bin/python" -c 'import os, nova.virt; print(os.path.dirname(nova.virt.__file__))')
ln -sfn "$ALTDRIVER_TOP/nova/virt/nova_altdriver" "$virt_dir/nova_altdriver"
echo "$venv"
