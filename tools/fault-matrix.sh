#!/bin/bash
# The full fault-injection matrix (doc/source/reliability.rst): every
# operation, every fault, every step of the driver it can meet, on real
# libvirtd + QEMU on this machine. Sets the machine up as tools/run-tests.sh
# does (as root, Debian 12), then runs only those tests, one at a time.
#
#   tools/fault-matrix.sh            the whole matrix (hours on 2 cores);
#                                    writes doc/source/reliability-results.txt
#   tools/fault-matrix.sh NAME...    some of it, e.g. test_matrix_spawn
#                                    (the docs are left alone)
#
# Results go to ALTDRIVER_FAULT_OUT (default
# /var/tmp/nova-altdriver-faults/<date>): each test's injections to
# <test>.jsonl, the table (and the injections that did not survive) to
# table.txt, the test log to stestr.log. Run again with the same
# ALTDRIVER_FAULT_OUT, it goes on where it was stopped (tests finished are
# kept). Prints the table; exits non-zero when an injection did not survive.
set -euo pipefail
source "$(dirname "$0")/common.sh"
cd "$ALTDRIVER_TOP"

bash tools/setup-host.sh
venv=$(bash tools/setup-venv.sh)
export PATH="$venv/bin:$PATH"
ALTDRIVER_GUEST_DIR=$(bash tools/guest-image/build.sh)
export ALTDRIVER_GUEST_DIR
export OS_NOVA_DISABLE_EVENTLET_PATCHING=true ALTDRIVER_E2E_REQUIRED=1
export ALTDRIVER_FAULT_MATRIX=full

out=${ALTDRIVER_FAULT_OUT:-/var/tmp/nova-altdriver-faults/$(date -u +%Y%m%dT%H%M%S)}
mkdir -p "$out/stestr"
# A repository of its own: other runs in this checkout keep theirs.
run() { stestr --repo-url "$out/stestr" --test-path ./nova_altdriver/tests/e2e "$@"; }
[ -e "$out/stestr/.stestr" ] || run init >/dev/null

tests=("$@")
if [ ${#tests[@]} -eq 0 ]; then
    mapfile -t tests < <(run list 'test_faults\.FaultTest\.test_matrix_' \
        | sed 's/.*\.//')
fi
log "fault matrix: ${tests[*]}; results in $out"
for t in "${tests[@]}"; do
    if [ -e "$out/$t.done" ]; then
        log "$t: done already"
        continue
    fi
    log "$t"
    ALTDRIVER_FAULT_RESULTS=$out/$t.jsonl
    : >"$ALTDRIVER_FAULT_RESULTS"
    export ALTDRIVER_FAULT_RESULTS
    rc=0
    run run --serial "test_faults\.FaultTest\.$t\$" >>"$out/stestr.log" 2>&1 || rc=$?
    # 1: injections that did not survive; anything else: the run stopped
    [ $rc -le 1 ] || die "$t stopped ($rc); run again to go on"
    touch "$out/$t.done"
done

commit=$(git rev-parse --short HEAD)
git diff --quiet HEAD -- nova_altdriver || commit="$commit + local changes"
status=0
cat "$out"/test_*.jsonl >"$out/results.jsonl"
{
    echo "$(date -u +%FT%H:%M), $(nproc) CPUs, libvirt" \
        "$(libvirtd --version | awk '{print $NF}'), QEMU" \
        "$(qemu-system-x86_64 --version | awk 'NR == 1 {print $4}') (TCG)," \
        "driver at $commit"
    echo
    python -m nova_altdriver.tests.e2e.faults table "$out/results.jsonl" \
        2>"$out/failures.txt"
    if [ -s "$out/failures.txt" ]; then
        echo
        echo "Did not survive:"
        echo
        sed 's/^FAILED /- /' "$out/failures.txt"
        status=1
    fi
} >"$out/table.txt"
cat "$out/table.txt"
if [ $# -eq 0 ]; then
    cp "$out/table.txt" doc/source/reliability-results.txt
    log "wrote doc/source/reliability-results.txt"
fi
exit $status
