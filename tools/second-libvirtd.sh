#!/bin/bash
# A second libvirt host on this machine, for evacuation and migration tests:
# libvirtd and virtlogd in a private mount namespace with their own state,
# config and socket. Guests of both daemons see the same /tmp and instances
# paths.
#
#   second-libvirtd.sh start DIR [ADDR [HOSTNAME]]
#                                        prints the URI of the new daemon
#   second-libvirtd.sh stop DIR          stops the daemons started in DIR
#   second-libvirtd.sh remove DIR        destroys and undefines its guests,
#                                        stops the daemons, removes DIR
#
# With ADDR (a loopback address such as 127.0.0.2) the daemon also accepts
# other libvirt daemons' and nova-computes' connections for migrations at
# qemu+tcp://ADDR/system - unauthenticated, which is for tests on loopback
# only (doc/source/operations.rst says what production uses: TLS) - and
# takes incoming migrations and block-migration NBD servers on ADDR, from a
# port range of its own (daemons on one machine share the ports), as its
# guests' VNC servers do (on the address nova's [vnc] server_listen names). With
# HOSTNAME, the daemon runs in a UTS namespace of that host name, which
# libvirt reports as the host's (nova's in-tree driver names its node so).
# ALTDRIVER_DISPLAY_PORTS="FIRST COUNT" gives the guests' VNC and SPICE
# servers a range of their own instead (the all-in-one's second host, which
# may hold many guests).
set -euo pipefail
source "$(dirname "$0")/common.sh"

cmd=${1:?start or stop}
dir=${2:?state directory}
addr=${3:-}
hostname=${4:-}
uri="qemu+unix:///system?socket=$dir/run/libvirt-sock"

case $cmd in
start)
    mkdir -p "$dir"/{run,lib,cache,log,etc/qemu}
    # The system daemon's configuration but not its domains: this host keeps
    # its own definitions (etc/qemu) across restarts.
    find /etc/libvirt -maxdepth 1 -type f -exec cp -f {} "$dir/etc/" \;
    [ ! -d /etc/libvirt/nwfilter ] || cp -a /etc/libvirt/nwfilter "$dir/etc/"
    # Distinct, stable host identity: libvirt refuses two daemons with one
    # UUID talking to each other, and nova tells hosts apart by it.
    [ -s "$dir/host_uuid" ] || cat /proc/sys/kernel/random/uuid >"$dir/host_uuid"
    echo "host_uuid = \"$(cat "$dir/host_uuid")\"" >>"$dir/etc/libvirtd.conf"
    listen=
    # Guests' VNC and SPICE servers, clear of the system daemon's (5900 up)
    # and of Ceph's 6800-7300: each daemon only knows its own ports (it
    # probes a port when it picks it, but QEMU binds it later: two daemons
    # starting guests at once could pick the same one). Daemons without an
    # address share 7920-7999 (one test's hosts; an address's own range
    # below ends at 7911).
    display=7920 display_count=80
    if [ -n "$addr" ]; then
        [[ $addr == 127.* ]] || die "listen address $addr is not loopback"
        listen=--listen
        sed -i '/^\s*\(listen_\|auth_tcp\|tcp_port\)/d' "$dir/etc/libvirtd.conf"
        printf '%s\n' 'listen_tls = 0' 'listen_tcp = 1' 'auth_tcp = "none"' \
            "listen_addr = \"$addr\"" >>"$dir/etc/libvirtd.conf"
        # 64 ports per address, from the last octet: 127.0.0.2 -> 49280
        first=$((49152 + 64 * (${addr##*.} % 16)))
        sed -i '/^\s*migration_\(address\|host\|port_min\|port_max\)/d' \
            "$dir/etc/qemu.conf"
        printf '%s\n' "migration_address = \"$addr\"" \
            "migration_host = \"$addr\"" "migration_port_min = $first" \
            "migration_port_max = $((first + 63))" >>"$dir/etc/qemu.conf"
        # guests' VNC and SPICE servers: 32 ports of this address's own,
        # from the last octet: 127.0.0.4 -> 7528
        display=$((7400 + 32 * (${addr##*.} % 16))) display_count=32
    fi
    [ -z "${ALTDRIVER_DISPLAY_PORTS:-}" ] || read -r display display_count <<<"$ALTDRIVER_DISPLAY_PORTS"
    sed -i '/^\s*remote_display_port_\(min\|max\)/d' "$dir/etc/qemu.conf"
    printf '%s\n' "remote_display_port_min = $display" \
        "remote_display_port_max = $((display + display_count - 1))" \
        >>"$dir/etc/qemu.conf"
    uts=
    [ -z "$hostname" ] || uts="-u"
    unshare -m $uts --propagation private bash -c "
        set -e
        [ -z '$hostname' ] || hostname '$hostname'
        mount --bind '$dir/run' /run/libvirt
        mount --bind '$dir/lib' /var/lib/libvirt
        mount --bind '$dir/cache' /var/cache/libvirt
        mount --bind '$dir/log' /var/log/libvirt
        mount --bind '$dir/etc' /etc/libvirt
        virtlogd -d -p '$dir/virtlogd.pid'
        libvirtd -d $listen -p '$dir/libvirtd.pid'
    "
    for _ in $(seq 1 120); do
        virsh -c "$uri" version >/dev/null 2>&1 && { echo "$uri"; exit 0; }
        sleep 0.5
    done
    die "the second libvirtd in $dir did not answer"
    ;;
stop)
    for d in libvirtd virtlogd; do
        [ -f "$dir/$d.pid" ] && kill "$(cat "$dir/$d.pid")" 2>/dev/null || true
    done
    for d in libvirtd virtlogd; do
        for _ in $(seq 1 50); do
            [ -f "$dir/$d.pid" ] && kill -0 "$(cat "$dir/$d.pid" 2>/dev/null)" 2>/dev/null \
                || break
            sleep 0.2
        done
    done
    ;;
remove)
    # The guests first: a stopped libvirtd leaves its QEMUs running. One
    # that stays, or a daemon that cannot list them, fails the removal,
    # once the daemon is stopped and DIR removed all the same.
    if uuids=$(virsh -c "$uri" list --all --uuid 2>&1); then
        for uuid in $uuids; do
            # (destroy fails for a guest that is not running: nothing to do)
            virsh -c "$uri" destroy "$uuid" >/dev/null 2>&1 || true
            virsh -c "$uri" undefine --managed-save --nvram "$uuid" >/dev/null 2>&1 || true
        done
        left=$(virsh -c "$uri" list --all --uuid 2>&1 | xargs) || true
    else
        left="cannot list them: $uuids"
    fi
    "$0" stop "$dir"
    rm -rf "$dir" 2>/dev/null || left="$left (and $dir stays)"
    [ -z "$left" ] || die "guests of the libvirtd in $dir not removed: $left"
    ;;
*) die "usage: $0 start|stop|remove DIR" ;;
esac
