#!/bin/bash
# The benchmarks: sets this machine up as the tests do (libvirt + QEMU, the
# Python environment, the guest image), then runs benchmarks/run.py, which
# compares this driver with nova's in-tree libvirt driver.
#   benchmarks/run.sh [--reps N] [--update-docs] [SCENARIO ...]
set -euo pipefail
source "$(dirname "$0")/../tools/common.sh"
cd "$ALTDRIVER_TOP"
bash tools/setup-host.sh
venv=$(bash tools/setup-venv.sh)
ALTDRIVER_GUEST_DIR=$(bash tools/guest-image/build.sh)
export ALTDRIVER_GUEST_DIR
exec "$venv/bin/python" -m benchmarks.run "$@"
