#!/bin/bash
# Tempest, the OpenStack integration suite, against the running all-in-one
# (through `aio.sh tempest`):
#
#   aio.sh tempest [--ci] [REGEX]
#
# runs serially the tests tempest/full.txt names (--ci: tempest/ci.txt, the
# subset CI runs; REGEX: the tests it matches instead) with a tempest.conf
# made from the running cloud (etc/tempest.conf.in), and keeps in
# AIO_STATE/tempest/results/<compute driver>-<full|ci>: the subunit stream,
# the summary table (tempest/results.py: passed, skipped with the reason,
# failed, durations) and tempest's log. Exits non-zero if a test failed.
# The two images and flavors it boots from are kept for the next run
# (bootstrap.py).
#
#   aio.sh tempest-compare   (tempest.sh --compare STATE STATE)
#
# prints the latest whole runs of the cloud with nova_altdriver and of the
# one with the in-tree driver (AIO_DRIVER=libvirt) side by side.
set -uo pipefail
source "$(dirname "$0")/../common.sh"

AIO_DIR="$ALTDRIVER_TOP/tools/aio"
CLOUD=altdriver-aio
STATE=${AIO_STATE:-/var/lib/nova-altdriver-aio}
PASSWORD=${AIO_PASSWORD:-altdriver}
KEYSTONE=http://127.0.0.1:5000
# NETWORK, the shared network tempest's servers boot on
source "$AIO_DIR/network.sh"

TEMPEST_VENV=$(bash "$ALTDRIVER_TOP/tools/setup-venv.sh" tempest-venv \
    tools/aio/tempest/requirements.txt) || die "no tempest environment"
RESULTS=tempest/results
OURS=nova_altdriver.AltDriver-full
IN_TREE=libvirt.LibvirtDriver-full

# run_of STATE RESULTS: the whole run's stream, and a later run of some of
# its tests (after a fix) if there is one, as results.py compare takes them
run_of() {
    local whole=$1/$RESULTS/$2/tempest.subunit again=$1/$RESULTS/$2-partial/tempest.subunit
    [ -f "$whole" ] || die "no whole run in $whole"
    printf '%s' "$whole"
    [ "$again" -nt "$whole" ] && printf '+%s' "$again"
    return 0
}
when() {  # when STREAMS: their dates
    local f
    for f in ${1//+/ }; do printf ' %s' "$(date -u -r "$f" +%FT%H:%M)"; done
}

if [ "${1:-}" = --compare ]; then
    ours=$(run_of "$2" "$OURS") && in_tree=$(run_of "$3" "$IN_TREE") || exit 1
    echo "tempest $("$TEMPEST_VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("tempest"))');" \
        "ours:$(when "$ours"), in-tree:$(when "$in_tree")" \
        "(a second date: some tests run again after a fix)"
    echo
    exec "$TEMPEST_VENV/bin/python" "$AIO_DIR/tempest/results.py" compare \
        "ours=$ours" "in-tree=$in_tree"
fi

selection=full
if [ "${1:-}" = --ci ]; then selection=ci; shift; fi
regex=${1:-}
WORKSPACE=$STATE/tempest
# the driver the compute hosts run names the results
driver=$(sed -n 's/^compute_driver *= *//p' "$STATE/etc/nova/nova-compute.conf" \
    "$STATE/etc/nova/nova.conf" | head -1)
# (a run of some tests only keeps its results apart)
OUT=$WORKSPACE/results/${driver:?no compute_driver in nova.conf}-$selection${regex:+-partial}
selection=$AIO_DIR/tempest/$selection.txt
rm -rf "$OUT"
mkdir -p "$OUT" "$WORKSPACE/etc" "$WORKSPACE/locks"

# the images and flavors, then tempest.conf
guest=$(bash "$ALTDRIVER_TOP/tools/guest-image/build.sh") || die "no test guest"
refs=$(OS_CLIENT_CONFIG_FILE=$STATE/clouds.yaml AIO_PASSWORD=$PASSWORD \
    "$VENV/bin/python" "$AIO_DIR/bootstrap.py" tempest-resources "$CLOUD" \
    "$guest/disk.qcow2") || die "making tempest's images and flavors failed"
(export $refs WORKSPACE PASSWORD KEYSTONE NETWORK
 exec "$VENV/bin/python" "$AIO_DIR/render.py" "$AIO_DIR/etc/tempest.conf.in" \
     "$WORKSPACE/etc/tempest.conf") || die "rendering tempest.conf failed"
# tempest's own workspace layout: stestr finds the tests in its package
site=$("$TEMPEST_VENV/bin/python" -c 'import os, tempest; print(os.path.dirname(os.path.dirname(tempest.__file__)))')
printf '[DEFAULT]\ntest_path=%s\ntop_dir=%s\ngroup_regex=([^\\.]*\\.)*\n' \
    "$site/tempest/test_discover" "$site" >"$WORKSPACE/.stestr.conf"

# (stestr runs what the list or the regex matches: one of them)
filter=(--include-list "$selection")
[ -z "$regex" ] || filter=(--regex "$regex")
log "tempest ($driver): ${regex:-$(grep -c '^\^' "$selection") patterns of ${selection##*/}}"
t0=$SECONDS
cd "$WORKSPACE"
rm -f tempest.log
[ -d .stestr ] || "$TEMPEST_VENV/bin/stestr" init >/dev/null
TEMPEST_CONFIG_DIR=$WORKSPACE/etc "$TEMPEST_VENV/bin/tempest" run --serial \
    "${filter[@]}" >"$OUT/tempest-run.log" 2>&1
"$TEMPEST_VENV/bin/stestr" last --subunit >"$OUT/tempest.subunit" 2>/dev/null
cp -f tempest.log "$OUT/" 2>/dev/null
"$TEMPEST_VENV/bin/python" "$AIO_DIR/tempest/results.py" summary "$OUT/tempest.subunit" \
    >"$OUT/summary.txt"
rc=$?
cat "$OUT/summary.txt"
log "tempest ($driver): $(tail -1 "$OUT/summary.txt") in $((SECONDS - t0)) s; results in $OUT"
exit $rc
