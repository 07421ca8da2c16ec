# shellcheck shell=bash
# Networking of the all-in-one (sourced by aio.sh): Open vSwitch with the
# userspace datapath, the ML2 mechanism driver in ml2/ that binds every port
# to its bridge, and the neutron network servers boot on.
#
# OVS keeps its default sockets (/run/openvswitch): libvirt plugs guest taps
# with a plain `ovs-vsctl`, for both compute hosts (libvirtd2's private mount
# namespace shares /run/openvswitch). The database lives in the state
# directory. The host side of the bridge holds the subnet's gateway address,
# so the host reaches every guest through the bridge.

OVS_DIR=$STATE/ovs
OVS_DB_SOCK=/run/openvswitch/db.sock
BRIDGE=br-int
NETWORK=aio-net
SUBNET_CIDR=${AIO_SUBNET:-10.99.0.0/24}
GATEWAY=${SUBNET_CIDR%.*}.1

install_ml2_driver() {  # into the cloud's environment, again when it changed
    local src=$AIO_DIR/ml2 key stamp=$VENV/.altdriver-aio-ml2
    key=$(content_hash "$src/altdriver_aio_ml2.py" "$src/pyproject.toml")
    [ "$(cat "$stamp" 2>/dev/null)" = "$key" ] && return 0
    log "installing the all-in-one's ML2 mechanism driver"
    "$VENV/bin/pip" install -q --no-deps --no-build-isolation --force-reinstall "$src" \
        >"$LOGS/ml2-install.log" 2>&1 || { cat "$LOGS/ml2-install.log" >&2; die "installing $src failed"; }
    rm -rf "$src/build" "$src"/*.egg-info
    echo "$key" >"$stamp"
}

ovs_answers() { ovs-vsctl --timeout=5 show >/dev/null 2>&1; }

start_ovs() {
    mkdir -p "$OVS_DIR" /run/openvswitch
    if ! pid_of ovsdb-server >/dev/null; then
        if ovs_answers; then
            log "using the Open vSwitch already running here"
        else
            [ -f "$OVS_DIR/conf.db" ] || ovsdb-tool create "$OVS_DIR/conf.db" \
                /usr/share/openvswitch/vswitch.ovsschema
            log "starting ovsdb-server"
            ovsdb-server "$OVS_DIR/conf.db" --remote="punix:$OVS_DB_SOCK" \
                --pidfile="$OVS_DIR/ovsdb-server.pid" --detach \
                --log-file="$LOGS/ovsdb-server.log" 2>>"$LOGS/ovsdb-server.log" \
                || die "ovsdb-server did not start (log: $LOGS/ovsdb-server.log)"
            adopt ovsdb-server "$OVS_DIR/ovsdb-server.pid"
            ovs-vsctl --no-wait init
        fi
    fi
    # The userspace datapath reads a guest's tap through a packet socket.
    # Without virtio-net headers there (which this option turns on) the
    # guest's TCP segments, checksummed by "hardware", reach the host with
    # partial checksums and are dropped: no TCP connection from the host to
    # a guest would complete (ping and resets pass). Read at start only.
    ovs-vsctl --timeout=10 --no-wait set Open_vSwitch . \
        other_config:userspace-tso-enable=true || die "cannot configure Open vSwitch"
    if ! pid_of ovs-vswitchd >/dev/null && pid_of ovsdb-server >/dev/null; then
        log "starting ovs-vswitchd (userspace datapath)"
        ovs-vswitchd "unix:$OVS_DB_SOCK" --pidfile="$OVS_DIR/ovs-vswitchd.pid" --detach \
            --log-file="$LOGS/ovs-vswitchd.log" 2>>"$LOGS/ovs-vswitchd.log" \
            || die "ovs-vswitchd did not start (log: $LOGS/ovs-vswitchd.log)"
        adopt ovs-vswitchd "$OVS_DIR/ovs-vswitchd.pid"
    fi
    # netdev: no kernel module needed (containers have none)
    ovs-vsctl --timeout=10 --may-exist add-br "$BRIDGE" \
        -- set bridge "$BRIDGE" datapath_type=netdev || die "cannot create $BRIDGE"
    ip addr replace "$GATEWAY/${SUBNET_CIDR#*/}" dev "$BRIDGE"
    ip link set "$BRIDGE" up
}

network_setup() {  # the shared network and its subnet, once
    [ -f "$STATE/.network" ] && return 0
    log "neutron: network $NETWORK ($SUBNET_CIDR)"
    bootstrap network "$CLOUD" "$NETWORK" "$SUBNET_CIDR" "$GATEWAY" \
        || die "creating $NETWORK failed"
    touch "$STATE/.network"
}
