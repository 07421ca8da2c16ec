#!/bin/bash
# A real one-node Ceph cluster (Debian 12's ceph 16.2, pacific) for Cinder
# volumes on RBD. QEMU opens them with its userspace rbd driver
# (qemu-block-extra): no kernel RBD, LVM, iSCSI or NBD is needed.
#
#   ceph.sh up      install, create the cluster the first time, start what is
#                   not running, wait for HEALTH_OK (idempotent)
#   ceph.sh status  one line per daemon, then `ceph -s`
#   ceph.sh down    stop the daemons by PID; the data stays
#   ceph.sh purge   down, then remove the cluster and the files we put in
#                   /etc/ceph (for a fresh set-up)
#
# One mon (a), one mgr (x) and one BlueStore OSD (0) on a sparse file, run as
# root without systemd, the way Ceph's vstart.sh makes developer clusters.
# Each daemon forks and writes its pid file under RUN; that PID is signalled
# only while its command line is still that daemon's on our configuration.
# Pools volumes, images and vms (one copy each, application rbd); the client
# client.cinder. Clients use /etc/ceph/ceph.conf and the keyrings beside it.
# Everything else (configuration, keys, data, logs) lives under CEPH_STATE
# (default /var/lib/nova-altdriver-ceph). Configuration templates: etc/.
# See shared/design/ceph-single-node.md for the why of each setting.
set -euo pipefail
source "$(dirname "$0")/../common.sh"

CEPH_TOOLS=$ALTDRIVER_TOP/tools/ceph
STATE=${CEPH_STATE:-/var/lib/nova-altdriver-ceph}
DATA=$STATE/data
LOGS=$STATE/log
RUN=$STATE/run
KEYS=$STATE/keys
CONF=$STATE/ceph.conf
ETC_CEPH=${CEPH_ETC:-/etc/ceph}
# The OSD's sparse block file, in bytes (only read when the OSD is made).
OSD_SIZE=${CEPH_OSD_SIZE:-8589934592}
MON_ADDRS='[v2:127.0.0.1:3300,v1:127.0.0.1:6789]'
DAEMONS=(mon.a mgr.x osd.0)          # start order
POOLS=(volumes images vms)
PG_NUM=8
CINDER_CAPS=(mon 'profile rbd'
             osd 'profile rbd pool=volumes, profile rbd pool=vms, profile rbd-read-only pool=images'
             mgr 'profile rbd pool=volumes, profile rbd pool=vms')
# mgr modules never imported (leaving out an always-on one would be HEALTH_ERR)
MGR_DISABLED=(alerts diskprediction_local influx insights localpool mirroring nfs
              osd_support prometheus restful selftest snap_schedule stats telegraf
              test_orchestrator zabbix)
PACKAGES=(ceph-mon ceph-mgr ceph-osd ceph-common python3-rados python3-rbd
          qemu-block-extra jq)
MARK='# written by nova-altdriver tools/ceph/ceph.sh'

# ceph_ ARGS...: the ceph CLI as client.admin on our configuration
ceph_() {
    ceph -c "$CONF" -n client.admin -k "$KEYS/client.admin.keyring" \
        --connect-timeout "${CONNECT_TIMEOUT:-30}" "$@"
}

