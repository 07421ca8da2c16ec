#!/bin/bash
# The main job: a small all-in-one OpenStack cloud on this machine whose
# unmodified nova-compute runs nova_altdriver against the local libvirtd +
# QEMU (TCG), and a tour of the server operations with the openstack CLI.
#
#   aio.sh up       install what is missing, configure, start everything (idempotent)
#   aio.sh status   which services run, and whether their APIs answer
#   aio.sh tour     boot the test guest and walk it through the operations
#   aio.sh browser-tour [DIR]  the same through Horizon in headless Chromium
#   aio.sh down     stop exactly the processes `up` started
#   aio.sh kill S   SIGKILL one service of ours (the tour's host failure)
#
# Two compute hosts share the instances directory (shared storage, for
# evacuation): aio-compute on the system libvirtd, aio-compute2 on a second
# libvirtd in a private mount namespace (tools/second-libvirtd.sh).
#
# Everything (configuration, databases, logs, pid files, instances) lives under
# AIO_STATE (default /var/lib/nova-altdriver-aio). Services listen on 127.0.0.1
# only. The CLI finds the cloud as `openstack --os-cloud altdriver-aio`.
set -euo pipefail
source "$(dirname "$0")/../common.sh"

AIO_DIR="$ALTDRIVER_TOP/tools/aio"
STATE=${AIO_STATE:-/var/lib/nova-altdriver-aio}
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
KEYSTONE=http://127.0.0.1:5000
CLOUD=altdriver-aio
# Start order; `down` stops in reverse.
SERVICES=(mariadb epmd rabbitmq keystone placement glance ovsdb-server
          ovs-vswitchd neutron nova-api nova-conductor nova-scheduler
          nova-compute virtlogd2 libvirtd2 nova-compute2 horizon)
declare -A PORT=([mariadb]=3306 [rabbitmq]=5672 [keystone]=5000
                 [placement]=8778 [glance]=9292 [neutron]=9696 [nova-api]=8774
                 [horizon]=8080)
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
        chromium chromium-driver
}

