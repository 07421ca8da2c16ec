#!/bin/bash
# The full fault-injection matrix (doc/source/reliability.rst): every
# operation, every fault, every step of the driver it can meet, on the real
# libvirtd + QEMU of this machine. Sets the machine up as tools/run-tests.sh
# does (as root, Debian 12), then runs only those tests, one at a time.
#
#   tools/fault-matrix.sh            the whole matrix (hours on 2 cores);
#                                    writes doc/source/reliability-results.txt
#   tools/fault-matrix.sh FILTER...  some of it, e.g. test_matrix_spawn
#                                    (the docs are left alone)
#
# Every injection goes to results.jsonl, the table (and the injections that
# did not survive) to table.txt and the test log to stestr.log, in
# ALTDRIVER_FAULT_OUT (default /var/tmp/nova-altdriver-faults/<date>).
# Prints the table; exits non-zero when an injection did not survive.
set -euo pipefail
source "$(dirname "$0")/common.sh"
cd "$ALTDRIVER_TOP"

filters=("$@")
bash tools/setup-host.sh
venv=$(bash tools/setup-venv.sh)
export PATH="$venv/bin:$PATH"
ALTDRIVER_GUEST_DIR=$(bash tools/guest-image/build.sh)
export ALTDRIVER_GUEST_DIR
export OS_NOVA_DISABLE_EVENTLET_PATCHING=true ALTDRIVER_E2E_REQUIRED=1
export ALTDRIVER_FAULT_MATRIX=full

out=${ALTDRIVER_FAULT_OUT:-/var/tmp/nova-altdriver-faults/$(date -u +%Y%m%dT%H%M%S)}
mkdir -p "$out/stestr"
export ALTDRIVER_FAULT_RESULTS=$out/results.jsonl
: >"$ALTDRIVER_FAULT_RESULTS"

log "fault matrix: ${filters[*]:-everything}; results in $out"
status=0
# A repository of its own: other runs in this checkout keep theirs.
stestr --repo-url "$out/stestr" --test-path ./nova_altdriver/tests/e2e \
    run --serial "${filters[@]:-test_faults.FaultTest.test_matrix}" \
    >"$out/stestr.log" 2>&1 || status=$?

commit=$(git rev-parse --short HEAD)
git diff --quiet HEAD -- nova_altdriver || commit="$commit + local changes"
{
    echo "$(date -u +%FT%H:%M), $(nproc) CPUs, libvirt" \
        "$(libvirtd --version | awk '{print $NF}'), QEMU" \
        "$(qemu-system-x86_64 --version | awk 'NR == 1 {print $4}') (TCG)," \
        "driver at $commit"
    echo
    python -m nova_altdriver.tests.e2e.faults table "$ALTDRIVER_FAULT_RESULTS" \
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
if [ ${#filters[@]} -eq 0 ]; then
    cp "$out/table.txt" doc/source/reliability-results.txt
    log "wrote doc/source/reliability-results.txt"
fi
log "tests: $(stestr --repo-url "$out/stestr" last 2>/dev/null \
    | grep -E '^ - (Passed|Failed|Skipped)' | xargs)"
exit $status
