#!/bin/bash
# A tour of the all-in-one cloud with the openstack CLI (run through
# `aio.sh tour`): the test guest is booted and walked through the server
# operations (resize, cold and live migration between the two hosts among
# them), then gets a Cinder volume attached, extended and detached; a
# second one boots from a volume made from the image and is walked through
# what volume-backed servers do. Every step is checked by the server's status
# and by marker lines the guest prints on its serial console
# (tools/guest-image/README.md), the volumes also by what the host's libvirt
# and Ceph hold. Prints a table `operation | result | seconds`; exits
# non-zero if a step failed. `tour cleanup` only removes what a tour left.
set -uo pipefail
source "$(dirname "$0")/../common.sh"

CLOUD=altdriver-aio
STATE=${AIO_STATE:-/var/lib/nova-altdriver-aio}
export OS_CLIENT_CONFIG_FILE=${OS_CLIENT_CONFIG_FILE:-$STATE/clouds.yaml}
export PATH=$VENV/bin:$PATH
P=aio-tour
IMAGE=$P-guest
RESCUE=$P-rescue
FLAVOR=$P-flavor
# FLAVOR with an inbound bandwidth (quota:vif_inbound_average, kB/s), which
# SERVER_QOS's guest measures on the TCP port its server property
# altdriver_rx_port names
FLAVOR_QOS=$P-flavor-qos
SERVER_QOS=$P-qos-server
RX_LIMIT=512
RX_PORT=5201
# what the server is resized to: more memory, a bigger disk
FLAVOR_BIG=$P-flavor-big
SERVER=$P-server
SNAP=$P-snapshot
SERVER2=$P-from-snapshot
# volumes: a stable-rescue image (keeps every disk in place, 2.87), a boot
# volume made from the guest image and the servers booted from it, a blank
# volume hot-plugged into SERVER
RESCUE_STABLE=$P-rescue-stable
VOL_BOOT=$P-boot-volume
VOL_DATA=$P-data-volume
VSERVER=$P-volume-server
VSERVER2=$P-volume-server2
# a port of its own on NETWORK, hot-plugged into SERVER; a network of the
# tour's own (a project network: a VLAN of the physical one, sharing its
# layer 2) and its subnet, which SERVER is added to and removed from
PORT=$P-port
NET2=$P-net
NET2_CIDR=10.98.0.0/24
WAIT=${TOUR_WAIT:-240}
# NETWORK (aio.sh makes it; the host holds its gateway address) and BRIDGE
source "$(dirname "$0")/network.sh"

osc() { openstack --os-cloud "$CLOUD" "$@"; }
# the checks' reads of servers, consoles and volumes (probe.py: an openstack
# command costs seconds of start-up, and the checks poll)
AIO_DIR=$(dirname "${BASH_SOURCE[0]}")
probe() { python3 "$AIO_DIR/probe.py" "$@"; }

# the compute hosts (aio.sh writes them): host -> nova-compute service, libvirt URI
declare -A SERVICE_OF URI_OF
while read -r h svc uri; do SERVICE_OF[$h]=$svc URI_OF[$h]=$uri; done <"$STATE/computes"
HOST1=aio-compute
HOST2=aio-compute2
host_of() { probe show "$1" OS-EXT-SRV-ATTR:host; }
# id_host SERVER: "ID HOST"
id_host() { probe show "$1" id OS-EXT-SRV-ATTR:host; }
other_host() {  # other_host HOST: the other compute host
    local h
    for h in "${!URI_OF[@]}"; do [ "$h" != "$1" ] && echo "$h"; done
    return 0
}
# defined_on SERVER_ID: the hosts whose libvirtd has a domain for the server
# (grep reads the whole list: with grep -q, virsh could die of SIGPIPE
# writing the rest and pipefail would fail the match)
defined_on() {
    local h
    for h in "${!URI_OF[@]}"; do
        virsh -c "${URI_OF[$h]}" list --all --uuid | grep -x "$1" >/dev/null && echo "$h"
    done
    return 0
}

RESULTS=()
FAILED=0
step() {  # step NAME FUNCTION [ARGS]
    local name=$1 t0=$SECONDS rc; shift
    log "== $name"
    "$@"; rc=$?
    local dt=$((SECONDS - t0)) res=ok
    if [ $rc -ne 0 ]; then res=FAILED; FAILED=1; log "!! $name FAILED"; fi
    RESULTS+=("$name|$res|$dt")
    return $rc
}

# wait_status SERVER STATUS: status reached and no task running
wait_status() {
    local out rc
    out=$(probe wait-status "$1" "$2" "$WAIT" 2>&1); rc=$?
    log "$out"
    return $rc
}

console() { probe console "$1" 2>/dev/null | tr -d '\r'; }
# latest SERVER FIELD...: those fields of the guest's latest boot, one a line
# (ready: its READY line, bootcount, net_ip, uptime), by the e2e tests' parser
MARKERS=$ALTDRIVER_TOP/nova_altdriver/tests/e2e/markers.py
latest() { console "$1" | python3 "$MARKERS" "${@:2}"; }

# wait_console SERVER REGEX: the console shows a line matching REGEX
wait_console() {
    local end=$((SECONDS + WAIT)) line
    while [ $SECONDS -lt $end ]; do
        line=$(console "$1" | grep -aE "$2" | tail -1)
        [ -n "$line" ] && { log "console: $line"; return 0; }
        sleep 2
    done
    log "console of $1 never showed /$2/; last lines:"
    console "$1" | tail -8 >&2
    return 1
}

# wait_boot SERVER N: a new ALTDRIVER-READY line (unlike the SERVER's
# PREV_READY) with bootcount N
declare -A PREV_READY
wait_boot() {
    local end=$((SECONDS + WAIT)) line count
    while [ $SECONDS -lt $end ]; do
        { read -r line; read -r count; } < <(latest "$1" ready bootcount)
        if [ -n "$line" ] && [ "$line" != "${PREV_READY[$1]:-}" ]; then
            PREV_READY[$1]=$line
            if [ "$count" = "$2" ]; then
                log "console: $line"; return 0
            fi
            log "console: $line (expected bootcount=$2)"; return 1
        fi
        sleep 2
    done
    log "no new ALTDRIVER-READY bootcount=$2 on $1; last lines:"
    console "$1" | tail -8 >&2
    return 1
}

# wait_marker SERVER FIELD [VALUE]: waits until FIELD of the guest's latest
# boot (one of latest's: nmis, root_password...) is VALUE, or without VALUE
# until it has one; prints it
wait_marker() {
    local end=$((SECONDS + WAIT)) value
    while value=$(latest "$1" "$2"); [ -z "$value" ] || [ "$value" != "${3:-$value}" ]; do
        [ $SECONDS -lt $end ] ||
            { log "the guest's $2 is '$value' after $WAIT s, not '${3:-anything}'"; return 1; }
        sleep 2
    done
    echo "$value"
}

