#!/bin/bash
# Boot the test guest image under the local libvirtd + QEMU (TCG) and check
# what the project relies on:
#   boot markers, boot counter on a qcow2 overlay, ACPI shutdown (virsh
#   shutdown) and a second boot, the heartbeat surviving both and a killed
#   QEMU, rescue image writing to the guest disk (but no heartbeat) and the
#   guest reading it back, the QEMU guest agent (root's password set through
#   it, a freeze and thaw).  With --all also: direct kernel boot and a
#   config drive (iso9660 cdrom on the ide bus).
#
#   tools/guest-image/verify.sh [--all] [IMAGE_DIR]
#
# IMAGE_DIR defaults to what build.sh prints (building it if needed).
# Domains are transient, named altdriver-imgtest-<pid>-*, and destroyed on
# any exit together with the temp dir. LIBVIRT_URI overrides qemu:///system,
# LIBVIRT_RUN_DIR /run/libvirt (where that daemon keeps its QEMUs' pid files:
# a private daemon of tools/second-libvirtd.sh keeps them in DIR/run).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=../common.sh
source "$HERE/../common.sh"

ALL=0
if [ "${1:-}" = --all ]; then ALL=1; shift; fi
IMG=${1:-$("$HERE/build.sh")}
URI=${LIBVIRT_URI:-qemu:///system}
RUN_DIR=${LIBVIRT_RUN_DIR:-/run/libvirt}
BOOT_TIMEOUT=${BOOT_TIMEOUT:-90}

T=$(mktemp -d /tmp/altdriver-imgtest.XXXXXX)
PREFIX=altdriver-imgtest-$$
DOMS=()
cleanup() {
    local d
    for d in "${DOMS[@]}"; do
        if virsh -q -c "$URI" domstate "$d" >/dev/null 2>&1; then
            virsh -q -c "$URI" destroy "$d" >/dev/null 2>&1 || true
            virsh -q -c "$URI" undefine "$d" >/dev/null 2>&1 || true
        fi
    done
    rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

PASS=0 FAIL=0
ok() { PASS=$((PASS + 1)); echo "ok: $*"; }
bad() { FAIL=$((FAIL + 1)); echo "FAIL: $*"; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

# domain_xml NAME CONSOLE [extra <os> xml] -- <device xml>...
domain_xml() {
    local name=$1 console=$2 osextra=$3
    shift 3
    cat <<EOF
<domain type='qemu'>
  <name>$name</name>
  <memory unit='MiB'>256</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64' machine='pc'>hvm</type>$osextra</os>
  <features><acpi/></features>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>restart</on_reboot>
  <devices>
    $*
    <serial type='file'><source path='$console'/><target port='0'/></serial>
  </devices>
</domain>
EOF
}
AGENT_PORT="<channel type='unix'><target type='virtio' name='org.qemu.guest_agent.0'/></channel>"
vdisk() { # vdisk FILE DEV
    echo "<disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='$1'/><target dev='$2' bus='virtio'/></disk>"
}

# start NAME CONSOLE OSEXTRA DEVICES...: create a transient domain
start() {
    local name=$1 console=$2
    domain_xml "$@" >"$T/$name.xml"
    DOMS+=("$name")
    rm -f "$console"
    STARTED=$(now)
    virsh -q -c "$URI" create "$T/$name.xml" >/dev/null
}
# wait_for CONSOLE REGEX [TIMEOUT]: 0 when a line matches
wait_for() {
    local end=$(( $(date +%s) + ${3:-$BOOT_TIMEOUT} ))
    while [ "$(date +%s)" -lt "$end" ]; do
        grep -aqE "$2" "$1" 2>/dev/null && return 0
        sleep 0.2
    done
    return 1
}
# expect CONSOLE REGEX WHAT
expect() {
    if grep -aqE "$2" "$1" 2>/dev/null; then ok "$3"; else bad "$3 (no /$2/ in $(basename "$1"))"; fi
}
running() { virsh -q -c "$URI" domstate "$1" 2>/dev/null | grep -q running; }
stop() { # destroy if still there
    virsh -q -c "$URI" destroy "$1" >/dev/null 2>&1 || true
}
show() {
    echo "---- $1"
    tr -d '\r' <"$1" | grep -a ALTDRIVER- | grep -av -e TICK -e 'ALTDRIVER-HB ' | sed 's/^/    /'
}
# hb CONSOLE [FOUND]: the last heartbeat the guest announced (with FOUND:
# the counter it found at boot), 0 when none
hb() {
    local m='ALTDRIVER-HB'
    [ -n "${2:-}" ] && m=ALTDRIVER-HB-FOUND
    tr -d '\r' <"$1" | awk -v m="$m" '$1 == m { n = $2 } END { print n + 0 }'
}
# hb_found CONSOLE LOW HIGH WHAT: the guest found between LOW and HIGH
hb_found() {
    local found
    wait_for "$1" '^ALTDRIVER-HB-FOUND' 10
    found=$(hb "$1" found)
    if [ "$found" -ge "$2" ] && [ "$found" -le "$3" ]; then
        ok "$4: heartbeat found $found (announced $2)"
    else
        bad "$4: heartbeat found $found, expected $2..$3"
    fi
}
kill_qemu() { # SIGKILL: no flush, no clean close of the disk images
    kill -9 "$(cat "$RUN_DIR/qemu/$1.pid")"
    for _ in $(seq 50); do running "$1" || break; sleep 0.1; done
}

for f in disk.qcow2 rescue.qcow2 vmlinuz initrd.img; do
    [ -f "$IMG/$f" ] || die "$IMG/$f missing"
done
qemu-img create -q -f qcow2 -F qcow2 -b "$IMG/disk.qcow2" "$T/guest.qcow2"
qemu-img create -q -f qcow2 -F qcow2 -b "$IMG/rescue.qcow2" "$T/rescue.qcow2"

# 1. first boot, ACPI shutdown
C=$T/boot1.log
start "$PREFIX-boot1" "$C" "<boot dev='hd'/>" "$(vdisk "$T/guest.qcow2" vda)"
if wait_for "$C" '^ALTDRIVER-READY'; then
    ok "boot 1 READY after $(since "$STARTED") s"
else
    bad "boot 1 READY"
fi
for m in '^ALTDRIVER-BOOT' '^ALTDRIVER-DISKS vda' '^ALTDRIVER-SELF vda role=guest' \
         '^ALTDRIVER-BOOTCOUNT 1' '^ALTDRIVER-MARKER base-image'; do
    expect "$C" "$m" "boot 1 ${m#^ALTDRIVER-}"
done
wait_for "$C" '^ALTDRIVER-TICK' 10 && ok "boot 1 TICK" || bad "boot 1 TICK"
expect "$C" '^ALTDRIVER-HB-FOUND 0[^0-9]' "boot 1 HB-FOUND 0"
grep -aq '^ALTDRIVER-AGENT' "$C" && bad "boot 1: an agent without its port" || ok "boot 1: no agent"
wait_for "$C" '^ALTDRIVER-HB 3[^0-9]' 10 && ok "boot 1 heartbeat" || bad "boot 1 heartbeat"
t=$(now)
virsh -q -c "$URI" shutdown "$PREFIX-boot1" >/dev/null
for _ in $(seq 100); do running "$PREFIX-boot1" || break; sleep 0.1; done
if running "$PREFIX-boot1"; then
    bad "ACPI shutdown (still running after 10 s)"
else
    ok "ACPI shutdown: off after $(since "$t") s"
fi
expect "$C" '^ALTDRIVER-ACPI-POWER' "boot 1 ACPI-POWER"
stop "$PREFIX-boot1"
show "$C"

# 2. second boot of the same overlay: the counter went on
C=$T/boot2.log
start "$PREFIX-boot2" "$C" "<boot dev='hd'/>" "$(vdisk "$T/guest.qcow2" vda)"
wait_for "$C" '^ALTDRIVER-READY' && ok "boot 2 READY after $(since "$STARTED") s" || bad "boot 2 READY"
expect "$C" '^ALTDRIVER-BOOTCOUNT 2' "boot 2 BOOTCOUNT 2"
n=$(hb "$T/boot1.log")
hb_found "$C" "$n" "$n" "boot 2 after ACPI shutdown"
wait_for "$C" "^ALTDRIVER-HB $((n + 3))[^0-9]" 10 || bad "boot 2 heartbeat"
kill_qemu "$PREFIX-boot2"
running "$PREFIX-boot2" && bad "boot 2: QEMU survived SIGKILL"
stop "$PREFIX-boot2"

# 3. rescue: rescue disk first, guest disk second
C=$T/rescue.log
start "$PREFIX-rescue" "$C" "<boot dev='hd'/>" \
    "$(vdisk "$T/rescue.qcow2" vda)" "$(vdisk "$T/guest.qcow2" vdb)"
wait_for "$C" '^ALTDRIVER-READY' && ok "rescue READY after $(since "$STARTED") s" || bad "rescue READY"
expect "$C" '^ALTDRIVER-SELF vda role=rescue' "rescue SELF vda role=rescue"
expect "$C" '^ALTDRIVER-OTHER vdb marker=base-image' "rescue OTHER vdb"
expect "$C" '^ALTDRIVER-RESCUE-WROTE vdb' "rescue RESCUE-WROTE vdb"
sleep 2
grep -aq '^ALTDRIVER-HB' "$C" && bad "rescue guest wrote a heartbeat" || ok "rescue: no heartbeat"
stop "$PREFIX-rescue"
show "$C"

# 4. the guest alone again: it sees what the rescue wrote; with the guest
#    agent's port (hw_qemu_guest_agent)
C=$T/boot3.log
start "$PREFIX-boot3" "$C" "<boot dev='hd'/>" "$(vdisk "$T/guest.qcow2" vda)" "$AGENT_PORT"
wait_for "$C" '^ALTDRIVER-READY' && ok "boot 3 READY after $(since "$STARTED") s" || bad "boot 3 READY"
expect "$C" '^ALTDRIVER-RESCUED rescued-by-rescue-image at boot 1' "boot 3 RESCUED"
expect "$C" '^ALTDRIVER-BOOTCOUNT 3' "boot 3 BOOTCOUNT 3"
# one more than announced: a write that landed just before the kill
n=$(hb "$T/boot2.log")
hb_found "$C" "$n" "$((n + 1))" "boot 3 after QEMU was killed"
expect "$C" '^ALTDRIVER-AGENT started' "boot 3 AGENT started"
# root's password through the agent: the hash on the console is of it
virsh -q -c "$URI" set-user-password "$PREFIX-boot3" root 'n3w:pass' >/dev/null \
    || bad "boot 3 set-user-password"
if wait_for "$C" '^ALTDRIVER-PASSWORD root=' 10; then
    hash=$(tr -d '\r' <"$C" | sed -n 's/^ALTDRIVER-PASSWORD root=//p' | tail -n 1)
    salt=$(echo "$hash" | cut -d '$' -f 3)
    if [ "$(openssl passwd -6 -salt "$salt" 'n3w:pass')" = "$hash" ]; then
        ok "boot 3 PASSWORD: the hash of the password set"
    else
        bad "boot 3 PASSWORD $hash is not of the password set"
    fi
else
    bad "boot 3 PASSWORD"
fi
# the FAT cannot be frozen: the agent freezes nothing, after its hook ran
frozen=$(virsh -c "$URI" domfsfreeze "$PREFIX-boot3" 2>&1) || true
wait_for "$C" '^ALTDRIVER-FSFREEZE freeze' 10 && ok "boot 3 freeze hook ($frozen)" \
    || bad "boot 3 freeze hook ($frozen)"
virsh -q -c "$URI" domfsthaw "$PREFIX-boot3" >/dev/null 2>&1 || true
stop "$PREFIX-boot3"
show "$C"

if [ "$ALL" = 1 ]; then
    # 5. direct kernel boot (nova kernel_id/ramdisk_id), nova's command line,
    #    config drive on the ide cdrom; then virsh reboot (ACPI + restart)
    mkdir -p "$T/cd/openstack/latest"
    echo '{"uuid": "abc", "admin_pass": "s3cret", "name": "t"}' >"$T/cd/openstack/latest/meta_data.json"
    genisoimage -quiet -o "$T/config.iso" -V config-2 -J -R "$T/cd"
    C=$T/direct.log
    start "$PREFIX-direct" "$C" \
        "<kernel>$IMG/vmlinuz</kernel><initrd>$IMG/initrd.img</initrd><cmdline>root=/dev/vda console=tty0 console=ttyS0 console=hvc0</cmdline>" \
        "$(vdisk "$T/guest.qcow2" vda)" \
        "<disk type='file' device='cdrom'><driver name='qemu' type='raw'/><source file='$T/config.iso'/><target dev='hdd' bus='ide'/><readonly/></disk>"
    wait_for "$C" '^ALTDRIVER-READY' && ok "direct boot READY after $(since "$STARTED") s" || bad "direct boot READY"
    expect "$C" '^ALTDRIVER-BOOT' "direct boot BOOT"
    expect "$C" '^ALTDRIVER-CONFIGDRIVE sr0 uuid=abc' "direct boot CONFIGDRIVE"
    expect "$C" '^ALTDRIVER-ADMINPASS s3cret' "direct boot ADMINPASS"
    t=$(now)
    virsh -q -c "$URI" reboot "$PREFIX-direct" >/dev/null
    if wait_for "$C" '^ALTDRIVER-READY bootcount=5' 60; then
        ok "virsh reboot: READY again after $(since "$t") s"
    else
        bad "virsh reboot (no second READY)"
    fi
    stop "$PREFIX-direct"
    show "$C"

    # 6. knobs (ignore-acpi, selfreboot), extra disks, vfat config drive,
    #    virtio-scsi disk, disk hot plug
    "$HERE/customize.sh" "$IMG/disk.qcow2" "$T/knobs-base.qcow2" --marker knobs \
        --knob ignore-acpi --knob selfreboot
    qemu-img create -q -f qcow2 -F qcow2 -b "$T/knobs-base.qcow2" "$T/knobs.qcow2"
    mkfs.ext4 -q -F "$T/eph.img" 16M >/dev/null
    truncate -s 16M "$T/swap.img"
    chmod 600 "$T/swap.img"
    mkswap "$T/swap.img" >/dev/null 2>&1
    truncate -s 8M "$T/empty.img" "$T/scsi.img" "$T/hot.img"
    truncate -s 4M "$T/cfg.img"
    mkfs.vfat -n config-2 "$T/cfg.img" >/dev/null 2>&1
    MTOOLS_SKIP_CHECK=1 mcopy -s -i "$T/cfg.img" "$T/cd/openstack" ::/
    rdisk() { echo "<disk type='file' device='disk'><driver name='qemu' type='raw'/><source file='$1'/><target dev='$2' bus='${3:-virtio}'/></disk>"; }
    C=$T/knobs.log
    start "$PREFIX-knobs" "$C" "<boot dev='hd'/>" "$(vdisk "$T/knobs.qcow2" vda)" \
        "$(rdisk "$T/eph.img" vdb)" "$(rdisk "$T/swap.img" vdc)" "$(rdisk "$T/empty.img" vdd)" \
        "$(rdisk "$T/cfg.img" vde)" "<controller type='scsi' model='virtio-scsi'/>" \
        "$(rdisk "$T/scsi.img" sda scsi)"
    wait_for "$C" '^ALTDRIVER-SELFREBOOT' && ok "knobs SELFREBOOT" || bad "knobs SELFREBOOT"
    wait_for "$C" '^ALTDRIVER-READY bootcount=2' 60 && ok "knobs READY after self reboot" || bad "knobs second boot"
    expect "$C" '^ALTDRIVER-DISKS sda vda vdb vdc vdd vde' "knobs DISKS"
    expect "$C" '^ALTDRIVER-EXTRA vdb size=32768 fs=ext4' "knobs EXTRA ext4"
    expect "$C" '^ALTDRIVER-EXTRA vdc size=32768 fs=swap' "knobs EXTRA swap"
    expect "$C" '^ALTDRIVER-EXTRA vdd size=16384 fs=none' "knobs EXTRA empty"
    expect "$C" '^ALTDRIVER-EXTRA sda size=16384 fs=none' "knobs EXTRA scsi"
    expect "$C" '^ALTDRIVER-CONFIGDRIVE vde uuid=abc' "knobs CONFIGDRIVE vfat"
    virsh -q -c "$URI" shutdown "$PREFIX-knobs" >/dev/null
    wait_for "$C" '^ALTDRIVER-ACPI-IGNORED' 10 && ok "knobs ACPI-IGNORED" || bad "knobs ACPI-IGNORED"
    sleep 2
    running "$PREFIX-knobs" && ok "knobs still running after ACPI" || bad "knobs powered off despite ignore-acpi"
    virsh -q -c "$URI" attach-disk "$PREFIX-knobs" "$T/hot.img" vdf --targetbus virtio --live >/dev/null
    wait_for "$C" '^ALTDRIVER-EXTRA vdf size=16384 fs=none' 10 && ok "knobs hot plug seen" || bad "knobs hot plug"
    expect "$C" '^ALTDRIVER-DISKS sda vda vdb vdc vdd vde vdf' "knobs DISKS after hot plug"
    stop "$PREFIX-knobs"
    show "$C"

    # 7. selfpoweroff; no disk at all (kernel boot) still gets READY
    "$HERE/customize.sh" "$IMG/disk.qcow2" "$T/off.qcow2" --knob selfpoweroff
    C=$T/off.log
    start "$PREFIX-off" "$C" "<boot dev='hd'/>" "$(vdisk "$T/off.qcow2" vda)"
    wait_for "$C" '^ALTDRIVER-SELFPOWEROFF' && ok "SELFPOWEROFF" || bad "SELFPOWEROFF"
    sleep 2
    running "$PREFIX-off" && bad "selfpoweroff: still running" || ok "selfpoweroff: off"
    stop "$PREFIX-off"
    C=$T/nodisk.log
    start "$PREFIX-nodisk" "$C" \
        "<kernel>$IMG/vmlinuz</kernel><initrd>$IMG/initrd.img</initrd><cmdline>console=ttyS0</cmdline>"
    wait_for "$C" '^ALTDRIVER-READY bootcount=0' && ok "no disk READY" || bad "no disk READY"
    expect "$C" '^ALTDRIVER-SELF none' "no disk SELF none"
    stop "$PREFIX-nodisk"
    show "$C"
fi

echo "$PASS passed, $FAIL failed"
[ "$FAIL" = 0 ]
