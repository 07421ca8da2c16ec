#!/bin/bash
# Installs and starts what the driver and its tests need on a Debian 12 host,
# as root and without systemd: libvirt + QEMU, the tools that build the tiny
# test guest, and the compilers libvirt-python needs. Idempotent: packages
# already installed are not fetched again and running daemons are reused.
set -euo pipefail
source "$(dirname "$0")/common.sh"

PACKAGES=(
    libvirt-daemon libvirt-daemon-driver-qemu libvirt-daemon-system
    libvirt-clients qemu-system-x86 qemu-utils ovmf
    libvirt-dev pkg-config gcc
    dosfstools mtools fdisk syslinux syslinux-common cpio kmod e2fsprogs
    genisoimage iproute2 procps iputils-ping shellcheck
)

install_host_packages() {
    local extra=()
    # venv for the environment, Python.h for compiling libvirt-python
    "$PYTHON" -c 'import ensurepip, os, sysconfig, venv
assert os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h"))' \
        2>/dev/null || extra=(python3-venv python3-dev)
    install_packages "${PACKAGES[@]}" "${extra[@]}"
}

alive() {  # a daemon's pid file names a running process
    local pid
    pid=$(cat "$1" 2>/dev/null) && [ -n "$pid" ] &&
        [ "$(ps -o stat= -p "$pid" 2>/dev/null | cut -c1)" != Z ] &&
        kill -0 "$pid" 2>/dev/null
}

configure_libvirt() {
    # Run QEMU as root: otherwise libvirt re-probes QEMU on every call because
    # /dev/kvm is root-only here (defineXML took 47 s instead of 3 ms).
    local qconf=/etc/libvirt/qemu.conf
    grep -q '^user = "root"' "$qconf" || echo 'user = "root"' >> "$qconf"
    grep -q '^group = "root"' "$qconf" || echo 'group = "root"' >> "$qconf"
}

start_daemons() {
    mkdir -p /run/libvirt
    # The machine's own daemons, by their pid files: other libvirtds run
    # here too (tools/second-libvirtd.sh), and a process list would count
    # them, or even their unreaped remains.
    alive /run/virtlogd.pid || virtlogd -d
    alive /run/libvirtd.pid || libvirtd -d
    for _ in $(seq 1 120); do
        virsh -c qemu:///system version >/dev/null 2>&1 && return 0
        sleep 0.5
    done
    die "libvirtd did not answer on qemu:///system (see /var/log/libvirt/libvirtd.log)"
}

install_host_packages
configure_libvirt
start_daemons
log "libvirt ready: $(virsh -c qemu:///system version --daemon 2>/dev/null | grep -i 'running hypervisor' || true)"