# the guest keeps printing ALTDRIVER-TICK (its uptime) every 2 s while it runs
ticks_advance() {
    local a b
    a=$(latest "$1" uptime)
    sleep 4
    b=$(latest "$1" uptime)
    [ -n "$b" ] && [ "$a" != "$b" ] && { log "guest runs: uptime $b"; return 0; }
    log "guest console does not advance (uptime $a / $b)"; return 1
}
ticks_frozen() {
    local a b
    a=$(latest "$1" uptime)
    sleep 4
    b=$(latest "$1" uptime)
    [ "$a" = "$b" ] && { log "guest frozen at uptime $b"; return 0; }
    log "guest still ticking while it should not (uptime $a / $b)"; return 1
}

# net_ok SERVER: the guest's latest boot configured the address neutron gave
# its port (from the config drive) and the host reaches it through the bridge
net_ok() {
    local ip configured i
    ip=$(probe show "$1" "addresses.$NETWORK.0.addr") ||
        { log "$1 has no address on $NETWORK"; return 1; }
    configured=$(latest "$1" net_ip)
    [ "$configured" = "$ip" ] ||
        { log "the guest's last boot configured '${configured:-nothing}', neutron says $ip"; return 1; }
    for ((i = 0; i < 15; i++)); do
        ping -c 1 -W 2 "$ip" >/dev/null && { log "guest answers ping at $ip"; return 0; }
    done
    log "no answer to ping from $ip"; return 1
}

# booted SERVER [DISK]: the guest boots once more from its own disk, whose
# boot count goes on (BOOTS: the boots of each server's disk, or of a boot
# volume that several servers use in turn)
declare -A BOOTS
booted() {
    local disk=${2:-$1}
    BOOTS[$disk]=$((${BOOTS[$disk]:-0} + 1))
    wait_boot "$1" "${BOOTS[$disk]}"
}

# ------------------------------------------------------------------ volumes
vol_status() { probe volume-status "$1" 2>&1; }
vol_id() { osc volume show "$1" -f value -c id; }

# wait_volume VOLUME STATUS [SECONDS]: the volume reached STATUS (error* ends it)
wait_volume() {
    local end=$((SECONDS + ${3:-$WAIT})) st
    while [ $SECONDS -lt $end ]; do
        st=$(vol_status "$1")
        [ "$st" = "$2" ] && { log "volume $1 is $st"; return 0; }
        case $st in error*) log "volume $1 went to $st"; return 1 ;; esac
        sleep 2
    done
    log "volume $1: still '$st' after ${3:-$WAIT} s (wanted $2)"; return 1
}

# rbd_image VOLUME_ID: Cinder's RBD image of the volume is in the pool, as
# Cinder's cephx user sees it
rbd_image() { rbd --id cinder -p volumes info "volume-$1" >/dev/null 2>&1; }

# domain_disk SERVER VOLUME_ID: the target (vda...) of the volume's RBD
# disk in the server's libvirt domain on its host (empty: none)
domain_disk() {
    local host id
    read -r id host < <(id_host "$1") && [ -n "$host" ] || return 1
    virsh -c "${URI_OF[$host]}" domblklist "$id" |
        awk -v src="volumes/volume-$2" '$2 == src { print $1 }'
}

# disks SERVER: the disks the guest listed last (ALTDRIVER-DISKS, printed
# again on every hot plug and unplug)
disks() {
    console "$1" | grep -aoE 'ALTDRIVER-DISKS( [a-z]+[0-9]*)*' | tail -1 | cut -s -d' ' -f2-
}
minus() {  # minus "A B C" "B": the words of the first list not in the second
    comm -23 <(tr ' ' '\n' <<<"$1" | sort -u) <(tr ' ' '\n' <<<"$2" | sort -u) | xargs
}
# disk_change SERVER "DISKS BEFORE" +|-: waits for the guest's list of disks
# to change by one disk more (+) or less (-) and prints that disk
disk_change() {
    local end=$((SECONDS + WAIT)) now added gone
    while [ $SECONDS -lt $end ]; do
        now=$(disks "$1")
        if [ "$now" != "$2" ]; then
            log "console: ALTDRIVER-DISKS $now (before: $2)"
            added=$(minus "$now" "$2") gone=$(minus "$2" "$now")
            if [ "$3" = + ] && [ -z "$gone" ] && [ "$(wc -w <<<"$added")" = 1 ]; then
                echo "$added"; return 0
            fi
            if [ "$3" = - ] && [ -z "$added" ] && [ "$(wc -w <<<"$gone")" = 1 ]; then
                echo "$gone"; return 0
            fi
            log "not one disk $3"; return 1
        fi
        sleep 2
    done
    log "the guest's disks stay '$2' after $WAIT s"; return 1
}

# wait_event SERVER ACTION EVENT: the server's latest ACTION (server event
# list) has EVENT, finished with Success
wait_event() {
    local end=$((SECONDS + WAIT)) req result=
    while [ $SECONDS -lt $end ]; do
        req=$(osc server event list "$1" -f value -c 'Request ID' -c Action |
              awk -v a="$2" '$2 == a { print $1; exit }')
        if [ -n "$req" ]; then
            result=$(osc server event show "$1" "$req" -f json | python3 -c '
import json, sys
events = json.load(sys.stdin)["events"]
print(" ".join(str(e.get("result")) for e in events if e["event"] == sys.argv[1]))' "$3")
            case $result in
                Success) log "$1: $2 ($req): $3 $result"; return 0 ;;
                Error) log "$1: $2 ($req): $3 $result"; return 1 ;;
            esac
        fi
        sleep 2
    done
    log "$1: no $2 with $3 Success after $WAIT s (${req:-no action}, result '${result}')"
    return 1
}

# volume_delete VOLUME_ID: deleted, its RBD image gone. A volume that
# stays attached to no server (a tour interrupted) is reset and forced.
volume_delete() {
    local end=$((SECONDS + WAIT)) st
    st=$(vol_status "$1")
    case $st in
        available|error) osc volume delete "$1" || return 1 ;;
        *) wait_volume "$1" available 30 && osc volume delete "$1" || {
               log "volume $1 is $(vol_status "$1"): resetting it and forcing the delete"
               osc volume set --state available --detached "$1"
               osc volume delete --force "$1" || return 1; } ;;
    esac
    while st=$(probe volume-status "$1" 2>/dev/null); do
        [ "$st" != error_deleting ] || { log "volume $1: error_deleting"; return 1; }
        [ $SECONDS -lt $end ] || { log "volume $1 still there ($st) after $WAIT s"; return 1; }
        sleep 2
    done
    ! rbd_image "$1" || { log "RBD image volumes/volume-$1 left behind"; return 1; }
    log "volume $1 deleted, its RBD image too"
}

