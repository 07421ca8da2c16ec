#!/bin/bash
# The project's test command: sets up everything a fresh Debian 12 machine
# needs (as root), then runs pep8, the docs build and the three test tiers:
#   unit        libvirt's built-in test driver, no daemon
#   functional  nova's functional harness (real API, conductor, scheduler,
#               compute manager, Placement) over the test driver
#   e2e         the same harness against a real libvirtd + QEMU (TCG): a
#               libvirtd of the tier's own, not the system one
# Usage: tools/run-tests.sh [tier ...]   (default: all, in this order:
#   pep8 docs unit functional e2e)
set -euo pipefail
source "$(dirname "$0")/common.sh"
cd "$ALTDRIVER_TOP"

tiers=("$@")
((${#tiers[@]})) || tiers=(pep8 docs unit functional e2e)

bash tools/setup-host.sh
venv=$(bash tools/setup-venv.sh)
export PATH="$venv/bin:$PATH"
ALTDRIVER_GUEST_DIR=$(bash tools/guest-image/build.sh)
export ALTDRIVER_GUEST_DIR
export OS_NOVA_DISABLE_EVENTLET_PATCHING=true
# The end-to-end tier fails instead of skipping when libvirtd is missing.
export ALTDRIVER_E2E_REQUIRED=1

passed=0 failed=0 skipped=0 status=0
count() {  # adds the totals of stestr's last run
    local p f s
    read -r p f s < <(stestr last 2>/dev/null | awk '
        /- Passed:/ {p=$3} /- Failed:/ {f=$3} /- Skipped:/ {s=$3}
        END {print p+0, f+0, s+0}')
    passed=$((passed + p)) failed=$((failed + f)) skipped=$((skipped + s))
}

# The end-to-end tier's main libvirtd: one of its own (tools/second-libvirtd.sh)
# unless ALTDRIVER_E2E_URI names one. The tests restart it and count its
# guests; the system daemon and its guests (the all-in-one's) stay out of it,
# so the tier may run while the all-in-one does.
e2e_libvirtd() {
    [ -z "${ALTDRIVER_E2E_URI:-}" ] || return 0
    ALTDRIVER_E2E_LIBVIRTD_DIR=$(mktemp -d /var/tmp/altdriver-e2e-libvirtd.XXXXXX)
    trap 'bash tools/second-libvirtd.sh remove "$ALTDRIVER_E2E_LIBVIRTD_DIR"' EXIT
    ALTDRIVER_E2E_URI=$(bash tools/second-libvirtd.sh start "$ALTDRIVER_E2E_LIBVIRTD_DIR")
    export ALTDRIVER_E2E_URI ALTDRIVER_E2E_LIBVIRTD_DIR
}

for tier in "${tiers[@]}"; do
    log "=== $tier"
    case $tier in
        pep8)
            flake8 || status=1 ;;
        docs)
            for d in doc releasenotes; do
                sphinx-build -q -W --keep-going -b html "$d/source" \
                    "$d/build/html" || status=1
            done ;;
        unit|functional)
            stestr --test-path "./nova_altdriver/tests/$tier" run || status=1
            count ;;
        e2e)
            # volumes: Ceph RBD through QEMU's librbd
            bash tools/ceph/ceph.sh up
            e2e_libvirtd
            # One real libvirtd and QEMU on 2 cores: one test at a time.
            stestr --test-path ./nova_altdriver/tests/e2e run --serial || status=1
            count ;;
        *) die "unknown tier $tier" ;;
    esac
done
echo "tests: $passed passed, $failed failed, $skipped skipped"
exit $status
