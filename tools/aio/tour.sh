#!/bin/bash
# A tour of the all-in-one cloud with the openstack CLI (run through
# `aio.sh tour`): the test guest is booted and walked through the server
# operations; every step is checked by the server's status and by marker lines
# the guest prints on its serial console (tools/guest-image/README.md).
# Prints a table `operation | result | seconds`; exits non-zero if a step failed.
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
SERVER=$P-server
SNAP=$P-snapshot
SERVER2=$P-from-snapshot
WAIT=${TOUR_WAIT:-240}
# NETWORK (aio.sh makes it; the host holds its gateway address) and BRIDGE
source "$(dirname "$0")/network.sh"

osc() { openstack --os-cloud "$CLOUD" "$@"; }

# the compute hosts (aio.sh writes them): host -> nova-compute service, libvirt URI
declare -A SERVICE_OF URI_OF
while read -r h svc uri; do SERVICE_OF[$h]=$svc URI_OF[$h]=$uri; done <"$STATE/computes"
HOST1=aio-compute
host_of() { osc server show "$1" -f value -c OS-EXT-SRV-ATTR:host; }
# defined_on SERVER_ID: the hosts whose libvirtd has a domain for the server
defined_on() {
    local h
    for h in "${!URI_OF[@]}"; do
        virsh -c "${URI_OF[$h]}" list --all --uuid | grep -qx "$1" && echo "$h"
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
    local s=$1 want=$2 end=$((SECONDS + WAIT)) out st task
    while [ $SECONDS -lt $end ]; do
        out=$(osc server show "$s" -f value -c status -c OS-EXT-STS:task_state 2>&1) || {
            log "server show: $out"; sleep 2; continue; }
        # -f value prints the columns sorted: task_state, then status
        task=$(sed -n 1p <<<"$out"); st=$(sed -n 2p <<<"$out")
        if [ "$st" = ERROR ]; then
            log "$s went to ERROR: $(osc server show "$s" -f value -c fault)"
            return 1
        fi
        [ "$st" = "$want" ] && [ "$task" = None ] && { log "$s is $st"; return 0; }
        sleep 1
    done
    log "$s: still status=$st task=$task after $WAIT s (wanted $want)"
    return 1
}

console() { osc console log show "$1" 2>/dev/null | tr -d '\r'; }
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

# wait_boot SERVER N: a new ALTDRIVER-READY line (unlike PREV_READY) with bootcount N
PREV_READY=
wait_boot() {
    local end=$((SECONDS + WAIT)) line count
    while [ $SECONDS -lt $end ]; do
        { read -r line; read -r count; } < <(latest "$1" ready bootcount)
        if [ -n "$line" ] && [ "$line" != "$PREV_READY" ]; then
            PREV_READY=$line
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
    ip=$(osc server show "$1" -f json -c addresses | python3 -c \
        'import json, sys; print(json.load(sys.stdin)["addresses"][sys.argv[1]][0])' "$NETWORK") ||
        { log "$1 has no address on $NETWORK"; return 1; }
    configured=$(latest "$1" net_ip)
    [ "$configured" = "$ip" ] ||
        { log "the guest's last boot configured '${configured:-nothing}', neutron says $ip"; return 1; }
    for ((i = 0; i < 15; i++)); do
        ping -c 1 -W 2 "$ip" >/dev/null && { log "guest answers ping at $ip"; return 0; }
    done
    log "no answer to ping from $ip"; return 1
}

BOOTS=0
# ------------------------------------------------------------------ steps
s_cleanup() {
    local s
    for s in $SERVER $SERVER2; do
        osc server show "$s" >/dev/null 2>&1 && osc server delete --wait "$s"
    done
    for s in $IMAGE $RESCUE $SNAP; do
        while osc image show "$s" >/dev/null 2>&1; do osc image delete "$s" || break; done
    done
    return 0
}

s_images() {
    local dir
    dir=$(bash "$ALTDRIVER_TOP/tools/guest-image/build.sh") || return 1
    osc image create --disk-format qcow2 --container-format bare --public \
        --file "$dir/disk.qcow2" "$IMAGE" -f value -c id &&
    osc image create --disk-format qcow2 --container-format bare --public \
        --file "$dir/rescue.qcow2" "$RESCUE" -f value -c id
}