# ------------------------------------------------------------------ steps
s_cleanup() {  # one listing of each kind: a call costs seconds
    local s v name servers images
    servers=$(osc server list -f value -c Name)
    for s in $SERVER $SERVER2 $SERVER_QOS $VSERVER $VSERVER2; do
        grep -qxF "$s" <<<"$servers" && osc server delete --wait "$s"
    done
    osc volume list -f value -c ID -c Name | while read -r v name; do
        case $name in "$VOL_DATA"|"$VOL_BOOT") volume_delete "$v" </dev/null ;; esac
    done
    for v in $(osc port list --name "$PORT" -f value -c ID); do osc port delete "$v"; done
    for v in $(osc network list --name "$NET2" -f value -c ID); do osc network delete "$v"; done
    images=$(osc image list -f value -c Name)
    for s in $IMAGE $RESCUE $RESCUE_STABLE $SNAP; do
        grep -qxF "$s" <<<"$images" || continue
        while osc image show "$s" >/dev/null 2>&1; do osc image delete "$s" || break; done
    done
    return 0
}

s_images() {
    local dir
    dir=$(bash "$ALTDRIVER_TOP/tools/guest-image/build.sh") || return 1
    # with the QEMU guest agent: nova's change password goes through it
    osc image create --disk-format qcow2 --container-format bare --public \
        --property hw_qemu_guest_agent=yes \
        --file "$dir/disk.qcow2" "$IMAGE" -f value -c id &&
    osc image create --disk-format qcow2 --container-format bare --public \
        --file "$dir/rescue.qcow2" "$RESCUE" -f value -c id &&
    # stable device rescue: the server's disks stay where they are, the
    # rescue disk is added on virtio and booted first (needed for
    # volume-backed servers)
    osc image create --disk-format qcow2 --container-format bare --public \
        --property hw_rescue_bus=virtio --property hw_rescue_device=disk \
        --file "$dir/rescue.qcow2" "$RESCUE_STABLE" -f value -c id
}

s_flavor() {
    { osc flavor show "$FLAVOR" >/dev/null 2>&1 ||
        osc flavor create --ram 256 --vcpus 1 --disk 1 "$FLAVOR" -f value -c id; } &&
    { osc flavor show "$FLAVOR_QOS" >/dev/null 2>&1 ||
        osc flavor create --ram 256 --vcpus 1 --disk 1 "$FLAVOR_QOS" -f value -c id; } &&
    # their extra specs as the tour says, whatever an older tour left
    osc flavor set --no-property "$FLAVOR" &&
    osc flavor set --no-property --property "quota:vif_inbound_average=$RX_LIMIT" "$FLAVOR_QOS" &&
    { osc flavor show "$FLAVOR_BIG" >/dev/null 2>&1 ||
        osc flavor create --ram 320 --vcpus 1 --disk 2 "$FLAVOR_BIG" -f value -c id; }
}

s_boot() {
    osc server create --flavor "$FLAVOR" --image "$IMAGE" --network "$NETWORK" \
        --host "$HOST1" "$SERVER" -f value -c id || return 1
    wait_status "$SERVER" ACTIVE && booted "$SERVER" && net_ok "$SERVER"
}

# a flavor's inbound bandwidth, seen by the guest of a server of its own:
# 2 MiB sent over TCP from the host take it at least as long as RX_LIMIT
# allows (unlimited: about a tenth of that)
s_inbound_rate() {
    local rc
    osc server create --flavor "$FLAVOR_QOS" --image "$IMAGE" --network "$NETWORK" \
        --property "altdriver_rx_port=$RX_PORT" "$SERVER_QOS" -f value -c id >/dev/null &&
        wait_status "$SERVER_QOS" ACTIVE && inbound_rate_ok "$SERVER_QOS"
    rc=$?
    osc server delete --wait "$SERVER_QOS"
    return $rc
}
inbound_rate_ok() {  # SERVER
    local ip rate limit=$((RX_LIMIT * 1000))
    ip=$(probe show "$1" "addresses.$NETWORK.0.addr") &&
        wait_marker "$1" rx_port "$RX_PORT" >/dev/null || return 1
    timeout "$WAIT" bash -c 'head -c 2097152 /dev/zero >"/dev/tcp/$1/$2"' _ "$ip" "$RX_PORT" ||
        { log "sending 2 MiB to $ip:$RX_PORT failed"; return 1; }
    rate=$(wait_marker "$1" rx_bytes_per_s) || return 1
    log "the guest received 2 MiB at $rate bytes/s (flavor: $limit)"
    [ "$rate" -le $((limit * 11 / 10)) ] ||
        { log "faster than the flavor's quota:vif_inbound_average"; return 1; }
}

