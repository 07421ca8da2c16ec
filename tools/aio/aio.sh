#!/bin/bash
# The main job: a small all-in-one OpenStack cloud on this machine whose
# unmodified nova-compute runs nova_altdriver against the local libvirtd +
# QEMU (TCG), and a tour of the server operations with the openstack CLI.
#
#   aio.sh up       install what is missing, configure, start everything (idempotent)
#   aio.sh status   which services run, and whether their APIs answer
#   aio.sh tour     boot the test guest and walk it through the operations
#   aio.sh load [--servers N] [--seconds S]  50 servers and a storm of actions
#                   on them; failures, nova-compute's CPU and memory, leftovers
#   aio.sh browser-tour [--ci] [DIR]  the same through Horizon in headless
#                   Chromium (--ci: CI's subset, every page and form once)
#   aio.sh tempest [--ci] [REGEX]  tempest's compute tests (tempest.sh)
#   aio.sh tempest-compare  the latest whole runs of both drivers, side by side
#   aio.sh down     stop exactly the processes `up` started
#   aio.sh kill S   SIGKILL one service of ours (the tour's host failure)
#
# Two compute hosts share the instances directory (shared storage, for
# evacuation, resize and migrations): aio-compute on the system libvirtd,
# aio-compute2 on a second libvirtd in a private mount namespace
# (tools/second-libvirtd.sh); each reaches the other's libvirtd over
# loopback TCP for live migrations.
# Cinder keeps volumes on the machine's one-node Ceph cluster
# (tools/ceph/ceph.sh, which the e2e tests use too; its ports and
# /etc/ceph are the machine's): RBD images that QEMU opens itself. `up`
# starts it unless it runs; `down` stops it only if `up` started it.
#
# Everything (configuration, databases, logs, pid files, instances) lives under
# AIO_STATE (default /var/lib/nova-altdriver-aio). Services listen on 127.0.0.1
# only. The CLI finds the cloud as `openstack --os-cloud altdriver-aio`.
#
# AIO_DRIVER=libvirt makes the same cloud with nova's in-tree libvirt driver
# on both compute hosts, nothing else changed, for side-by-side runs: a
# cloud of its own (AIO_STATE default /var/lib/nova-altdriver-aio-libvirt;
# nova keeps a compute node's identity, which a driver change would
# rename), on the same ports, so one of the two runs at a time.
#
# This script installs and supervises; each service's configuration is a
# template in tools/aio/etc/ (filled in by render.py with the values set
# here), and bootstrap.py makes the cloud's users, catalog and network.
set -euo pipefail
source "$(dirname "$0")/../common.sh"

AIO_DIR="$ALTDRIVER_TOP/tools/aio"
AIO_DRIVER=${AIO_DRIVER:-altdriver}
state_of() {  # state_of DRIVER: where the cloud with that driver lives
    case $1 in
        altdriver) echo /var/lib/nova-altdriver-aio ;;
        libvirt) echo /var/lib/nova-altdriver-aio-libvirt ;;
    esac
}
[ -n "$(state_of "$AIO_DRIVER")" ] || die "AIO_DRIVER is altdriver or libvirt, not $AIO_DRIVER"
STATE=${AIO_STATE:-$(state_of "$AIO_DRIVER")}
# the tours and tempest find this cloud's state
export AIO_STATE=$STATE
ETC=$STATE/etc
LOGS=$STATE/log
RUN=$STATE/run
PASSWORD=${AIO_PASSWORD:-altdriver}
DBPASS=$PASSWORD
HOSTNAME_COMPUTE=aio-compute
HOSTNAME_COMPUTE2=aio-compute2
LIBVIRT_URI=qemu:///system
LIBVIRT2_DIR=$STATE/libvirt2
LIBVIRT2_URI="qemu+unix:///system?socket=$LIBVIRT2_DIR/run/libvirt-sock"
# where each host's libvirtd takes the other's for live migrations
# (migration_inbound_addr); the e2e tests' libvirtds take 127.0.0.2 and
# 127.0.0.3 unless told otherwise
LIBVIRT_ADDR=127.0.0.1
LIBVIRT2_ADDR=127.0.0.4
KEYSTONE=http://127.0.0.1:5000
TRANSPORT_URL=rabbit://guest:guest@127.0.0.1:5672/
CLOUD=altdriver-aio
# ceph.sh's own default: one cluster per machine
CEPH_STATE=${CEPH_STATE:-/var/lib/nova-altdriver-ceph}
CEPH_CONF=/etc/ceph/ceph.conf
# The services `up` starts, in that order (`down` stops them); Ceph's
# daemons are tools/ceph/ceph.sh's.
SERVICES=(mariadb epmd rabbitmq keystone cinder-volume placement glance
          ovsdb-server ovs-vswitchd neutron nova-api nova-conductor
          nova-scheduler nova-novncproxy nova-serialproxy nova-spicehtml5proxy
          libvirt-tcp nova-compute
          virtlogd2 libvirtd2
          nova-compute2 cinder-api cinder-scheduler horizon)