s_flavor() {
    osc flavor show "$FLAVOR" >/dev/null 2>&1 ||
        osc flavor create --ram 256 --vcpus 1 --disk 1 "$FLAVOR" -f value -c id
}

s_boot() {
    osc server create --flavor "$FLAVOR" --image "$IMAGE" --network "$NETWORK" \
        --host "$HOST1" "$SERVER" -f value -c id || return 1
    wait_status "$SERVER" ACTIVE && BOOTS=1 && wait_boot "$SERVER" 1 && net_ok "$SERVER"
}

s_stop() {
    osc server stop "$SERVER" && wait_status "$SERVER" SHUTOFF &&
        wait_console "$SERVER" 'ALTDRIVER-ACPI-POWER'
}
s_start() {
    osc server start "$SERVER" && wait_status "$SERVER" ACTIVE &&
        BOOTS=$((BOOTS + 1)) && wait_boot "$SERVER" $BOOTS
}
s_reboot() {  # soft|hard
    osc server reboot "--$1" "$SERVER" && wait_status "$SERVER" ACTIVE &&
        BOOTS=$((BOOTS + 1)) && wait_boot "$SERVER" $BOOTS && net_ok "$SERVER"
}
s_pause() { osc server pause "$SERVER" && wait_status "$SERVER" PAUSED && ticks_frozen "$SERVER"; }
s_unpause() { osc server unpause "$SERVER" && wait_status "$SERVER" ACTIVE && ticks_advance "$SERVER"; }
s_suspend() { osc server suspend "$SERVER" && wait_status "$SERVER" SUSPENDED; }
s_resume() {
    osc server resume "$SERVER" && wait_status "$SERVER" ACTIVE && ticks_advance "$SERVER" &&
        [ "$(latest "$SERVER" ready)" = "$PREV_READY" ] ||
        { log "resume rebooted the guest or the guest does not run"; return 1; }
}
s_rescue() {
    osc server rescue --image "$RESCUE" "$SERVER" && wait_status "$SERVER" RESCUE &&
        wait_console "$SERVER" 'ALTDRIVER-RESCUE-WROTE vdb' &&
        wait_boot "$SERVER" 1  # the rescue disk's own first boot
}
s_unrescue() {
    osc server unrescue "$SERVER" && wait_status "$SERVER" ACTIVE &&
        BOOTS=$((BOOTS + 1)) && wait_boot "$SERVER" $BOOTS &&
        wait_console "$SERVER" 'ALTDRIVER-RESCUED rescued-by-rescue-image' && net_ok "$SERVER"
}
s_snapshot() {
    osc server image create --name "$SNAP" --wait "$SERVER" -f value -c id &&
        [ "$(osc image show "$SNAP" -f value -c status)" = active ]
}
s_boot_snapshot() {
    osc server create --flavor "$FLAVOR" --image "$SNAP" --nic none "$SERVER2" \
        -f value -c id || return 1
    local save=$PREV_READY rc
    PREV_READY=
    # the snapshot carries the boot count of the first server on
    wait_status "$SERVER2" ACTIVE && wait_boot "$SERVER2" $((BOOTS + 1)) &&
        osc server delete --wait "$SERVER2"
    rc=$?
    PREV_READY=$save
    return $rc
}
s_shelve() {
    local host id
    host=$(host_of "$SERVER") && id=$(osc server show "$SERVER" -f value -c id) || return 1
    osc server shelve "$SERVER" && wait_status "$SERVER" SHELVED || return 1
    virsh -c "${URI_OF[$host]}" domstate "$id" 2>&1 | grep -q running &&
        { log "guest still running on $host after shelve"; return 1; }
    return 0
}
s_shelve_offload() {
    local id
    id=$(osc server show "$SERVER" -f value -c id) || return 1
    osc server shelve --offload "$SERVER" && wait_status "$SERVER" SHELVED_OFFLOADED || return 1
    [ -z "$(defined_on "$id")" ] ||
        { log "libvirt domain $id still defined on $(defined_on "$id") after offload"; return 1; }
    return 0
}
s_unshelve() {
    osc server unshelve "$SERVER" && wait_status "$SERVER" ACTIVE &&
        BOOTS=$((BOOTS + 1)) && wait_boot "$SERVER" $BOOTS && net_ok "$SERVER"
}
s_rebuild() {
    PREV_READY=$(latest "$SERVER" ready)
    osc server rebuild --image "$IMAGE" "$SERVER" -f value -c id && wait_status "$SERVER" ACTIVE &&
        BOOTS=1 && wait_boot "$SERVER" 1 && net_ok "$SERVER"
}
# The server's host fails: its nova-compute dies, the guest stops, the domain
# stays defined (as after a power loss); an admin forces the service down
# and evacuates. Since compute API 2.95 the server arrives stopped; started,
# the guest boots its own disk from the shared instances directory on the
# other host: the boot counter goes on.
s_evacuate() {
    local id src dst h
    id=$(osc server show "$SERVER" -f value -c id) && src=$(host_of "$SERVER") || return 1
    for h in "${!URI_OF[@]}"; do [ "$h" != "$src" ] && dst=$h; done
    EVAC_SRC=$src EVAC_ID=$id
    bash "$ALTDRIVER_TOP/tools/aio/aio.sh" kill "${SERVICE_OF[$src]}" &&
        virsh -c "${URI_OF[$src]}" destroy "$id" >/dev/null &&
        osc compute service set --down "$src" nova-compute || return 1
    osc server evacuate --host "$dst" "$SERVER" -f value -c id && wait_status "$SERVER" SHUTOFF &&
        [ "$(host_of "$SERVER")" = "$dst" ] || { log "server not on $dst"; return 1; }
    s_start && net_ok "$SERVER"
}
# The failed host comes back: nova-compute removes the stale domain of the
# evacuated server and keeps its disk and its network device, which the other
# host now uses.
s_source_back() {
    local src=$EVAC_SRC id=$EVAC_ID end=$((SECONDS + WAIT))
    bash "$ALTDRIVER_TOP/tools/aio/aio.sh" up || return 1
    while defined_on "$id" | grep -qx "$src"; do
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
    [ -f "$STATE/instances/$id/disk" ] || { log "the disk of $id is gone"; return 1; }
    wait_status "$SERVER" ACTIVE && ticks_advance "$SERVER" && net_ok "$SERVER"
}
s_delete() {
    local id port
    id=$(osc server show "$SERVER" -f value -c id) &&
        port=$(osc port list --server "$id" -f value -c ID) || return 1
    osc server delete --wait "$SERVER" || return 1
    # the guest's tap left the bridge and nova deleted the port it made
    ovs-vsctl list-ports "$BRIDGE" | grep -q "^tap${port:0:11}$" &&
        { log "tap${port:0:11} still on $BRIDGE"; return 1; }
    [ -e "/sys/class/net/tap${port:0:11}" ] && { log "tap${port:0:11} still exists"; return 1; }
    osc port show "$port" >/dev/null 2>&1 && { log "port $port left behind"; return 1; }
    osc server show "$SERVER" >/dev/null 2>&1 && { log "server still there"; return 1; }
    [ -z "$(defined_on "$id")" ] ||
        { log "libvirt domain $id still defined on $(defined_on "$id")"; return 1; }
    [ -e "$STATE/instances/$id" ] && { log "instance directory $id left behind"; return 1; }
    return 0
}