s_stop() {  # SERVER
    osc server stop "$1" && wait_status "$1" SHUTOFF &&
        wait_console "$1" 'ALTDRIVER-ACPI-POWER'
}
s_start() {  # SERVER [DISK]
    osc server start "$1" && wait_status "$1" ACTIVE && booted "$@"
}
s_reboot() {  # soft|hard
    osc server reboot "--$1" "$SERVER" && wait_status "$SERVER" ACTIVE &&
        booted "$SERVER" && net_ok "$SERVER"
}
s_pause() { osc server pause "$SERVER" && wait_status "$SERVER" PAUSED && ticks_frozen "$SERVER"; }
s_unpause() { osc server unpause "$SERVER" && wait_status "$SERVER" ACTIVE && ticks_advance "$SERVER"; }
s_suspend() { osc server suspend "$SERVER" && wait_status "$SERVER" SUSPENDED; }
s_resume() {
    osc server resume "$SERVER" && wait_status "$SERVER" ACTIVE && ticks_advance "$SERVER" &&
        [ "$(latest "$SERVER" ready)" = "${PREV_READY[$SERVER]:-}" ] ||
        { log "resume rebooted the guest or the guest does not run"; return 1; }
}
s_rescue() {
    osc server rescue --image "$RESCUE" "$SERVER" && wait_status "$SERVER" RESCUE &&
        wait_console "$SERVER" 'ALTDRIVER-RESCUE-WROTE vdb' &&
        wait_boot "$SERVER" 1  # the rescue disk's own first boot
}
s_unrescue() {
    osc server unrescue "$SERVER" && wait_status "$SERVER" ACTIVE &&
        booted "$SERVER" &&
        wait_console "$SERVER" 'ALTDRIVER-RESCUED rescued-by-rescue-image' && net_ok "$SERVER"
}
s_snapshot() {
    osc server image create --name "$SNAP" --wait "$SERVER" -f value -c id &&
        [ "$(osc image show "$SNAP" -f value -c status)" = active ]
}
s_boot_snapshot() {
    osc server create --flavor "$FLAVOR" --image "$SNAP" --nic none "$SERVER2" \
        -f value -c id || return 1
    # the snapshot carries the boot count of the first server on
    wait_status "$SERVER2" ACTIVE && wait_boot "$SERVER2" $((${BOOTS[$SERVER]} + 1)) &&
        osc server delete --wait "$SERVER2"
}
s_shelve() {
    local host id
    read -r id host < <(id_host "$SERVER") && [ -n "$host" ] || return 1
    osc server shelve "$SERVER" && wait_status "$SERVER" SHELVED || return 1
    virsh -c "${URI_OF[$host]}" domstate "$id" 2>&1 | grep -q running &&
        { log "guest still running on $host after shelve"; return 1; }
    return 0
}
s_shelve_offload() {
    local id
    id=$(probe show "$SERVER" id) || return 1
    osc server shelve --offload "$SERVER" && wait_status "$SERVER" SHELVED_OFFLOADED || return 1
    [ -z "$(defined_on "$id")" ] ||
        { log "libvirt domain $id still defined on $(defined_on "$id") after offload"; return 1; }
    return 0
}
s_unshelve() {  # SERVER [DISK]
    osc server unshelve "$1" && wait_status "$1" ACTIVE && booted "$@" && net_ok "$1"
}
s_rebuild() {
    PREV_READY[$SERVER]=$(latest "$SERVER" ready)
    osc server rebuild --image "$IMAGE" "$SERVER" -f value -c id && wait_status "$SERVER" ACTIVE &&
        BOOTS[$SERVER]=0 && booted "$SERVER" && net_ok "$SERVER"
}
# ------------------------------------------------------------------ moves
# placed SERVER HOST FLAVOR: nova has the server on HOST with FLAVOR, and the
# domain on that host (and on no other) has the flavor's memory
placed() {
    local id host flavor ram kib
    # 2.47: the server's own copy of its flavor, with its name and memory
    read -r id host flavor ram < <(probe show "$1" id OS-EXT-SRV-ATTR:host \
                                         flavor.original_name flavor.ram) &&
        [ -n "$ram" ] || return 1
    [ "$host" = "$2" ] && [ "$flavor" = "$3" ] ||
        { log "$1 is on $host with $flavor, not on $2 with $3"; return 1; }
    [ "$(defined_on "$id")" = "$host" ] ||
        { log "domain $id defined on '$(defined_on "$id" | xargs)', not on $host only"; return 1; }
    kib=$(virsh -c "${URI_OF[$host]}" dominfo "$id" | awk '$1 == "Max" { print $3 }')
    [ "$kib" = $((ram * 1024)) ] ||
        { log "the domain has $kib KiB of memory, $3 other"; return 1; }
    log "$1 is on $host with $flavor ($kib KiB)"
}

# s_resize: to the bigger flavor, on the host the scheduler picks (either:
# allow_resize_to_same_host); the guest boots its disk's copy there, whose
# boot count goes on. What it was before is kept for the revert.
declare -A BEFORE_RESIZE
s_resize() {
    BEFORE_RESIZE=([host]=$(host_of "$SERVER") [boots]=${BOOTS[$SERVER]}
                   [ready]=${PREV_READY[$SERVER]:-})
    osc server resize --flavor "$FLAVOR_BIG" "$SERVER" &&
        wait_status "$SERVER" VERIFY_RESIZE && MOVED_TO=$(host_of "$SERVER") &&
        placed "$SERVER" "$MOVED_TO" "$FLAVOR_BIG" && booted "$SERVER" && net_ok "$SERVER"
}
# The disk set aside on the old host comes back, the guest boots it there:
# its boot count goes on from before the resize
s_resize_revert() {
    local id
    id=$(probe show "$SERVER" id) || return 1
    osc server resize revert "$SERVER" && wait_status "$SERVER" ACTIVE &&
        placed "$SERVER" "${BEFORE_RESIZE[host]}" "$FLAVOR" || return 1
    [ ! -e "$STATE/instances/${id}_resize" ] || { log "${id}_resize left behind"; return 1; }
    BOOTS[$SERVER]=${BEFORE_RESIZE[boots]} PREV_READY[$SERVER]=${BEFORE_RESIZE[ready]}
    booted "$SERVER" && net_ok "$SERVER"
}
# s_confirm FLAVOR: the resize or migration is confirmed: the server stays
# where it went (MOVED_TO), running on, and the old disk is removed
s_confirm() {
    local id
    id=$(probe show "$SERVER" id) || return 1
    osc server resize confirm "$SERVER" && wait_status "$SERVER" ACTIVE &&
        placed "$SERVER" "$MOVED_TO" "$1" && ticks_advance "$SERVER" || return 1
    [ ! -e "$STATE/instances/${id}_resize" ] || { log "${id}_resize left behind"; return 1; }
}
# Cold migration: nova picks the other host; the guest boots there
s_migrate() {
    local src
    src=$(host_of "$SERVER") && MOVED_TO=$(other_host "$src") || return 1
    osc server migrate "$SERVER" && wait_status "$SERVER" VERIFY_RESIZE &&
        placed "$SERVER" "$MOVED_TO" "$FLAVOR_BIG" && booted "$SERVER" && net_ok "$SERVER"
}
# Live migration to the other host (shared instances path: memory only):
# the guest runs on without a boot, its port works from the new host
s_live_migrate() {
    local src dst ready id
    read -r id src < <(id_host "$SERVER") && [ -n "$src" ] || return 1
    dst=$(other_host "$src") ready=$(latest "$SERVER" ready)
    osc --os-compute-api-version 2.30 server migrate --live-migration --host "$dst" "$SERVER" &&
        wait_status "$SERVER" ACTIVE && placed "$SERVER" "$dst" "$FLAVOR_BIG" || return 1
    [ "$(latest "$SERVER" ready)" = "$ready" ] ||
        { log "the guest booted again: $(latest "$SERVER" ready)"; return 1; }
    log "interface on $dst: $(virsh -c "${URI_OF[$dst]}" domiflist "$id" | awk 'NR > 2 && NF { print $1, $3 }')"
    ticks_advance "$SERVER" && net_ok "$SERVER"
}