# ---------------------------------------------------------------- config
write_configs() {
    mkdir -p "$ETC"/{keystone,glance,placement,neutron/plugins/ml2,nova} "$LOGS" "$RUN" \
        "$STATE"/{mysql,rabbitmq,images,glance-staging,glance-tasks,instances,nova,nova2,neutron,locks}
    local share=$VENV/etc
    cat >"$ETC/my.cnf" <<EOF
[client]
socket = $RUN/mysqld.sock
user = root
[mysqld]
user = root
datadir = $STATE/mysql
socket = $RUN/mysqld.sock
pid-file = $RUN/mysqld.pidfile
bind-address = 127.0.0.1
port = 3306
skip-name-resolve
log-error = $LOGS/mariadb-error.log
max_connections = 1000
innodb_buffer_pool_size = 128M
innodb_flush_log_at_trx_commit = 2
character-set-server = utf8
EOF
    cat >"$ETC/rabbitmq.conf" <<EOF
listeners.tcp.default = 127.0.0.1:5672
loopback_users = none
EOF
    echo "[]." >"$ETC/rabbitmq-enabled-plugins"

    authtoken() {  # authtoken USER
        cat <<EOF
[keystone_authtoken]
www_authenticate_uri = $KEYSTONE
auth_url = $KEYSTONE
auth_type = password
project_domain_name = Default
user_domain_name = Default
project_name = service
username = $1
password = $PASSWORD
service_token_roles_required = true
EOF
    }
    local common="[DEFAULT]
transport_url = rabbit://guest:guest@127.0.0.1:5672/"
    local locks="[oslo_concurrency]
lock_path = $STATE/locks"

    # Keystone
    cat >"$ETC/keystone/keystone.conf" <<EOF
[DEFAULT]
[database]
connection = $(dburl keystone)
[token]
provider = fernet
[fernet_tokens]
key_repository = $ETC/keystone/fernet-keys
[fernet_receipts]
key_repository = $ETC/keystone/fernet-keys
[credential]
key_repository = $ETC/keystone/credential-keys
[cache]
enabled = true
backend = dogpile.cache.memory
[identity]
password_hash_rounds = 4
EOF

    # Placement
    cat >"$ETC/placement/placement.conf" <<EOF
[DEFAULT]
[placement_database]
connection = $(dburl placement)
[api]
auth_strategy = keystone
$(authtoken placement)
EOF

    # Glance: a file store; chunked uploads (snapshots) are read by uWSGI
    cat >"$ETC/glance/glance-api.conf" <<EOF
[DEFAULT]
enabled_backends = fs:file
[database]
connection = $(dburl glance)
[glance_store]
default_backend = fs
[fs]
filesystem_store_datadir = $STATE/images
[os_glance_staging_store]
filesystem_store_datadir = $STATE/glance-staging
[os_glance_tasks_store]
filesystem_store_datadir = $STATE/glance-tasks
[paste_deploy]
flavor = keystone
$(authtoken glance)
EOF
    cp -f "$share/glance/glance-api-paste.ini" "$ETC/glance/"

    # Neutron: ML2 with no agents; ml2/ binds every port to the OVS bridge
    cat >"$ETC/neutron/neutron.conf" <<EOF
$common
core_plugin = ml2
service_plugins =
auth_strategy = keystone
state_path = $STATE/neutron
notify_nova_on_port_status_changes = false
notify_nova_on_port_data_changes = false
api_workers = 1
rpc_workers = 0
[database]
connection = $(dburl neutron)
$(authtoken neutron)
[agent]
root_helper =
$locks
EOF
    cat >"$ETC/neutron/plugins/ml2/ml2_conf.ini" <<EOF
[ml2]
type_drivers = flat,vlan
tenant_network_types =
mechanism_drivers = altdriver_aio
extension_drivers = port_security
[ml2_type_flat]
flat_networks = *
[altdriver_aio]
integration_bridge = $BRIDGE
datapath_type = netdev
EOF
    cp -f "$share/neutron/api-paste.ini" "$ETC/neutron/" 2>/dev/null || true

    # Nova: one file for every nova process
    local svcauth="auth_type = password
auth_url = $KEYSTONE
project_domain_name = Default
user_domain_name = Default
project_name = service
username = nova
password = $PASSWORD
region_name = RegionOne"
    cat >"$ETC/nova/nova.conf" <<EOF
$common
compute_driver = nova_altdriver.AltDriver
instances_path = $STATE/instances
state_path = $STATE/nova
host = $HOSTNAME_COMPUTE
my_ip = 127.0.0.1
cpu_allocation_ratio = 16.0
disk_allocation_ratio = 4.0
osapi_compute_workers = 1
metadata_workers = 1
# shelved servers are offloaded after a minute: Horizon offers Unshelve
# only for offloaded ones; the CLI tour unshelves one within that minute
shelved_offload_time = 60
shelved_poll_interval = 15
# no DHCP: guests read their address from the config drive's network data
force_config_drive = true
[altdriver]
connection_uri = $LIBVIRT_URI
virt_type = qemu
[api]
auth_strategy = keystone
[wsgi]
api_paste_config = $ETC/nova/api-paste.ini
[api_database]
connection = $(dburl nova_api)
[database]
connection = $(dburl nova)
[conductor]
workers = 1
[scheduler]
workers = 1
discover_hosts_in_cells_interval = 3
[filter_scheduler]
track_instance_changes = false
$(authtoken nova)
[service_user]
send_service_user_token = true
$svcauth
[placement]
$svcauth
[neutron]
$svcauth
[glance]
region_name = RegionOne
[cinder]
os_region_name = RegionOne
[vnc]
enabled = false
[spice]
enabled = false
[nova_sys_admin]
helper_command = $VENV/bin/privsep-helper --config-file $ETC/nova/nova.conf
[os_vif_ovs]
ovsdb_connection = unix:$OVS_DB_SOCK
[vif_plug_ovs_privileged]
helper_command = $VENV/bin/privsep-helper --config-file $ETC/nova/nova.conf
[vif_plug_linux_bridge_privileged]
helper_command = $VENV/bin/privsep-helper --config-file $ETC/nova/nova.conf
[oslo_messaging_notifications]
driver = noop
$locks
EOF
    # the two compute hosts: own host name, node name, state and libvirtd
    cat >"$ETC/nova/nova-compute.conf" <<EOF
[DEFAULT]
debug = true
[altdriver]
hypervisor_hostname = $HOSTNAME_COMPUTE
EOF
    cat >"$ETC/nova/nova-compute2.conf" <<EOF
[DEFAULT]
debug = true
host = $HOSTNAME_COMPUTE2
state_path = $STATE/nova2
[altdriver]
connection_uri = $LIBVIRT2_URI
hypervisor_hostname = $HOSTNAME_COMPUTE2
EOF
    # host, its nova-compute service and libvirt URI, for the tour
    printf '%s %s %s\n' "$HOSTNAME_COMPUTE" nova-compute "$LIBVIRT_URI" \
        "$HOSTNAME_COMPUTE2" nova-compute2 "$LIBVIRT2_URI" >"$STATE/computes"
    cp -f "$share/nova/api-paste.ini" "$ETC/nova/"

    # uWSGI, one file per API
    local api module
    for api in keystone:keystone.wsgi.api placement:placement.wsgi.api \
               glance:glance.wsgi.api neutron:neutron.wsgi.api \
               nova-api:nova.wsgi.osapi_compute; do
        module=${api#*:}; api=${api%%:*}
        cat >"$ETC/uwsgi-$api.ini" <<EOF
[uwsgi]
module = $module:application
http-socket = 127.0.0.1:${PORT[$api]}
virtualenv = $VENV
master = true
processes = 1
threads = 4
enable-threads = true
lazy-apps = true
die-on-term = true
hook-master-start = unix_signal:15 gracefully_kill_them_all
worker-reload-mercy = 10
buffer-size = 65535
add-header = Connection: close
need-app = true
procname-prefix-spaced = aio-$api
EOF
    done
    # nova uploads snapshot data in chunks larger than uWSGI's 1 MiB default
    cat >>"$ETC/uwsgi-glance.ini" <<EOF
http-chunked-input = true
http-auto-chunked = true
http-raw-body = true
chunked-input-limit = 67108864
EOF
}

write_clouds_yaml() {
    "$VENV/bin/python" - "$STATE/clouds.yaml" /etc/openstack/clouds.yaml <<EOF
import os, sys, yaml
entry = {'auth': {'auth_url': '$KEYSTONE/v3', 'username': 'admin',
                  'password': '$PASSWORD', 'project_name': 'admin',
                  'user_domain_name': 'Default', 'project_domain_name': 'Default'},
         'region_name': 'RegionOne', 'identity_api_version': 3,
         'compute_api_version': '2.95'}
for path in sys.argv[1:]:
    data = {}
    if os.path.exists(path):
        with open(path) as f:
            data = yaml.safe_load(f) or {}
    data.setdefault('clouds', {})['$CLOUD'] = entry
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'w') as f:
        yaml.safe_dump(data, f, default_flow_style=False)
EOF
}