# ---------------------------------------------------------------- processes
pid_of() {  # pid_of DAEMON (mon.a, mgr.x, osd.0): its PID if it runs
    local pid cmd
    pid=$(cat "$RUN/$1.pid" 2>/dev/null) || return 1
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    # the PID must still be that daemon on this cluster (PIDs are reused)
    cmd=$(tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline") || return 1
    [[ $cmd == *"ceph-${1%%.*} -c $CONF -i ${1#*.} "* ]] || return 1
    echo "$pid"
}

quiet() {  # quiet CMD...: its output to log/setup.log, shown if it fails
    "$@" >>"$LOGS/setup.log" 2>&1 \
        || { tail -5 "$LOGS/setup.log" >&2; die "failed: $* (log: $LOGS/setup.log)"; }
}

died() {  # died DAEMON: its log's tail, and the end
    tail -20 "$LOGS/$1.log" "$LOGS/$1.out" >&2 2>/dev/null || true
    die "$1 is not running (log: $LOGS/$1.log)"
}

start_daemon() {  # start_daemon DAEMON: unless running; it forks by itself
    local name=$1 i
    pid_of "$name" >/dev/null && return 0
    rm -f "$RUN/$name.pid"
    log "starting $name"
    # own session, lowest CPU priority: the cloud on this machine comes first
    setsid -w nice -n 19 "ceph-${name%%.*}" -c "$CONF" -i "${name#*.}" \
        >>"$LOGS/$name.out" 2>&1 </dev/null || died "$name"
    for ((i = 0; i < 100; i++)); do  # the mgr writes its pid file after forking
        pid_of "$name" >/dev/null && return 0
        sleep 0.1
    done
    died "$name"
}

stop_daemon() {
    local name=$1 pid i
    pid=$(pid_of "$name") || { rm -f "$RUN/$name.pid"; return 0; }
    log "stopping $name (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < ${STOP_WAIT:-30} * 5; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.2
    done
    if kill -0 "$pid" 2>/dev/null; then
        log "$name did not exit within ${STOP_WAIT:-30} s: killing pid $pid"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$RUN/$name.pid"
}

# ---------------------------------------------------------------- install
install_ceph_packages() {
    install_packages "${PACKAGES[@]}"
    # QEMU loads block-rbd.so only from its own exact build
    local q b
    q=$(dpkg-query -W -f='${Version}' qemu-system-x86 2>/dev/null || true)
    b=$(dpkg-query -W -f='${Version}' qemu-block-extra)
    [ -z "$q" ] || [ "$q" = "$b" ] \
        || log "WARNING: qemu-block-extra $b differs from qemu-system-x86 $q: QEMU will not open rbd: disks"
}

# ---------------------------------------------------------------- config
# render TEMPLATE FILE: FILE from tools/ceph/etc/TEMPLATE.in (the project's
# render.py: ${NAME} from these variables, @include)
render() {
    local MGR_DISABLED_MODULES=${MGR_DISABLED[*]}
    (export STATE DATA LOGS RUN FSID OSD_SIZE MGR_DISABLED_MODULES
     exec "$PYTHON" "$ALTDRIVER_TOP/tools/aio/render.py" "$CEPH_TOOLS/etc/$1.in" "$2.tmp")
    mv -f "$2.tmp" "$2"
}

ours() {  # ours FILE: FILE is absent, or one we wrote
    [ ! -e "$1" ] || grep -qxF "$MARK" "$1"
}

make_keys() {  # the cluster's identity and first keys, once
    mkdir -p "$KEYS" "$DATA" "$LOGS" "$RUN" "$STATE/crash"
    chmod 700 "$KEYS"
    [ -s "$STATE/fsid" ] || cat /proc/sys/kernel/random/uuid >"$STATE/fsid"
    [ -s "$KEYS/osd.0.uuid" ] || cat /proc/sys/kernel/random/uuid >"$KEYS/osd.0.uuid"
    FSID=$(cat "$STATE/fsid")
    local admin=$KEYS/client.admin.keyring mon=$KEYS/mon.keyring
    if [ ! -s "$admin" ]; then
        ceph-authtool --create-keyring "$admin.tmp" --gen-key -n client.admin \
            --cap mon 'allow *' --cap osd 'allow *' --cap mds 'allow *' \
            --cap mgr 'allow *' >/dev/null
        mv "$admin.tmp" "$admin"
    fi
    if [ ! -s "$mon" ]; then
        ceph-authtool --create-keyring "$mon.tmp" --gen-key -n mon. \
            --cap mon 'allow *' >/dev/null
        ceph-authtool "$mon.tmp" --import-keyring "$admin" >/dev/null
        mv "$mon.tmp" "$mon"
    fi
}

write_configs() {
    render cluster.conf "$CONF"
    ceph-conf -c "$CONF" --lookup fsid >/dev/null || die "$CONF does not parse"
    mkdir -p "$ETC_CEPH"
    ours "$ETC_CEPH/ceph.conf" \
        || die "$ETC_CEPH/ceph.conf is not ours (no '$MARK' line): move it away first"
    render ceph.conf "$ETC_CEPH/ceph.conf"
    install -m 600 "$KEYS/client.admin.keyring" "$ETC_CEPH/ceph.client.admin.keyring"
}

# Debian's rados and rbd modules (one .so each), alone in a directory that a
# .pth file can name for another Python 3.11 (all of dist-packages would
# bring Debian's requests, urllib3...)
python_dir() {
    local so
    mkdir -p "$STATE/python"
    for so in /usr/lib/python3/dist-packages/{rados,rbd}.cpython-*.so; do
        ln -sfn "$so" "$STATE/python/"
    done
}

# ---------------------------------------------------------------- create
create_mon() {
    [ -e "$DATA/mon.a/.created" ] && return 0
    log "creating mon.a (fsid $FSID)"
    rm -rf "$DATA/mon.a"
    monmaptool --create --clobber --fsid "$FSID" --addv a "$MON_ADDRS" "$STATE/monmap" \
        >/dev/null
    ceph-mon -c "$CONF" --mkfs -i a --monmap "$STATE/monmap" \
        --keyring "$KEYS/mon.keyring" >>"$LOGS/mkfs.log" 2>&1 \
        || { tail -20 "$LOGS/mkfs.log" >&2; die "mon.a mkfs failed (log: $LOGS/mkfs.log)"; }
    rm -f "$STATE/monmap"
    touch "$DATA/mon.a/.created"
}

wait_mon() {  # until the mon answers commands
    local t0=$SECONDS err
    until err=$(CONNECT_TIMEOUT=5 ceph_ mon stat 2>&1 >/dev/null); do
        pid_of mon.a >/dev/null || died mon.a
        ((SECONDS - t0 < 60)) \
            || die "mon.a does not answer after 60 s ($err; log: $LOGS/mon.a.log)"
        sleep 0.5
    done
}

create_mgr() {
    [ -s "$DATA/mgr.x/keyring" ] && return 0
    log "creating mgr.x"
    mkdir -p "$DATA/mgr.x"
    quiet ceph_ auth get-or-create mgr.x mon 'allow profile mgr' osd 'allow *' \
        mds 'allow *' -o "$DATA/mgr.x/keyring.tmp"
    mv "$DATA/mgr.x/keyring.tmp" "$DATA/mgr.x/keyring"
}

create_osd() {
    [ -s "$DATA/osd.0/keyring" ] && return 0
    # uuid and key survive a failed attempt: `ceph osd new` is idempotent
    # only for the same pair
    [ -s "$KEYS/osd.0.secret" ] || (umask 077; ceph-authtool --gen-print-key >"$KEYS/osd.0.secret")
    local uuid secret id
    uuid=$(cat "$KEYS/osd.0.uuid")
    secret=$(cat "$KEYS/osd.0.secret")
    log "creating osd.0 (BlueStore, sparse $((OSD_SIZE >> 20)) MiB file)"
    id=$(printf '{"cephx_secret": "%s"}' "$secret" \
        | ceph_ osd new "$uuid" -i - 2>>"$LOGS/setup.log") \
        || die "ceph osd new failed (log: $LOGS/setup.log)"
    [ "$id" = 0 ] || die "ceph osd new gave osd id '$id', not 0"
    rm -rf "$DATA/osd.0"
    mkdir -p "$DATA/osd.0"
    ceph-osd -c "$CONF" -i 0 --mkfs --key "$secret" --osd-uuid "$uuid" \
        >>"$LOGS/mkfs.log" 2>&1 \
        || { tail -20 "$LOGS/mkfs.log" >&2; die "osd.0 mkfs failed (log: $LOGS/mkfs.log)"; }
    # mkfs keeps the key only in the BlueStore label: the OSD needs a keyring
    ceph-authtool --create-keyring "$DATA/osd.0/keyring.tmp" --name osd.0 \
        --add-key "$secret" >/dev/null
    mv "$DATA/osd.0/keyring.tmp" "$DATA/osd.0/keyring"
    rm -f "$KEYS/osd.0.secret"
}

wait_osd_up() {
    local t0=$SECONDS
    until ceph_ osd dump 2>/dev/null | grep -E '^osd\.0 up +in ' >/dev/null; do
        pid_of osd.0 >/dev/null || died osd.0
        ((SECONDS - t0 < 120)) || die "osd.0 is not up and in after 120 s (log: $LOGS/osd.0.log)"
        sleep 0.5
    done
}

create_pools() {  # the missing pools, for RBD
    local have p new=()
    have=$(ceph_ osd pool ls)
    for p in "${POOLS[@]}"; do
        grep -qxF "$p" <<<"$have" || new+=("$p")
    done
    ((${#new[@]})) || return 0
    log "creating pools ${new[*]} ($PG_NUM PGs each, one copy)"
    # in parallel: the mon commits the changes of one second together
    each "${new[@]}" -- ceph_ osd pool create @ "$PG_NUM" "$PG_NUM" replicated
    # application rbd, and a check that the pool takes RBD's snapshots
    each "${new[@]}" -- rbd -c "$CONF" -n client.admin -k "$KEYS/client.admin.keyring" \
        pool init @
}

each() {  # each ARG... -- CMD...: CMD (quiet) once per ARG in place of @, in parallel
    local args=() a pids=() pid rc=0
    while [ "$1" != -- ]; do args+=("$1"); shift; done
    shift
    for a in "${args[@]}"; do
        quiet "${@/#@/$a}" &
        pids+=($!)
    done
    for pid in "${pids[@]}"; do wait "$pid" || rc=1; done
    return $rc
}

create_clients() {
    local k=$KEYS/client.cinder.keyring
    if [ ! -s "$k" ]; then
        log "creating client.cinder"
        quiet ceph_ auth get-or-create client.cinder "${CINDER_CAPS[@]}" -o "$k.tmp"
        chmod 600 "$k.tmp"
        mv "$k.tmp" "$k"
    fi
    install -m 600 "$k" "$ETC_CEPH/ceph.client.cinder.keyring"
}

# health OK, the mgr active, osd.0 up and in, every PG active+clean
# shellcheck disable=SC2016  # jq, not shell
HEALTHY='(.osdmap.osdmap // .osdmap) as $o
    | .health.status == "HEALTH_OK" and .mgrmap.available
      and $o.num_up_osds == 1 and $o.num_in_osds == 1 and .pgmap.num_pgs > 0
      and ([.pgmap.pgs_by_state[] | select(.state_name == "active+clean")
            | .count] | add) == .pgmap.num_pgs'

wait_healthy() {  # wait_healthy SECONDS
    local t0=$SECONDS d
    until ceph_ status -f json 2>/dev/null | jq -e "$HEALTHY" >/dev/null 2>&1; do
        for d in "${DAEMONS[@]}"; do pid_of "$d" >/dev/null || died "$d"; done
        if ((SECONDS - t0 >= $1)); then
            ceph_ health detail >&2 || true
            die "the cluster is not healthy after $1 s"
        fi
        sleep 1
    done
}

# ---------------------------------------------------------------- commands
cmd_up() {
    local t0=$SECONDS
    install_ceph_packages
    make_keys
    write_configs
    python_dir
    create_mon
    start_daemon mon.a
    wait_mon
    create_mgr
    start_daemon mgr.x
    create_osd
    start_daemon osd.0
    if [ ! -e "$STATE/.created" ]; then
        wait_osd_up
        create_pools
        create_clients
        touch "$STATE/.created"
    else
        install -m 600 "$KEYS/client.cinder.keyring" "$ETC_CEPH/ceph.client.cinder.keyring"
    fi
    wait_healthy 300
    log "ceph up in $((SECONDS - t0)) s: pools ${POOLS[*]}, client.cinder," \
        "$ETC_CEPH/ceph.conf"
}

cmd_down() {  # the OSD and the mgr together, then the mon they report to
    stop_daemon osd.0 &
    stop_daemon mgr.x &
    wait
    stop_daemon mon.a
}

cmd_status() {
    local d pid rc=0
    printf '%-6s %-8s %-8s %s\n' daemon pid rss_MiB state
    for d in "${DAEMONS[@]}"; do
        if pid=$(pid_of "$d"); then
            printf '%-6s %-8s %-8s %s\n' "$d" "$pid" \
                "$(($(ps -o rss= -p "$pid") / 1024))" running
        else
            printf '%-6s %-8s %-8s %s\n' "$d" - - "NOT RUNNING"
            rc=1
        fi
    done
    if pid_of mon.a >/dev/null; then
        CONNECT_TIMEOUT=10 ceph_ -s || rc=1
    fi
    return $rc
}

cmd_purge() {
    [[ $STATE == /?*/?* ]] || die "CEPH_STATE=$STATE looks wrong: not removing it"
    cmd_down
    local c
    ! grep -qxF "$MARK" "$ETC_CEPH/ceph.conf" 2>/dev/null || rm -f "$ETC_CEPH/ceph.conf"
    for c in admin cinder; do
        if cmp -s "$KEYS/client.$c.keyring" "$ETC_CEPH/ceph.client.$c.keyring"; then
            rm -f "$ETC_CEPH/ceph.client.$c.keyring"
        fi
    done
    log "removing $STATE"
    rm -rf "$STATE"
}

case ${1:-} in
    up) cmd_up ;;
    down) cmd_down ;;
    status) cmd_status ;;
    purge) cmd_purge ;;
    *) echo "usage: $0 up|status|down|purge" >&2; exit 2 ;;
esac