# The server's host fails: its nova-compute dies, the guest stops, the domain
# stays defined (as after a power loss); an admin forces the service down
# and evacuates. Since compute API 2.95 the server arrives stopped; started,
# the guest boots its own disk (from the shared instances directory, or its
# boot volume) on the other host: the boot counter goes on.
s_evacuate() {  # SERVER [DISK]
    local id src dst
    read -r id src < <(id_host "$1") && [ -n "$src" ] || return 1
    dst=$(other_host "$src")
    EVAC_SRC=$src EVAC_ID=$id EVAC_DISK=
    # an image-backed server's disk, which the other host boots
    [ ! -f "$STATE/instances/$id/disk" ] || EVAC_DISK=$STATE/instances/$id/disk
    bash "$ALTDRIVER_TOP/tools/aio/aio.sh" kill "${SERVICE_OF[$src]}" &&
        virsh -c "${URI_OF[$src]}" destroy "$id" >/dev/null &&
        osc compute service set --down "$src" nova-compute || return 1
    osc server evacuate --host "$dst" "$1" -f value -c id && wait_status "$1" SHUTOFF &&
        [ "$(host_of "$1")" = "$dst" ] || { log "server not on $dst"; return 1; }
    s_start "$@" && net_ok "$1"
}
# The failed host comes back: nova-compute removes the stale domain of the
# evacuated server and keeps its disks and its network device, which the
# other host now uses.
s_source_back() {  # SERVER
    local src=$EVAC_SRC id=$EVAC_ID end=$((SECONDS + WAIT))
    bash "$ALTDRIVER_TOP/tools/aio/aio.sh" up || return 1
    while defined_on "$id" | grep -x "$src" >/dev/null; do
        [ $SECONDS -lt $end ] || { log "stale domain $id still defined on $src"; return 1; }
        sleep 2
    done
    log "stale domain $id removed from $src"
    # nova refuses to force the host up until its nova-compute has marked
    # the evacuation completed (right after the clean-up)
    until osc compute service set --up "$src" nova-compute 2>/dev/null; do
        [ $SECONDS -lt $end ] || { log "$src cannot be forced up"; return 1; }
        sleep 2
    done
    [ -d "$STATE/instances/$id" ] && { [ -z "$EVAC_DISK" ] || [ -f "$EVAC_DISK" ]; } ||
        { log "the instance directory or disk of $id is gone"; return 1; }
    wait_status "$1" ACTIVE && ticks_advance "$1" && net_ok "$1"
}

# A blank volume into the running guest: it sees one disk more, empty, 1 GiB
GUEST_DISK=
s_volume_attach() {
    local before vid dev
    before=$(disks "$SERVER")
    osc volume create --size 1 "$VOL_DATA" -f value -c id && wait_volume "$VOL_DATA" available &&
        vid=$(vol_id "$VOL_DATA") || return 1
    dev=$(osc server add volume "$SERVER" "$VOL_DATA" -f value -c Device) || return 1
    log "nova attaches $VOL_DATA as $dev"
    wait_volume "$VOL_DATA" in-use && GUEST_DISK=$(disk_change "$SERVER" "$before" +) &&
        wait_console "$SERVER" "ALTDRIVER-EXTRA $GUEST_DISK size=2097152 fs=none" || return 1
    dev=$(domain_disk "$SERVER" "$vid")
    [ -n "$dev" ] || { log "no disk volumes/volume-$vid in the domain"; return 1; }
    log "the domain has volumes/volume-$vid as $dev"
}
# Extended while attached: Cinder grows the RBD image and tells nova, which
# has QEMU resize the guest's disk
s_volume_extend() {
    local vid dev bytes
    vid=$(vol_id "$VOL_DATA") || return 1
    osc --os-volume-api-version 3.42 volume set --size 2 "$VOL_DATA" &&
        wait_volume "$VOL_DATA" in-use || return 1
    [ "$(osc volume show "$VOL_DATA" -f value -c size)" = 2 ] ||
        { log "$VOL_DATA is not 2 GiB"; return 1; }
    wait_event "$SERVER" extend_volume compute_extend_volume || return 1
    dev=$(domain_disk "$SERVER" "$vid") && [ -n "$dev" ] || return 1
    bytes=$(virsh -c "${URI_OF[$(host_of "$SERVER")]}" domblkinfo \
        "$(probe show "$SERVER" id)" "$dev" | awk '$1 == "Capacity:" { print $2 }')
    [ "$bytes" = $((2 << 30)) ] || { log "QEMU's $dev has $bytes bytes, not 2 GiB"; return 1; }
    log "QEMU's $dev has 2 GiB"
}
s_volume_detach() {
    local before vid gone
    before=$(disks "$SERVER") && vid=$(vol_id "$VOL_DATA") || return 1
    osc server remove volume "$SERVER" "$VOL_DATA" || return 1
    gone=$(disk_change "$SERVER" "$before" -) || return 1
    [ "$gone" = "$GUEST_DISK" ] || { log "the guest lost $gone, not $GUEST_DISK"; return 1; }
    wait_volume "$VOL_DATA" available || return 1
    [ -z "$(domain_disk "$SERVER" "$vid")" ] ||
        { log "volumes/volume-$vid still in the domain"; return 1; }
    ticks_advance "$SERVER"
}

# ----------------------------------------------------------- interfaces
# nics SERVER: the NICs the guest listed last (ALTDRIVER-NICS if=mac ...,
# printed again whenever they change)
nics() {
    console "$1" | grep -aoE 'ALTDRIVER-NICS( [a-z0-9]+=[0-9a-f:]+)*' | tail -1 | cut -s -d' ' -f2-
}
# nic_change SERVER MAC +|-: waits until the guest lists a NIC with MAC
# (+) or none (-)
nic_change() {
    local end=$((SECONDS + WAIT)) now
    while [ $SECONDS -lt $end ]; do
        now=$(nics "$1")
        case " $now " in
            *"=$2 "*) [ "$3" = + ] && { log "console: ALTDRIVER-NICS $now"; return 0; } ;;
            *) [ "$3" = - ] && { log "console: ALTDRIVER-NICS $now"; return 0; } ;;
        esac
        sleep 2
    done
    log "the guest's NICs stay '$now' after $WAIT s (wanted $3 $2)"; return 1
}
# link_local MAC: the IPv6 link-local address the guest's NIC with MAC
# has (EUI-64)
link_local() {
    local m
    IFS=: read -ra m <<<"$1"
    printf 'fe80::%x%02x:%xff:fe%02x:%x%02x\n' $((0x${m[0]} ^ 2)) "0x${m[1]}" "0x${m[2]}" \
        "0x${m[3]}" "0x${m[4]}" "0x${m[5]}"
}
# domain_macs SERVER: the MACs of the interfaces of the server's domain on its host
domain_macs() {
    local host id
    read -r id host < <(id_host "$1") && [ -n "$host" ] || return 1
    virsh -c "${URI_OF[$host]}" domiflist "$id" | awk 'NR > 2 && NF { print $5 }' | xargs
}