# ---------------------------------------------------------------- start
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
    for db in keystone glance placement neutron nova_api nova nova_cell0; do
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
    bash "$ALTDRIVER_TOP/tools/second-libvirtd.sh" start "$LIBVIRT2_DIR" \
        >/dev/null 2>>"$LOGS/libvirtd2.log" \
        || die "the second libvirtd did not start (log: $LOGS/libvirtd2.log)"
    adopt virtlogd2 "$LIBVIRT2_DIR/virtlogd.pid"
    adopt libvirtd2 "$LIBVIRT2_DIR/libvirtd.pid"
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

catalog_setup() {
    [ -f "$STATE/.catalog" ] && return 0
    log "keystone: service project, users, catalog"
    OS_CLIENT_CONFIG_FILE="$STATE/clouds.yaml" "$VENV/bin/python" - <<EOF
import openstack
c = openstack.connect(cloud='$CLOUD')
idn = c.identity
dom = idn.find_domain('default')
proj = idn.find_project('service', domain_id=dom.id) or \
    idn.create_project(name='service', domain_id=dom.id)
admin = idn.find_role('admin')
svc = idn.find_role('service') or idn.create_role(name='service')
for user in ('nova', 'placement', 'glance', 'neutron'):
    u = idn.find_user(user, domain_id=dom.id) or idn.create_user(
        name=user, password='$PASSWORD', domain_id=dom.id, default_project_id=proj.id)
    for role in (admin, svc):
        idn.assign_project_role_to_user(proj, u, role)
for name, typ, url in (('nova', 'compute', 'http://127.0.0.1:8774/v2.1'),
                       ('placement', 'placement', 'http://127.0.0.1:8778'),
                       ('glance', 'image', 'http://127.0.0.1:9292'),
                       ('neutron', 'network', 'http://127.0.0.1:9696')):
    s = idn.find_service(name) or idn.create_service(name=name, type=typ)
    have = {e.interface for e in idn.endpoints(service_id=s.id)}
    for iface in ('public', 'internal', 'admin'):
        if iface not in have:
            idn.create_endpoint(service_id=s.id, interface=iface, url=url,
                                region_id='RegionOne')
EOF
    touch "$STATE/.catalog"
}

db_setup() {  # schema migrations, once
    if [ ! -f "$STATE/.dbs" ]; then
        log "database schemas: placement, glance, neutron, nova"
        local nm=("$VENV/bin/nova-manage" --config-file "$ETC/nova/nova.conf") pids=() p rc=0
        exec 4>>"$LOGS/db-sync.log"
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
        for p in "${pids[@]}"; do wait "$p" || rc=1; done
        exec 4>&-
        [ $rc = 0 ] || die "schema migrations failed (see $LOGS/db-sync.log)"
        touch "$STATE/.dbs"
    fi
}