declare -A PORT=([mariadb]=3306 [rabbitmq]=5672 [keystone]=5000
                 [placement]=8778 [glance]=9292 [neutron]=9696 [nova-api]=8774
                 [cinder-api]=8776 [horizon]=8080 [libvirt-tcp]=16509
                 [nova-novncproxy]=6080 [nova-serialproxy]=6083
                 [nova-spicehtml5proxy]=6082)
# noVNC's pages (Debian's novnc), which nova-novncproxy serves, and the
# SPICE HTML5 client's (Debian's spice-html5), nova-spicehtml5proxy's
NOVNC_WEB=/usr/share/novnc
SPICE_WEB=/usr/share/spice-html5
source "$AIO_DIR/network.sh"
source "$AIO_DIR/horizon.sh"

mysql_() { mysql --defaults-file="$ETC/my.cnf" "$@"; }
dburl() { echo "mysql+pymysql://aio:$DBPASS@127.0.0.1:3306/$1?charset=utf8"; }

# ---------------------------------------------------------------- processes
pid_of() {  # prints the PID if the service started by us is alive
    local f=$RUN/$1.pid pid
    [ -f "$f" ] || return 1
    pid=$(cat "$f")
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
    # the PID must still be the process we started (PIDs are reused)
    [ "$(cat "$RUN/$1.starttime" 2>/dev/null)" = "$(proc_starttime "$pid")" ] || return 1
    echo "$pid"
}
proc_starttime() { awk '{print $22}' "/proc/$1/stat" 2>/dev/null; }

# start NAME CMD...: runs CMD in its own session, output to log/NAME.log
start() {
    local name=$1; shift
    if pid_of "$name" >/dev/null; then return 0; fi
    log "starting $name"
    setsid "$@" >>"$LOGS/$name.log" 2>&1 < /dev/null &
    local pid=$!
    echo "$pid" >"$RUN/$name.pid"
    proc_starttime "$pid" >"$RUN/$name.starttime"
}

adopt() {  # adopt NAME PIDFILE: a daemon that forked by itself becomes ours
    local pid
    pid=$(cat "$2")
    echo "$pid" >"$RUN/$1.pid"
    proc_starttime "$pid" >"$RUN/$1.starttime"
}

wait_port() {  # wait_port NAME PORT SECONDS
    local i
    for ((i = 0; i < $3 * 5; i++)); do
        (exec 3<>"/dev/tcp/127.0.0.1/$2") 2>/dev/null && return 0
        pid_of "$1" >/dev/null || { tail -20 "$LOGS/$1.log" >&2; die "$1 exited (log: $LOGS/$1.log)"; }
        sleep 0.2
    done
    tail -20 "$LOGS/$1.log" >&2
    die "$1 does not listen on port $2 after $3 s"
}

wait_http() {  # wait_http NAME URL SECONDS: any HTTP answer counts
    local i
    for ((i = 0; i < $3 * 5; i++)); do
        curl -s -o /dev/null -m 5 "$2" && return 0
        pid_of "$1" >/dev/null || { tail -20 "$LOGS/$1.log" >&2; die "$1 exited (log: $LOGS/$1.log)"; }
        sleep 0.2
    done
    tail -20 "$LOGS/$1.log" >&2
    die "$1 does not answer on $2 after $3 s"
}

stop_one() {
    local name=$1 pid i
    pid=$(pid_of "$name") || { rm -f "$RUN/$name.pid" "$RUN/$name.starttime"; return 0; }
    log "stopping $name (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < ${STOP_WAIT:-20} * 5; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.2
    done
    if kill -0 "$pid" 2>/dev/null; then
        log "$name did not exit within ${STOP_WAIT:-20} s: killing pid $pid"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$RUN/$name.pid" "$RUN/$name.starttime"
}

# ---------------------------------------------------------------- install
install_aio_packages() {
    bash "$ALTDRIVER_TOP/tools/setup-host.sh"
    install_packages mariadb-server mariadb-client rabbitmq-server curl openvswitch-switch \
        chromium chromium-driver socat novnc spice-html5
}