# on_bridge PORT_ID: the port's tap device (tap + the ID's beginning) is on
# the bridge (grep reads the whole list, as in defined_on)
on_bridge() { ovs-vsctl list-ports "$BRIDGE" | grep -x "tap${1:0:11}" >/dev/null; }
# tap_left PORT_ID: that tap is neither on the bridge nor on the host
tap_left() { ! on_bridge "$1" && [ ! -e "/sys/class/net/tap${1:0:11}" ]; }

# nic_plugged SERVER PORT_ID MAC: the port went into the running guest: the
# guest lists a NIC with its MAC (as many NICs as the domain on its host has
# interfaces, this one among them), its tap is on the bridge, and the guest
# brings the NIC up: the host reaches its IPv6 link-local address through
# the bridge, as every guest's
nic_plugged() {
    local ll i macs
    nic_change "$1" "$3" + && macs=$(domain_macs "$1") || return 1
    [[ " $macs " == *" $3 "* ]] ||
        { log "the domain's interfaces ($macs) lack $3"; return 1; }
    [ "$(nics "$1" | wc -w)" = "$(wc -w <<<"$macs")" ] ||
        { log "the guest lists '$(nics "$1")', the domain has $macs"; return 1; }
    log "the domain's interfaces: $macs"
    on_bridge "$2" || { log "tap${2:0:11} is not on $BRIDGE"; return 1; }
    ll=$(link_local "$3")
    for ((i = 0; i < 15; i++)); do
        ping -c 1 -W 2 "$ll%$BRIDGE" >/dev/null && { log "the new NIC answers ping at $ll%$BRIDGE"; return 0; }
    done
    log "no answer to ping from $ll%$BRIDGE"; return 1
}
# nic_unplugged SERVER PORT_ID MAC: the port went out of the guest: the
# guest lists it no more, the domain has no such interface, its tap left
# the bridge and the host, its address is silent
nic_unplugged() {
    local end=$((SECONDS + WAIT)) macs ll
    nic_change "$1" "$3" - || return 1
    while macs=$(domain_macs "$1") && [[ " $macs " == *" $3 "* ]]; do
        [ $SECONDS -lt $end ] || { log "the domain still has $3 ($macs)"; return 1; }
        sleep 2
    done
    log "the domain's interfaces: $macs"
    until tap_left "$2"; do
        [ $SECONDS -lt $end ] || { log "tap${2:0:11} still on $BRIDGE or on the host"; return 1; }
        sleep 2
    done
    ll=$(link_local "$3")
    ! ping -c 2 -W 1 "$ll%$BRIDGE" >/dev/null || { log "$ll%$BRIDGE still answers"; return 1; }
}

# A port of its own on the network, hot-plugged into the running guest
# (on the second host by now)
PORT_ID='' PORT_MAC=''
s_port_add() {
    # a port's fields, one a line, in alphabetical order: id, mac_address
    { read -r PORT_ID; read -r PORT_MAC; } < <(osc port create --network "$NETWORK" "$PORT" \
                                                   -f value -c id -c mac_address) &&
        [[ $PORT_MAC == *:*:*:*:*:* ]] || return 1
    log "port $PORT: $PORT_ID $PORT_MAC"
    osc server add port "$SERVER" "$PORT" && nic_plugged "$SERVER" "$PORT_ID" "$PORT_MAC"
}
# Unplugged: the port is unbound and deleted, the guest runs on and answers
# on its first address
s_port_remove() {
    local end=$((SECONDS + WAIT))
    osc server remove port "$SERVER" "$PORT" &&
        nic_unplugged "$SERVER" "$PORT_ID" "$PORT_MAC" || return 1
    until [ -z "$(osc port show "$PORT" -f value -c device_id)" ]; do
        [ $SECONDS -lt $end ] || { log "port $PORT still bound to a server"; return 1; }
        sleep 2
    done
    osc port delete "$PORT" && ticks_advance "$SERVER" && net_ok "$SERVER"
}

# The running guest is added to a network of the tour's own, made for it:
# nova makes the port, which goes in as the port above did
NET2_PORT='' NET2_MAC=''
s_network_add() {
    local id
    id=$(probe show "$SERVER" id) || return 1
    osc network create "$NET2" -f value -c id >/dev/null &&
        osc subnet create --network "$NET2" --subnet-range "$NET2_CIDR" --gateway none \
            --no-dhcp "$NET2-subnet" -f value -c id >/dev/null || return 1
    osc server add network "$SERVER" "$NET2" || return 1
    read -r NET2_PORT NET2_MAC < <(osc port list --server "$id" --network "$NET2" \
                                       -f value -c ID -c 'MAC Address') &&
        [[ $NET2_MAC == *:*:*:*:*:* ]] || { log "$SERVER has no port on $NET2"; return 1; }
    log "nova's port on $NET2: $NET2_PORT $NET2_MAC"
    nic_plugged "$SERVER" "$NET2_PORT" "$NET2_MAC"
}
# Removed from the network (every port of it: the one nova made, which it
# then deletes); the network goes too, the guest runs on and answers on its
# first address
s_network_remove() {
    local end=$((SECONDS + WAIT))
    osc server remove network "$SERVER" "$NET2" &&
        nic_unplugged "$SERVER" "$NET2_PORT" "$NET2_MAC" || return 1
    while osc port show "$NET2_PORT" >/dev/null 2>&1; do
        [ $SECONDS -lt $end ] || { log "nova's port $NET2_PORT still there"; return 1; }
        sleep 2
    done
    log "nova deleted its port $NET2_PORT"
    osc network delete "$NET2" && ticks_advance "$SERVER" && net_ok "$SERVER"
}

# trigger_crash_dump (2.17): an NMI, which the guest's kernel logs (and would
# dump or panic on if told to); it takes one and runs on
s_dump() {
    osc --os-compute-api-version 2.17 server dump create "$SERVER" &&
        wait_marker "$SERVER" nmis 1 >/dev/null || return 1
    log "console: ALTDRIVER-NMI count=1"
    wait_status "$SERVER" ACTIVE && ticks_advance "$SERVER"
}

# the serial console through nova-serialproxy: its websocket carries what
# the guest prints on its ttyS0 from then on (a tick every 2 s)
s_serial_console() {
    local url line
    url=$(osc console url show --serial "$SERVER" -f value -c url) || return 1
    log "serial console at ${url%%\?*}"
    line=$(python3 "$AIO_DIR/serial_console.py" "$url" 'ALTDRIVER-TICK') || return 1
    log "serial console: $line"
}