cmd_up() {
    local t0=$SECONDS
    install_aio_packages
    VENV=$(bash "$ALTDRIVER_TOP/tools/setup-venv.sh" aio-venv \
        tools/aio/requirements.txt)
    mkdir -p "$STATE"; echo "$VENV" >"$STATE/venv"
    write_configs
    install_ml2_driver
    write_clouds_yaml
    start_mariadb
    start_rabbitmq
    keystone_setup
    uwsgi_api keystone OS_KEYSTONE_CONFIG_DIR
    wait_http keystone "$KEYSTONE/v3" 60
    catalog_setup
    db_setup
    uwsgi_api placement OS_PLACEMENT_CONFIG_DIR
    uwsgi_api glance OS_GLANCE_CONFIG_DIR
    start_ovs
    uwsgi_api neutron OS_NEUTRON_CONFIG_DIR
    uwsgi_api nova-api OS_NOVA_CONFIG_DIR nova
    local nova=(--config-file "$ETC/nova/nova.conf")
    start nova-conductor "$VENV/bin/nova-conductor" "${nova[@]}"
    start nova-scheduler "$VENV/bin/nova-scheduler" "${nova[@]}"
    start nova-compute env -u OS_NOVA_DISABLE_EVENTLET_PATCHING \
        "$VENV/bin/nova-compute" "${nova[@]}" --config-file "$ETC/nova/nova-compute.conf"
    start_libvirt2
    start nova-compute2 env -u OS_NOVA_DISABLE_EVENTLET_PATCHING \
        "$VENV/bin/nova-compute" "${nova[@]}" --config-file "$ETC/nova/nova-compute2.conf"
    wait_http placement http://127.0.0.1:8778/ 60
    wait_http glance http://127.0.0.1:9292/ 60
    wait_http neutron http://127.0.0.1:9696/ 60
    network_setup
    wait_http nova-api http://127.0.0.1:8774/ 60
    # the scheduler maps new compute hosts into cell1 by itself
    local i s q="select count(*) from nova_api.host_mappings where host in
        ('$HOSTNAME_COMPUTE', '$HOSTNAME_COMPUTE2')"
    for ((i = 0; i < 600; i++)); do
        [ "$(mysql_ -N -e "$q" 2>/dev/null)" = 2 ] && break
        for s in nova-conductor nova-scheduler nova-compute nova-compute2; do
            pid_of $s >/dev/null || { tail -30 "$LOGS/$s.log" >&2; die "$s exited (log: $LOGS/$s.log)"; }
        done
        sleep 0.2
    done
    [ "$i" -lt 600 ] || die "the compute hosts were not both mapped within 120 s"
    start_horizon
    log "all-in-one cloud up in $((SECONDS - t0)) s: openstack --os-cloud $CLOUD server list"
}

cmd_status() {
    local s pid rc=0 rss total=0
    printf '%-15s %-8s %-10s %s\n' service pid rss_MiB answer
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
            printf '%-15s %-8s %-10s %s\n' "$s" "$pid" "$rss" "$ans"
        else
            [ "$s" = epmd ] && continue
            printf '%-15s %-8s %-10s %s\n' "$s" - - "NOT RUNNING"; rc=1
        fi
    done
    printf '%-15s %-8s %-10s %s\n' total '' "$total" '(guests not included)'
    return $rc
}

cmd_down() {
    # the OpenStack services in parallel (nova-compute may need long), then
    # the message queue and the database they used
    local s pids=()
    stop_one horizon
    for s in nova-compute nova-compute2 nova-scheduler nova-conductor nova-api \
             neutron glance placement keystone; do
        if [[ $s == nova-compute* ]]; then STOP_WAIT=45 stop_one $s & else stop_one $s & fi
        pids+=($!)
    done
    wait "${pids[@]}"
    # guests of the second host keep running, as on the system libvirtd: the
    # next `up` reconnects to them
    stop_one libvirtd2
    stop_one virtlogd2
    stop_one ovs-vswitchd
    stop_one ovsdb-server
    stop_one rabbitmq
    stop_one epmd
    stop_one mariadb
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
    browser-tour) shift; exec "$(cat "$STATE/venv")/bin/python" "$AIO_DIR/browser_tour.py" "$@" ;;
    *) echo "usage: $0 up|status|tour|browser-tour [OUTDIR]|down|kill SERVICE" >&2; exit 2 ;;
esac