# ---------------------------------------------------------------- config
# render TEMPLATE FILE: FILE from tools/aio/etc/TEMPLATE.in (render.py) with
# these values, and those set for the call (SERVICE_USER=nova render ...)
render() {
    (export STATE ETC LOGS RUN VENV PASSWORD KEYSTONE TRANSPORT_URL HOSTNAME_COMPUTE \
            HOSTNAME_COMPUTE2 LIBVIRT_URI LIBVIRT2_URI LIBVIRT_ADDR LIBVIRT2_ADDR BRIDGE OVS_DB_SOCK HORIZON_DIR \
            AIO_DRIVER NOVNC_PORT SERIALPROXY_PORT SPICEPROXY_PORT
     exec "$VENV/bin/python" "$AIO_DIR/render.py" "$AIO_DIR/etc/$1.in" "$2")
}

write_configs() {
    local NOVNC_PORT=${PORT[nova-novncproxy]} SERIALPROXY_PORT=${PORT[nova-serialproxy]}
    local SPICEPROXY_PORT=${PORT[nova-spicehtml5proxy]}
    mkdir -p "$ETC"/{keystone,glance,placement,neutron/plugins/ml2,nova,cinder} "$LOGS" "$RUN" \
        "$STATE"/{mysql,rabbitmq,images,glance-staging,glance-tasks,instances,nova,nova2,neutron,locks} \
        "$STATE"/cinder/{conversion,locks,coordination}
    local share=$VENV/etc
    render my.cnf "$ETC/my.cnf"
    render rabbitmq.conf "$ETC/rabbitmq.conf"
    render rabbitmq-enabled-plugins "$ETC/rabbitmq-enabled-plugins"
    DATABASE=$(dburl keystone) render keystone.conf "$ETC/keystone/keystone.conf"
    SERVICE_USER=placement DATABASE=$(dburl placement) \
        render placement.conf "$ETC/placement/placement.conf"
    # Glance: a file store; chunked uploads (snapshots) are read by uWSGI
    SERVICE_USER=glance DATABASE=$(dburl glance) \
        render glance-api.conf "$ETC/glance/glance-api.conf"
    cp -f "$share/glance/glance-api-paste.ini" "$ETC/glance/"
    # Neutron: ML2 with no agents; ml2/ binds every port to the OVS bridge
    SERVICE_USER=neutron DATABASE=$(dburl neutron) \
        render neutron.conf "$ETC/neutron/neutron.conf"
    render ml2_conf.ini "$ETC/neutron/plugins/ml2/ml2_conf.ini"
    cp -f "$share/neutron/api-paste.ini" "$ETC/neutron/" 2>/dev/null || true
    # Nova: one file for every nova process, and one of its own for each of
    # the two compute hosts (host name, node name, state and libvirtd)
    SERVICE_USER=nova DATABASE=$(dburl nova) API_DATABASE=$(dburl nova_api) \
        render nova.conf "$ETC/nova/nova.conf"
    HOST=$HOSTNAME_COMPUTE HOST_STATE=$STATE/nova HOST_URI=$LIBVIRT_URI \
        HOST_ADDR=$LIBVIRT_ADDR render nova-compute.conf "$ETC/nova/nova-compute.conf"
    HOST=$HOSTNAME_COMPUTE2 HOST_STATE=$STATE/nova2 HOST_URI=$LIBVIRT2_URI \
        HOST_ADDR=$LIBVIRT2_ADDR render nova-compute.conf "$ETC/nova/nova-compute2.conf"
    # host, its nova-compute service and libvirt URI, for the tour
    printf '%s %s %s\n' "$HOSTNAME_COMPUTE" nova-compute "$LIBVIRT_URI" \
        "$HOSTNAME_COMPUTE2" nova-compute2 "$LIBVIRT2_URI" >"$STATE/computes"
    cp -f "$share/nova/api-paste.ini" "$ETC/nova/"
    # Cinder: cinder.conf once Ceph is up (cinder_config)
    cp -f "$share/cinder/api-paste.ini" "$ETC/cinder/"

    # uWSGI, one file per API; glance's adds chunked input: nova uploads
    # snapshot data in chunks larger than uWSGI's 1 MiB default
    local api module template
    for api in keystone:keystone.wsgi.api placement:placement.wsgi.api \
               glance:glance.wsgi.api neutron:neutron.wsgi.api \
               nova-api:nova.wsgi.osapi_compute cinder-api:cinder.wsgi.api; do
        module=${api#*:}; api=${api%%:*}
        template=uwsgi-$api.ini
        [ -f "$AIO_DIR/etc/$template.in" ] || template=uwsgi.ini
        API=$api MODULE=$module API_PORT=${PORT[$api]} render "$template" "$ETC/uwsgi-$api.ini"
    done
}

# bootstrap COMMAND ARGS...: tools/aio/bootstrap.py, as the cloud's admin (the
# password in its environment: command lines are public)
bootstrap() {
    OS_CLIENT_CONFIG_FILE=$STATE/clouds.yaml AIO_PASSWORD=$PASSWORD \
        "$VENV/bin/python" "$AIO_DIR/bootstrap.py" "$@"
}

write_clouds_yaml() {  # for the CLI, the tours and bootstrap
    bootstrap clouds-yaml "$CLOUD" "$KEYSTONE/v3" "$STATE/clouds.yaml" \
        /etc/openstack/clouds.yaml
}

# ---------------------------------------------------------------- start
wait_volume_backend() {  # wait_volume_backend SECONDS: Cinder can make volumes
    local end=$((SECONDS + $1)) s pools
    until pools=$(bootstrap volume-backend "$CLOUD" 10 2>/dev/null); do
        for s in cinder-api cinder-scheduler cinder-volume; do
            pid_of $s >/dev/null || { tail -30 "$LOGS/$s.log" >&2; die "$s exited (log: $LOGS/$s.log)"; }
        done
        [ $SECONDS -lt "$end" ] || {
            tail -30 "$LOGS/cinder-volume.log" >&2
            die "Cinder reports no volume backend after $1 s (log: $LOGS/cinder-volume.log)"; }
    done
    log "cinder: volume backend $pools"
}

start_mariadb() {
    if [ ! -d "$STATE/mysql/mysql" ]; then
        log "initialising MariaDB in $STATE/mysql"
        mariadb-install-db --defaults-file="$ETC/my.cnf" --user=root \
            >"$LOGS/mariadb-install.log" 2>&1
    fi
    start mariadb mariadbd --defaults-file="$ETC/my.cnf"
    local i
    for ((i = 0; i < 150; i++)); do
        mysql_ -e 'select 1' >/dev/null 2>&1 && break
        pid_of mariadb >/dev/null || die "mariadbd exited (see $LOGS/mariadb-error.log)"
        sleep 0.2
    done
    mysql_ -e 'select 1' >/dev/null || die "MariaDB does not answer"
    local db sql="CREATE USER IF NOT EXISTS 'aio'@'127.0.0.1' IDENTIFIED BY '$DBPASS';"
    for db in keystone glance placement neutron nova_api nova nova_cell0 cinder; do
        sql+="CREATE DATABASE IF NOT EXISTS $db CHARACTER SET utf8;"
        sql+="GRANT ALL PRIVILEGES ON $db.* TO 'aio'@'127.0.0.1';"
    done
    mysql_ -e "$sql"
}

start_rabbitmq() {
    local env=(env HOME="$STATE/rabbitmq" RABBITMQ_MNESIA_BASE="$STATE/rabbitmq/mnesia"
        RABBITMQ_LOG_BASE="$LOGS/rabbitmq" RABBITMQ_CONFIG_FILE="$ETC/rabbitmq.conf"
        RABBITMQ_ENABLED_PLUGINS_FILE="$ETC/rabbitmq-enabled-plugins"
        RABBITMQ_NODENAME=rabbit@localhost RABBITMQ_NODE_IP_ADDRESS=127.0.0.1
        RABBITMQ_DIST_PORT=25672 ERL_EPMD_ADDRESS=127.0.0.1
        RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}")
    # epmd: ours, in the foreground, so that `down` can stop it by PID
    if ! (exec 3<>/dev/tcp/127.0.0.1/4369) 2>/dev/null; then
        start epmd env ERL_EPMD_ADDRESS=127.0.0.1 epmd -address 127.0.0.1
        wait_port epmd 4369 10
    fi
    start rabbitmq "${env[@]}" /usr/lib/rabbitmq/bin/rabbitmq-server
    wait_port rabbitmq 5672 60
}

start_libvirt2() {  # the second compute host's libvirtd + virtlogd
    pid_of libvirtd2 >/dev/null && pid_of virtlogd2 >/dev/null && return 0
    stop_one libvirtd2; stop_one virtlogd2  # half of a pair: restart both
    log "starting libvirtd2 + virtlogd2 in $LIBVIRT2_DIR"
    # its own host name: the in-tree driver names its node after it; room
    # for 100 guests' VNC and SPICE servers (the load test's 50 servers may
    # all land here), clear of nova's serial console ports (10000-20000)
    ALTDRIVER_DISPLAY_PORTS="21000 200" bash "$ALTDRIVER_TOP/tools/second-libvirtd.sh" start "$LIBVIRT2_DIR" "$LIBVIRT2_ADDR" \
        "$HOSTNAME_COMPUTE2" \
        >/dev/null 2>>"$LOGS/libvirtd2.log" \
        || die "the second libvirtd did not start (log: $LOGS/libvirtd2.log)"
    adopt virtlogd2 "$LIBVIRT2_DIR/virtlogd.pid"
    adopt libvirtd2 "$LIBVIRT2_DIR/libvirtd.pid"
}

# Live migrations to aio-compute: libvirtd2 opens the system libvirtd at
# qemu+tcp://LIBVIRT_ADDR/system. That daemon is the machine's (the e2e tests
# use it too) and listens on its UNIX socket only; rather than restart it
# with --listen under its other users, a proxy takes TCP connections on
# loopback and passes them to that socket (as root: no authentication, as
# tools/second-libvirtd.sh's daemons on loopback). QEMU's incoming stream
# goes to the port the system libvirtd gives it (qemu.conf's defaults).
start_libvirt_tcp() {
    start libvirt-tcp socat "TCP-LISTEN:${PORT[libvirt-tcp]},bind=$LIBVIRT_ADDR,reuseaddr,fork" \
        UNIX-CONNECT:/run/libvirt/libvirt-sock
    wait_port libvirt-tcp "${PORT[libvirt-tcp]}" 10
}

keystone_setup() {
    local ks=(env OS_KEYSTONE_CONFIG_DIR="$ETC/keystone" "$VENV/bin/keystone-manage"
              --config-file "$ETC/keystone/keystone.conf")
    if [ ! -f "$STATE/.keystone-db" ]; then
        log "keystone: db_sync, keys, bootstrap"
        "${ks[@]}" db_sync
        "${ks[@]}" fernet_setup --keystone-user root --keystone-group root
        "${ks[@]}" credential_setup --keystone-user root --keystone-group root
        "${ks[@]}" bootstrap --bootstrap-password "$PASSWORD" \
            --bootstrap-admin-url "$KEYSTONE/v3" --bootstrap-public-url "$KEYSTONE/v3" \
            --bootstrap-internal-url "$KEYSTONE/v3" --bootstrap-region-id RegionOne
        touch "$STATE/.keystone-db"
    fi 2>>"$LOGS/keystone-manage.log" >&2
}

uwsgi_api() {  # uwsgi_api NAME CONFIG_DIR_VAR
    start "$1" env "$2=$ETC/${3:-$1}" "$VENV/bin/uwsgi" --ini "$ETC/uwsgi-$1.ini"
}

catalog_setup() {  # again when bootstrap.py changed (a new service)
    local key
    key=$(content_hash "$AIO_DIR/bootstrap.py")
    [ "$(cat "$STATE/.catalog" 2>/dev/null)" = "$key" ] && return 0
    log "keystone: service project, users, catalog"
    bootstrap catalog "$CLOUD"
    echo "$key" >"$STATE/.catalog"
}

# ---------------------------------------------------------------- Ceph
ceph_() { CEPH_STATE=$CEPH_STATE bash "$ALTDRIVER_TOP/tools/ceph/ceph.sh" "$@"; }

# ceph.sh up runs in the background while the other services start; if a
# daemon of the cluster was not running, the cluster is ours to stop in
# `down` (run/ceph.ours), else someone else's (the e2e tests')
start_ceph() {
    if ! ceph_ status >/dev/null 2>&1; then
        touch "$RUN/ceph.ours"
    fi
    log "ceph: up (in the background; log: $LOGS/ceph.log)"
    ceph_ up >>"$LOGS/ceph.log" 2>&1 &
    CEPH_UP=$!
}

wait_ceph() {
    wait "$CEPH_UP" || { tail -20 "$LOGS/ceph.log" >&2; die "ceph did not come up (log: $LOGS/ceph.log)"; }
    log "ceph: $(grep -o 'ceph up in .*' "$LOGS/ceph.log" | tail -1)"
}

# Debian's rados and rbd modules for the venv's Python (3.11 too): the .pth
# names ceph.sh's directory that holds only those two (all of dist-packages
# would bring Debian's requests, urllib3...)
expose_ceph_python() {
    local site pth
    site=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
    pth=$site/nova-altdriver-ceph.pth
    [ "$(cat "$pth" 2>/dev/null)" = "$CEPH_STATE/python" ] || echo "$CEPH_STATE/python" >"$pth"
    "$VENV/bin/python" -c 'import rados, rbd' \
        || die "the venv's Python does not import rados and rbd (through $pth)"
}

# cinder.conf: the RBD backend, the cluster's fsid as the libvirt secret's UUID
cinder_config() {
    local fsid
    fsid=$(ceph-conf -c "$CEPH_CONF" --lookup fsid) || die "no fsid in $CEPH_CONF"
    SERVICE_USER=cinder DATABASE=$(dburl cinder) RBD_SECRET_UUID=$fsid \
        render cinder.conf "$ETC/cinder/cinder.conf"
}

# The in-tree driver takes Cinder's RBD volumes only with a libvirt secret
# of the cephx user's key under the UUID Cinder names (its rbd_secret_uuid,
# the fsid), which the operator defines on every compute host (devstack's
# ceph plugin does the same); nova_altdriver defines it itself
define_rbd_secret() {
    local fsid key uri
    fsid=$(ceph-conf -c "$CEPH_CONF" --lookup fsid) || die "no fsid in $CEPH_CONF"
    key=$(mktemp) && chmod 600 "$key"
    ceph-authtool -p -n client.cinder /etc/ceph/ceph.client.cinder.keyring >"$key" \
        || die "no key of client.cinder in /etc/ceph"
    for uri in "$LIBVIRT_URI" "$LIBVIRT2_URI"; do
        printf '%s\n' "<secret ephemeral='no' private='yes'><uuid>$fsid</uuid>" \
            "<usage type='ceph'><name>client.cinder secret</name></usage></secret>" \
            | virsh -q -c "$uri" secret-define /dev/stdin >/dev/null &&
        virsh -q -c "$uri" secret-set-value "$fsid" --file "$key" >/dev/null \
            || die "defining the ceph secret on $uri failed"
    done
    rm -f "$key"
}

db_setup() {  # schema migrations, once (cinder's: also into an older cloud)
    local pids=() p rc=0
    exec 4>>"$LOGS/db-sync.log"
    if [ ! -f "$STATE/.cinder-db" ]; then
        log "database schema: cinder"
        "$VENV/bin/cinder-manage" --config-file "$ETC/cinder/cinder.conf" db sync >&4 2>&4 &
        pids+=($!)
    fi
    if [ ! -f "$STATE/.dbs" ]; then
        log "database schemas: placement, glance, neutron, nova"
        local nm=("$VENV/bin/nova-manage" --config-file "$ETC/nova/nova.conf")
        OS_PLACEMENT_CONFIG_DIR=$ETC/placement "$VENV/bin/placement-manage" \
            --config-file "$ETC/placement/placement.conf" db sync >&4 2>&4 &
        pids+=($!)
        "$VENV/bin/glance-manage" --config-file "$ETC/glance/glance-api.conf" db_sync >&4 2>&4 &
        pids+=($!)
        "$VENV/bin/neutron-db-manage" --config-file "$ETC/neutron/neutron.conf" \
            --config-file "$ETC/neutron/plugins/ml2/ml2_conf.ini" upgrade heads >&4 2>&4 &
        pids+=($!)
        ( set -e
          "${nm[@]}" api_db sync
          "${nm[@]}" cell_v2 map_cell0 --database_connection "$(dburl nova_cell0)"
          "${nm[@]}" cell_v2 list_cells | grep -q ' cell1 ' || \
              "${nm[@]}" cell_v2 create_cell --name cell1
          "${nm[@]}" db sync ) >&4 2>&4 &
        pids+=($!)
    fi
    for p in "${pids[@]}"; do wait "$p" || rc=1; done
    exec 4>&-
    [ $rc = 0 ] || die "schema migrations failed (see $LOGS/db-sync.log)"
    touch "$STATE/.dbs" "$STATE/.cinder-db"
}

cmd_up() {
    local t0=$SECONDS
    if ! pid_of mariadb >/dev/null && (exec 3<>/dev/tcp/127.0.0.1/${PORT[mariadb]}) 2>/dev/null; then
        die "port ${PORT[mariadb]} is taken: is the other all-in-one up? (AIO_DRIVER=... aio.sh down)"
    fi
    install_aio_packages
    VENV=$(bash "$ALTDRIVER_TOP/tools/setup-venv.sh" aio-venv \
        tools/aio/requirements.txt)
    mkdir -p "$STATE"; echo "$VENV" >"$STATE/venv"
    write_configs
    start_ceph
    install_ml2_driver
    write_clouds_yaml
    start_mariadb
    start_rabbitmq
    keystone_setup
    uwsgi_api keystone OS_KEYSTONE_CONFIG_DIR
    wait_http keystone "$KEYSTONE/v3" 60
    catalog_setup
    wait_ceph
    expose_ceph_python
    cinder_config
    db_setup
    # cinder-volume before cinder-scheduler: the scheduler asks the volume
    # services for their capacity once, when it starts; a volume service
    # that is not listening yet reports only a minute later
    local cinder=(--config-file "$ETC/cinder/cinder.conf")
    start cinder-volume "$VENV/bin/cinder-volume" "${cinder[@]}"
    uwsgi_api placement OS_PLACEMENT_CONFIG_DIR
    uwsgi_api glance OS_GLANCE_CONFIG_DIR
    start_ovs
    uwsgi_api neutron OS_NEUTRON_CONFIG_DIR
    uwsgi_api nova-api OS_NOVA_CONFIG_DIR nova
    local nova=(--config-file "$ETC/nova/nova.conf")
    # a compute service counts once it reported after this start: the rows
    # of an earlier run look "not heard from" to the scheduler until then
    local since
    since=$(mysql_ -N -e 'select utc_timestamp()')
    start nova-conductor "$VENV/bin/nova-conductor" "${nova[@]}"
    start nova-scheduler "$VENV/bin/nova-scheduler" "${nova[@]}"
    # the guests' VNC consoles in the browser: noVNC's pages and the
    # websocket each page opens, passed on to the guest's VNC server
    start nova-novncproxy "$VENV/bin/nova-novncproxy" "${nova[@]}" --web "$NOVNC_WEB"
    # the guests' serial consoles: a websocket each, passed on to the
    # guest's TCP serial port
    start nova-serialproxy "$VENV/bin/nova-serialproxy" "${nova[@]}"
    # SPICE consoles: the HTML5 client's pages and its websocket
    start nova-spicehtml5proxy "$VENV/bin/nova-spicehtml5proxy" "${nova[@]}" --web "$SPICE_WEB"
    start_libvirt_tcp
    start nova-compute env -u OS_NOVA_DISABLE_EVENTLET_PATCHING \
        "$VENV/bin/nova-compute" "${nova[@]}" --config-file "$ETC/nova/nova-compute.conf"
    start_libvirt2
    [ "$AIO_DRIVER" != libvirt ] || define_rbd_secret
    start nova-compute2 env -u OS_NOVA_DISABLE_EVENTLET_PATCHING \
        "$VENV/bin/nova-compute" "${nova[@]}" --config-file "$ETC/nova/nova-compute2.conf"
    start cinder-api "$VENV/bin/uwsgi" --ini "$ETC/uwsgi-cinder-api.ini"
    start cinder-scheduler "$VENV/bin/cinder-scheduler" "${cinder[@]}"
    wait_http placement http://127.0.0.1:8778/ 60
    wait_http glance http://127.0.0.1:9292/ 60
    wait_http neutron http://127.0.0.1:9696/ 60
    network_setup
    wait_http nova-api http://127.0.0.1:8774/ 60
    wait_http nova-novncproxy "http://127.0.0.1:${PORT[nova-novncproxy]}/vnc_lite.html" 60
    wait_port nova-serialproxy "${PORT[nova-serialproxy]}" 60
    wait_http nova-spicehtml5proxy "http://127.0.0.1:${PORT[nova-spicehtml5proxy]}/spice_auto.html" 60
    # the scheduler maps new compute hosts into cell1 by itself; both hosts
    # must be mapped and have reported since they started
    local i s hosts="('$HOSTNAME_COMPUTE', '$HOSTNAME_COMPUTE2')"
    local q="select (select count(*) from nova_api.host_mappings where host in $hosts)
        + (select count(*) from nova.services where \`binary\` = 'nova-compute'
           and deleted = 0 and host in $hosts and updated_at >= '$since')"
    for ((i = 0; i < 600; i++)); do
        [ "$(mysql_ -N -e "$q" 2>/dev/null)" = 4 ] && break
        for s in nova-conductor nova-scheduler nova-compute nova-compute2; do
            pid_of $s >/dev/null || { tail -30 "$LOGS/$s.log" >&2; die "$s exited (log: $LOGS/$s.log)"; }
        done
        sleep 0.2
    done
    [ "$i" -lt 600 ] || die "the compute hosts were not both mapped and reporting within 120 s"
    wait_http cinder-api http://127.0.0.1:8776/ 60
    wait_volume_backend 180
    start_horizon
    log "all-in-one cloud up in $((SECONDS - t0)) s: openstack --os-cloud $CLOUD server list"
}

cmd_status() {
    local s pid rc=0 rss total=0
    printf '%-20s %-8s %-10s %s\n' service pid rss_MiB answer
    for s in "${SERVICES[@]}"; do
        if pid=$(pid_of "$s"); then
            # RSS of the process and all its descendants
            rss=$(ps -e -o pid=,ppid=,rss= | awk -v root="$pid" '
                { p[$1] = $2; r[$1] = $3 }
                END { for (x in p) { y = x; while (y && y != root && y in p) y = p[y];
                      if (y == root) t += r[x] } printf "%d", t / 1024 }')
            total=$((total + rss))
            local ans=-
            if [ -n "${PORT[$s]:-}" ]; then
                (exec 3<>"/dev/tcp/127.0.0.1/${PORT[$s]}") 2>/dev/null && ans="port ${PORT[$s]}" \
                    || { ans="NOT LISTENING"; rc=1; }
            elif [ "$s" = libvirtd2 ]; then
                virsh -c "$LIBVIRT2_URI" version >/dev/null 2>&1 && ans=answers \
                    || { ans="NOT ANSWERING"; rc=1; }
            elif [ "$s" = ovs-vswitchd ]; then
                ovs-vsctl --timeout=5 br-exists "$BRIDGE" && ans="$BRIDGE up" \
                    || { ans="NO $BRIDGE"; rc=1; }
            fi
            printf '%-20s %-8s %-10s %s\n' "$s" "$pid" "$rss" "$ans"
        else
            [ "$s" = epmd ] && continue
            printf '%-20s %-8s %-10s %s\n' "$s" - - "NOT RUNNING"; rc=1
        fi
    done
    # Ceph's daemons, as ceph.sh status lists them, and the cluster's health
    local out d state health
    out=$(ceph_ status 2>&1) || rc=1
    health=$(sed -n 's/^ *health: *//p' <<<"$out")
    while read -r d pid rss state; do
        if [ "$state" = running ]; then
            total=$((total + rss))
            [ "$d" = mon.a ] && state=${health:-"NO HEALTH"}
        fi
        printf '%-20s %-8s %-10s %s\n' "ceph-$d" "$pid" "$rss" "$state"
    done < <(sed -n '2,4p' <<<"$out")
    printf '%-20s %-8s %-10s %s\n' total '' "$total" '(guests not included)'
    return $rc
}

cmd_down() {
    # the OpenStack services in parallel (nova-compute may need long), then
    # the message queue and the database they used
    local s pids=()
    stop_one horizon
    for s in nova-compute nova-compute2 nova-scheduler nova-conductor nova-api nova-novncproxy \
             nova-serialproxy nova-spicehtml5proxy cinder-volume cinder-scheduler cinder-api neutron glance placement keystone; do
        if [[ $s == nova-compute* ]]; then STOP_WAIT=45 stop_one $s & else stop_one $s & fi
        pids+=($!)
    done
    wait "${pids[@]}"
    # Ceph meanwhile if `up` started it (a guest still using a volume then
    # waits for its I/O until Ceph is back)
    local ceph=
    if [ -f "$RUN/ceph.ours" ]; then
        { ceph_ down && rm -f "$RUN/ceph.ours"; } &
        ceph=$!
    else
        log "ceph: not stopped (it ran before \`up\`)"
    fi
    # guests of the second host keep running, as on the system libvirtd: the
    # next `up` reconnects to them
    stop_one libvirtd2
    stop_one virtlogd2
    stop_one libvirt-tcp
    stop_one ovs-vswitchd
    stop_one ovsdb-server
    stop_one rabbitmq
    stop_one epmd
    stop_one mariadb
    [ -z "$ceph" ] || wait $ceph || log "ceph.sh down failed"
}

case ${1:-} in
    up) cmd_up ;;
    status) cmd_status ;;
    down) cmd_down ;;
    kill)
        pid=$(pid_of "${2:?service}") || die "$2 is not running"
        log "killing $2 (pid $pid)"
        kill -KILL "$pid"
        rm -f "$RUN/$2.pid" "$RUN/$2.starttime" ;;
    tour) shift; VENV=$(cat "$STATE/venv") exec bash "$AIO_DIR/tour.sh" "$@" ;;
    load) shift; exec "$(cat "$STATE/venv")/bin/python" "$AIO_DIR/load.py" "$@" ;;
    browser-tour) shift; exec "$(cat "$STATE/venv")/bin/python" "$AIO_DIR/browser_tour.py" "$@" ;;
    tempest) shift; VENV=$(cat "$STATE/venv") exec bash "$AIO_DIR/tempest.sh" "$@" ;;
    tempest-compare)
        exec bash "$AIO_DIR/tempest.sh" --compare "$(state_of altdriver)" "$(state_of libvirt)" ;;
    *) echo "usage: $0 up|status|tour|load [--servers N] [--seconds S]|browser-tour [--ci] [OUTDIR]|tempest [--ci] [REGEX]|tempest-compare|down|kill SERVICE" >&2
       exit 2 ;;
esac