# lock, metadata and tags: nova's API alone (the driver is not asked), on
# a running guest that goes on running; unlocked and bare again after
s_lock_metadata_tags() {
    local got
    # (tags: compute API 2.26)
    osc server lock "$SERVER" &&
        osc --os-compute-api-version 2.26 server set --property tour=yes --tag tour "$SERVER" ||
        return 1
    got=$(probe show "$SERVER" locked metadata.tour tags.0) &&
        [ "$got" = "True yes tour" ] || { log "locked, property, tag: '$got'"; return 1; }
    log "locked, property tour=yes, tag tour"
    osc server unlock "$SERVER" &&
        osc --os-compute-api-version 2.26 server unset --property tour --tag tour "$SERVER" ||
        return 1
    got=$(probe show "$SERVER" locked metadata tags) &&
        [ "$got" = "False {} []" ] || { log "unlocked, properties, tags: '$got'"; return 1; }
    ticks_advance "$SERVER"
}

# the SPICE console through nova-spicehtml5proxy: the HTML5 client's page,
# and its websocket to the guest's SPICE server, which answers a client's
# link message
s_spice_console() {
    local url out
    url=$(osc console url show --spice "$SERVER" -f value -c url) || return 1
    log "SPICE console at ${url%%\?*}"
    out=$(python3 "$AIO_DIR/spice_console.py" "$url") || return 1
    log "$out"
}

# change admin password, through the guest's QEMU agent: root's new hash
# shows on the guest's console, made of the password given
s_password() {
    local pw='Tour pass:w0rd' crypted salt
    osc server set --password "$pw" "$SERVER" &&
        crypted=$(wait_marker "$SERVER" root_password) || return 1
    salt=$(cut -d'$' -f3 <<<"$crypted")
    [ "$(openssl passwd -6 -salt "$salt" -stdin <<<"$pw")" = "$crypted" ] ||
        { log "root's hash $crypted is not that of the password given"; return 1; }
    log "console: ALTDRIVER-PASSWORD root=$crypted (the password given)"
    wait_status "$SERVER" ACTIVE
}

s_delete() {
    local id port
    id=$(probe show "$SERVER" id) &&
        port=$(osc port list --server "$id" -f value -c ID) || return 1
    osc server delete --wait "$SERVER" || return 1
    # the guest's tap left the bridge and nova deleted the port it made
    tap_left "$port" || { log "tap${port:0:11} still on $BRIDGE or on the host"; return 1; }
    osc port show "$port" >/dev/null 2>&1 && { log "port $port left behind"; return 1; }
    osc server show "$SERVER" >/dev/null 2>&1 && { log "server still there"; return 1; }
    [ -z "$(defined_on "$id")" ] ||
        { log "libvirt domain $id still defined on $(defined_on "$id")"; return 1; }
    [ -e "$STATE/instances/$id" ] && { log "instance directory $id left behind"; return 1; }
    return 0
}

# A volume made from the guest image, bootable; its data in Ceph
s_volume_from_image() {
    osc volume create --image "$IMAGE" --size 1 "$VOL_BOOT" -f value -c id &&
        wait_volume "$VOL_BOOT" available || return 1
    local bootable
    bootable=$(osc volume show "$VOL_BOOT" -f value -c bootable)
    [ "${bootable,,}" = true ] || { log "$VOL_BOOT is not bootable ($bootable)"; return 1; }
    rbd_image "$(vol_id "$VOL_BOOT")" || { log "no RBD image for $VOL_BOOT"; return 1; }
}
# s_volume_boot SERVER HOST [delete]: a server booted from VOL_BOOT (QEMU
# opens the RBD image as vda), with delete: the volume goes with the server
# (delete_on_termination); the guest's boot count goes on from the volume's
s_volume_boot() {
    local vid with=false
    [ "${3:-}" = delete ] && with=true
    vid=$(vol_id "$VOL_BOOT") || return 1
    osc server create --flavor "$FLAVOR" --network "$NETWORK" --host "$2" \
        --block-device "uuid=$vid,source_type=volume,destination_type=volume,boot_index=0,delete_on_termination=$with" \
        "$1" -f value -c id || return 1
    wait_status "$1" ACTIVE && booted "$1" "$VOL_BOOT" && net_ok "$1" || return 1
    [ "$(domain_disk "$1" "$vid")" = vda ] ||
        { log "the domain has no volumes/volume-$vid as vda"; return 1; }
    wait_console "$1" 'ALTDRIVER-SELF vda role=guest' &&
        [ "$(vol_status "$VOL_BOOT")" = in-use ]
}
# stable device rescue (compute API 2.87, an image with hw_rescue_bus and
# hw_rescue_device): the boot volume stays vda, the rescue disk boots first
# and writes to it
s_volume_rescue() {
    osc --os-compute-api-version 2.87 server rescue --image "$RESCUE_STABLE" "$VSERVER" &&
        wait_status "$VSERVER" RESCUE && wait_console "$VSERVER" 'ALTDRIVER-RESCUE-WROTE vda' &&
        wait_boot "$VSERVER" 1  # the rescue disk's own first boot
}
s_volume_unrescue() {
    osc server unrescue "$VSERVER" && wait_status "$VSERVER" ACTIVE &&
        booted "$VSERVER" "$VOL_BOOT" &&
        wait_console "$VSERVER" 'ALTDRIVER-RESCUED rescued-by-rescue-image' && net_ok "$VSERVER"
}
# a volume-backed server is offloaded at once: the guest goes, the volume
# stays reserved for it
s_volume_shelve() {
    local id st
    id=$(probe show "$VSERVER" id) || return 1
    osc server shelve "$VSERVER" && wait_status "$VSERVER" SHELVED_OFFLOADED || return 1
    [ -z "$(defined_on "$id")" ] ||
        { log "libvirt domain $id still defined on $(defined_on "$id") after offload"; return 1; }
    st=$(vol_status "$VOL_BOOT")
    case $st in
        in-use|reserved) log "$VOL_BOOT is $st" ;;
        *) log "$VOL_BOOT is $st while its server is shelved"; return 1 ;;
    esac
}
# rebuild of a volume-backed server (compute API 2.93): Cinder writes the
# image onto the boot volume again, the guest boots it afresh
s_volume_rebuild() {
    PREV_READY[$VSERVER]=$(latest "$VSERVER" ready)
    osc --os-compute-api-version 2.93 server rebuild --image "$IMAGE" \
        --reimage-boot-volume "$VSERVER" -f value -c id &&
        wait_status "$VSERVER" ACTIVE && BOOTS[$VOL_BOOT]=0 &&
        booted "$VSERVER" "$VOL_BOOT" && net_ok "$VSERVER"
}
# s_volume_server_delete SERVER: the server goes, its boot volume stays
# (delete_on_termination false) with the data on it
s_volume_server_delete() {
    local id vid
    id=$(probe show "$1" id) && vid=$(vol_id "$VOL_BOOT") || return 1
    osc server delete --wait "$1" || return 1
    [ -z "$(defined_on "$id")" ] ||
        { log "libvirt domain $id still defined on $(defined_on "$id")"; return 1; }
    [ ! -e "$STATE/instances/$id" ] || { log "instance directory $id left behind"; return 1; }
    wait_volume "$VOL_BOOT" available || return 1
    rbd_image "$vid" || { log "the RBD image of $VOL_BOOT is gone"; return 1; }
}
# s_volume_server_delete_all SERVER: the server goes, and its boot volume
# with it (delete_on_termination): in Cinder and in Ceph
s_volume_server_delete_all() {
    local id vid end=$((SECONDS + WAIT))
    id=$(probe show "$1" id) && vid=$(vol_id "$VOL_BOOT") || return 1
    osc server delete --wait "$1" || return 1
    [ -z "$(defined_on "$id")" ] ||
        { log "libvirt domain $id still defined on $(defined_on "$id")"; return 1; }
    while osc volume show "$vid" >/dev/null 2>&1 || rbd_image "$vid"; do
        [ $SECONDS -lt $end ] || { log "$VOL_BOOT ($vid) is still there"; return 1; }
        sleep 2
    done
    log "$VOL_BOOT went with its server, its RBD image too"
}
s_volume_delete() {
    local v h rc=0
    for v in $(osc volume list --name "$VOL_BOOT" -f value -c ID) \
             $(osc volume list --name "$VOL_DATA" -f value -c ID); do
        volume_delete "$v" || rc=1
    done
    # nova_altdriver removes the libvirt secrets it made once no guest uses them
    for h in "${!URI_OF[@]}"; do
        log "$h: libvirt secrets left: $(virsh -c "${URI_OF[$h]}" secret-list | awk 'NR > 2 && NF { printf "%s ", $0 }')"
    done
    return $rc
}