T0=$SECONDS
step cleanup s_cleanup
[ "${1:-}" = cleanup ] && exit $FAILED
step "image upload (guest + rescue)" s_images
step "flavor create" s_flavor
if step "server create (boot)" s_boot; then
    step "stop" s_stop
    step "start" s_start
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
    step "unshelve (from SHELVED)" s_unshelve
    # OSC skips servers that are already shelved: `shelve --offload` of an
    # ACTIVE server shelves, waits for SHELVED, then offloads
    step "shelve --offload" s_shelve_offload
    step "unshelve (from SHELVED_OFFLOADED)" s_unshelve
    step "rebuild" s_rebuild
    step "evacuate (host down)" s_evacuate
    # even after a failed evacuation: the cloud gets its first host back
    step "failed host back" s_source_back
    step "delete" s_delete
fi

printf '\n%-34s | %-6s | %s\n' operation result seconds
printf -- '-----------------------------------+--------+--------\n'
for r in "${RESULTS[@]}"; do
    IFS='|' read -r n res dt <<<"$r"
    printf '%-34s | %-6s | %s\n' "$n" "$res" "$dt"
done
printf 'tour: %d s, %s\n' $((SECONDS - T0)) "$([ $FAILED = 0 ] && echo 'all steps passed' || echo 'FAILURES')"
exit $FAILED