T0=$SECONDS
step cleanup s_cleanup
[ "${1:-}" = cleanup ] && exit $FAILED
step "image upload (guest + 2 rescue)" s_images
step "flavor create" s_flavor
step "inbound bandwidth (quota:vif_inbound_average)" s_inbound_rate
if step "server create (boot)" s_boot; then
    step "stop" s_stop "$SERVER"
    step "start" s_start "$SERVER"
    step "reboot --soft" s_reboot soft
    step "reboot --hard" s_reboot hard
    step "pause" s_pause
    step "unpause" s_unpause
    step "suspend" s_suspend
    step "resume" s_resume
    step "rescue --image" s_rescue
    step "unrescue" s_unrescue
    step "server image create" s_snapshot &&
        step "boot from snapshot" s_boot_snapshot
    step "shelve" s_shelve
    step "unshelve (from SHELVED)" s_unshelve "$SERVER"
    # OSC skips servers that are already shelved: `shelve --offload` of an
    # ACTIVE server shelves, waits for SHELVED, then offloads
    step "shelve --offload" s_shelve_offload
    step "unshelve (from SHELVED_OFFLOADED)" s_unshelve "$SERVER"
    step "rebuild" s_rebuild
    if step "resize (bigger flavor)" s_resize; then
        step "resize revert" s_resize_revert
    fi
    if step "resize (bigger flavor, again)" s_resize; then
        step "resize confirm" s_confirm "$FLAVOR_BIG"
    fi
    if step "migrate (cold)" s_migrate; then
        step "migrate confirm" s_confirm "$FLAVOR_BIG"
    fi
    # to each host once: the system libvirtd (through aio.sh's libvirt-tcp)
    # and libvirtd2 both take a guest
    step "live migrate (other host)" s_live_migrate
    step "live migrate (back)" s_live_migrate
    step "evacuate (host down)" s_evacuate "$SERVER"
    # even after a failed evacuation: the cloud gets its first host back
    step "failed host back" s_source_back "$SERVER"
    # Cinder: a blank volume hot-plugged into the running guest (now on the
    # second host), extended while attached, unplugged
    if step "server add volume (new, blank)" s_volume_attach; then
        step "volume set --size 2 (attached)" s_volume_extend
        step "server remove volume" s_volume_detach
    fi
    # neutron: a port of its own in and out of the running guest
    if step "server add port (new port)" s_port_add; then
        step "server remove port" s_port_remove
    fi
    # ... and a network of its own: nova makes the port and deletes it
    if step "server add network (new network)" s_network_add; then
        step "server remove network" s_network_remove
    fi
    step "console url show --serial" s_serial_console
    step "console url show --spice" s_spice_console
    step "server dump create (NMI)" s_dump
    step "server set --password" s_password
    step "server lock, set --property, set --tag" s_lock_metadata_tags
    step "delete" s_delete
fi
# Boot from volume: a volume made from the image, a server booted from it,
# walked through what volume-backed servers do; deleted, the volume kept and
# booted again by a new server, which is then evacuated
if step "volume create --image" s_volume_from_image; then
    if step "server create --volume" s_volume_boot "$VSERVER" "$HOST1"; then
        step "rescue (volume-backed, 2.87)" s_volume_rescue
        [ "$(osc server show "$VSERVER" -f value -c status)" = RESCUE ] &&
            step "unrescue (volume-backed)" s_volume_unrescue
        step "shelve (volume-backed: offload)" s_volume_shelve
        step "unshelve (volume-backed)" s_unshelve "$VSERVER" "$VOL_BOOT"
        step "rebuild --reimage-boot-volume (2.93)" s_volume_rebuild
        step "delete (volume kept)" s_volume_server_delete "$VSERVER"
    fi
    if step "server create --volume (deleted with it)" \
            s_volume_boot "$VSERVER2" "$HOST2" delete; then
        step "evacuate (volume-backed)" s_evacuate "$VSERVER2" "$VOL_BOOT"
        step "failed host back (volume-backed)" s_source_back "$VSERVER2"
        step "delete (the volume with it)" s_volume_server_delete_all "$VSERVER2"
    fi
fi
step "volume delete" s_volume_delete

printf '\n%-44s | %-6s | %s\n' operation result seconds
printf -- '---------------------------------------------+--------+--------\n'
for r in "${RESULTS[@]}"; do
    IFS='|' read -r n res dt <<<"$r"
    printf '%-44s | %-6s | %s\n' "$n" "$res" "$dt"
done
printf 'tour: %d s, %s\n' $((SECONDS - T0)) "$([ $FAILED = 0 ] && echo 'all steps passed' || echo 'FAILURES')"
exit $FAILED
