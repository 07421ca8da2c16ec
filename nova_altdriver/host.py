"""The libvirt connection of one compute host, and the events it delivers.

One :class:`Host` owns one connection: opened on first use, shared by every
thread of nova-compute, and opened again when libvirtd went away (a restart
breaks open connections with "Broken pipe"). Lifecycle events arrive in
libvirt's event loop thread and reach nova from a dispatcher thread of their
own, so a slow nova never stalls libvirt.
"""

import collections
import contextlib
import functools
import os
import queue
import threading
import time

import libvirt
from lxml import etree
from nova import exception
from nova.virt import event as virtevent
from oslo_log import log as logging

from nova_altdriver import guest as guest_mod

LOG = logging.getLogger(__name__)

MIN_LIBVIRT_VERSION = (8, 0, 0)
MIN_QEMU_VERSION = (6, 2, 0)
# Where the kernel tells whether it schedules cgroups' CPU time (the files
# the in-tree driver reads): cgroups v1's mounts, cgroups v2's controllers.
MOUNTS = '/proc/self/mounts'
CGROUP2_CONTROLLERS = '/sys/fs/cgroup/cgroup.controllers'
# The description of the secrets this driver defines (and may remove).
SECRET_DESCRIPTION = 'nova_altdriver: a Cinder volume user\'s cephx key'


def ceph_secret_xml(uuid, user):
    """The definition of a private libvirt ceph secret for cephx user,
    marked as this driver's own (SECRET_DESCRIPTION); its value is set
    apart. libvirt allows one secret per usage name, and operators (or
    devstack's ceph plugin, for the in-tree driver) often define
    'client.<user> secret' under a UUID of their own: the UUID in the
    name keeps ours from clashing with it.
    """
    secret = etree.Element('secret', ephemeral='no', private='yes')
    etree.SubElement(secret, 'description').text = SECRET_DESCRIPTION
    etree.SubElement(secret, 'uuid').text = uuid
    usage = etree.SubElement(secret, 'usage', type='ceph')
    etree.SubElement(usage, 'name').text = 'client.%s secret %s' % (
        user, uuid)
    return etree.tostring(secret, encoding='unicode', pretty_print=True)


# What virNodeGetInfo says of the host (it returns a list).
NodeInfo = collections.namedtuple('NodeInfo', 'memory_mb cpus mhz')

# libvirt prints every error to stderr unless told otherwise; the errors
# reach the caller as exceptions and are logged there.
libvirt.registerErrorHandler(lambda opaque, error: None, None)

# libvirt's default event loop belongs to the process, not to a connection:
# one native thread runs it for every Host and lives as long as the process.
_event_loop_lock = threading.Lock()
_event_loop_started = False


def address_for_uri(addr):
    """An address as the host part of a URI (IPv6 in brackets)."""
    return '[%s]' % addr if ':' in addr else addr


@contextlib.contextmanager
def remote_directory(uri, path):
    """A directory of the libvirt host at uri, read through its libvirtd
    (no SSH trust between compute hosts): yields download(name, local
    path), which copies one file of it here, holes kept as holes.

    A transient storage pool over the directory lends its files libvirt's
    volume streams; it goes again at the end, the files stay.
    """
    conn = libvirt.open(uri)
    try:
        name = 'altdriver-' + os.path.basename(path.rstrip('/'))
        try:  # one a killed nova-compute left
            conn.storagePoolLookupByName(name).destroy()
        except libvirt.libvirtError as e:
            if e.get_error_code() != libvirt.VIR_ERR_NO_STORAGE_POOL:
                raise
        pool_xml = etree.Element('pool', type='dir')
        etree.SubElement(pool_xml, 'name').text = name
        etree.SubElement(etree.SubElement(pool_xml, 'target'),
                         'path').text = path
        pool = conn.storagePoolCreateXML(
            etree.tostring(pool_xml, encoding='unicode'), 0)
        try:
            yield functools.partial(_download, conn, pool)
        finally:
            pool.destroy()
    finally:
        conn.close()


def _download(conn, pool, name, local_path):
    volume = pool.storageVolLookupByName(name)
    stream = conn.newStream(0)
    with open(local_path, 'wb') as f:
        def data(_stream, chunk, _opaque):
            return f.write(chunk)

        def hole(_stream, length, _opaque):
            f.seek(length, os.SEEK_CUR)
            return 0

        try:
            volume.download(stream, 0, 0,
                            libvirt.VIR_STORAGE_VOL_DOWNLOAD_SPARSE_STREAM)
            stream.sparseRecvAll(data, hole, None)
            stream.finish()
        except Exception:
            stream.abort()
            raise
        f.truncate()  # a file that ends in a hole
        f.flush()
        os.fsync(f.fileno())


def _start_event_loop():
    global _event_loop_started
    with _event_loop_lock:
        if _event_loop_started:
            return
        libvirt.virEventRegisterDefaultImpl()
        threading.Thread(target=_run_event_loop, name='libvirt-event-loop',
                         daemon=True).start()
        _event_loop_started = True


def _run_event_loop():
    while True:
        libvirt.virEventRunDefaultImpl()


def is_connection_lost(error):
    """Whether a libvirtError means the daemon went away, not the call."""
    return (error.get_error_code() in (libvirt.VIR_ERR_SYSTEM_ERROR,
                                       libvirt.VIR_ERR_INTERNAL_ERROR,
                                       libvirt.VIR_ERR_NO_CONNECT)
            and error.get_error_domain() in (libvirt.VIR_FROM_REMOTE,
                                             libvirt.VIR_FROM_RPC))


class LibvirtUnavailable(exception.HypervisorUnavailable):
    msg_fmt = 'Cannot connect to libvirt at %(uri)s: %(reason)s'


_TRANSITIONS = {
    libvirt.VIR_DOMAIN_EVENT_STARTED: virtevent.EVENT_LIFECYCLE_STARTED,
    libvirt.VIR_DOMAIN_EVENT_STOPPED: virtevent.EVENT_LIFECYCLE_STOPPED,
    libvirt.VIR_DOMAIN_EVENT_SUSPENDED: virtevent.EVENT_LIFECYCLE_PAUSED,
    libvirt.VIR_DOMAIN_EVENT_RESUMED: virtevent.EVENT_LIFECYCLE_RESUMED,
}

_STOP = object()


class DeviceRemoval(object):
    """libvirt's answer to a device removal a guest was asked for."""

    def __init__(self):
        self._answered = threading.Event()
        self.removed = None

    def answer(self, removed):
        self.removed = removed
        self._answered.set()

    def wait(self, seconds):
        """True once removed, False if the guest refused, None if no
        answer came within seconds.
        """
        self._answered.wait(seconds)
        return self.removed


class Host(object):

    def __init__(self, uri, event_handler=None, stopped_event_delay=15.0):
        """:param event_handler: called with each nova LifecycleEvent
        :param stopped_event_delay: seconds a STOPPED event is held back;
            any later event of the same guest (a reboot's STARTED) drops it
        """
        self.uri = uri
        self._event_handler = event_handler
        self._stopped_event_delay = stopped_event_delay
        self._conn = None
        self._conn_lock = threading.Lock()
        self._unsaved = set()  # UUIDs: Guest.power_state; this connection
        self._events = queue.Queue()
        self._dispatcher = None
        self._device_waiters = {}  # (uuid, alias) -> DeviceRemoval
        self._device_waiters_lock = threading.Lock()
        self._capabilities = None

    # -- connection -------------------------------------------------------

    def get_connection(self):
        with self._conn_lock:
            if self._conn is None:
                self._conn = self._connect()
            return self._conn

    def _connect(self):
        LOG.debug('Connecting to libvirt at %s', self.uri)
        try:
            conn = libvirt.open(self.uri)
        except libvirt.libvirtError as e:
            raise LibvirtUnavailable(uri=self.uri, reason=e)
        if self._dispatcher is not None:
            for event_id, callback in (
                    (libvirt.VIR_DOMAIN_EVENT_ID_LIFECYCLE,
                     self._on_lifecycle_event),
                    (libvirt.VIR_DOMAIN_EVENT_ID_DEVICE_REMOVED,
                     self._on_device_removed),
                    (libvirt.VIR_DOMAIN_EVENT_ID_DEVICE_REMOVAL_FAILED,
                     self._on_device_removal_failed)):
                conn.domainEventRegisterAny(None, event_id, callback, None)
            conn.registerCloseCallback(self._on_connection_closed, None)
        LOG.info('Connected to libvirt at %s', self.uri)
        return conn

    def _forget_connection(self, conn):
        with self._conn_lock:
            if self._conn is conn:
                self._conn = None
                self._unsaved = set()  # what a new daemon says may differ

    def _on_connection_closed(self, conn, reason, opaque):
        # Runs in the event loop thread: no logging, no blocking.
        self._forget_connection(conn)

    def call(self, func):
        """Returns func(connection), reconnecting once if libvirtd is gone.

        Only for calls that are safe to repeat (queries, define, lookups):
        when the daemon restarted, the first attempt never reached it.
        """
        conn = self.get_connection()
        try:
            return func(conn)
        except libvirt.libvirtError as e:
            if not is_connection_lost(e):
                raise
            LOG.warning('Lost the libvirt connection to %s (%s); '
                        'reconnecting', self.uri, e)
            self._forget_connection(conn)
            return func(self.get_connection())

    # -- events -----------------------------------------------------------

    def start_events(self):
        """Delivers lifecycle events from now on (nova-compute's init_host)."""
        if self._dispatcher is not None:
            return
        _start_event_loop()
        self._dispatcher = threading.Thread(
            target=self._dispatch_events, name='altdriver-events',
            daemon=True)
        self._dispatcher.start()
        # A connection opened before the loop ran carries no event callbacks.
        with self._conn_lock:
            old, self._conn = self._conn, None
        if old is not None:
            old.close()
        self.get_connection()

    def _on_lifecycle_event(self, conn, dom, event, detail, opaque):
        # Runs in the event loop thread: no logging, no blocking.
        transition = _TRANSITIONS.get(event)
        if (event == libvirt.VIR_DOMAIN_EVENT_STOPPED and
                detail == libvirt.VIR_DOMAIN_EVENT_STOPPED_SAVED):
            # nova's suspend, not a power off (never held back or dropped)
            transition = virtevent.EVENT_LIFECYCLE_SUSPENDED
        elif event == libvirt.VIR_DOMAIN_EVENT_SUSPENDED:
            if detail == libvirt.VIR_DOMAIN_EVENT_SUSPENDED_MIGRATED:
                # The source pausing for a live migration's last step,
                # which may still fail: no pause of the server's, and
                # telling whether the migration completed would need a
                # call here. The migration's own end reports the outcome.
                transition = None
            elif detail == libvirt.VIR_DOMAIN_EVENT_SUSPENDED_POSTCOPY:
                # nova activates the destination's port bindings early
                transition = virtevent.EVENT_LIFECYCLE_POSTCOPY_STARTED
        if transition is not None:
            self._events.put(
                virtevent.LifecycleEvent(dom.UUIDString(), transition))

    def _on_device_removed(self, conn, dom, alias, opaque):
        # Runs in the event loop thread: no logging, no blocking.
        self._device_answer(dom.UUIDString(), alias, True)

    def _on_device_removal_failed(self, conn, dom, alias, opaque):
        self._device_answer(dom.UUIDString(), alias, False)

    def _device_answer(self, uuid, alias, removed):
        with self._device_waiters_lock:
            waiter = self._device_waiters.get((uuid, alias))
        if waiter is not None:
            waiter.answer(removed)

    @contextlib.contextmanager
    def device_removal(self, uuid, alias):
        """A DeviceRemoval of the device alias of guest uuid: created before
        the removal is asked for, so that no answer is missed.
        """
        waiter = DeviceRemoval()
        with self._device_waiters_lock:
            self._device_waiters[(uuid, alias)] = waiter
        try:
            yield waiter
        finally:
            with self._device_waiters_lock:
                self._device_waiters.pop((uuid, alias), None)

    def unplug_from_running(self, guest, name, alias, ask, present,
                            attempts, seconds):
        """Takes a device out of the running guest, which has to let it go.

        :param name: the device as the user knows it (vdb, a MAC address)
        :param alias: libvirt's alias of the device, which its
            device-removed event names
        :param ask: asks the guest (Guest.detach_device, live): False when
            the device is not there
        :param present: whether the device is still in the live definition
        :param attempts, seconds: the guest is asked again, up to attempts
            times, seconds each (a request can meet a guest still booting,
            as the in-tree driver found)
        :raises DeviceDetachFailed: the guest refused or did not let go
        """
        for attempt in range(1, attempts + 1):
            with self.device_removal(guest.uuid, alias) as removal:
                if not ask():
                    return  # gone meanwhile
                removed = removal.wait(seconds)
            if removed is False:
                raise exception.DeviceDetachFailed(
                    device=name, reason='the guest refused to let it go')
            if removed or not present():
                return
            LOG.warning('The guest has not let %s go within %d s (attempt '
                        '%d of %d)', name, seconds, attempt, attempts,
                        instance_uuid=guest.uuid)
        raise exception.DeviceDetachFailed(
            device=name, reason='the guest did not let it go in %d s' % (
                attempts * seconds))

    def _dispatch_events(self):
        held = {}  # uuid -> (due time, STOPPED event held back)
        while True:
            wait = None
            if held:
                wait = max(0.0, min(d for d, _ in held.values()) -
                           time.monotonic())
            try:
                event = self._events.get(timeout=wait)
            except queue.Empty:
                event = None
            if event is _STOP:
                return
            now = time.monotonic()
            if event is not None:
                if held.pop(event.uuid, None):
                    LOG.debug('Dropped a held STOPPED event of %s: %s '
                              'followed', event.uuid, event.get_name())
                if (event.transition == virtevent.EVENT_LIFECYCLE_STOPPED
                        and self._stopped_event_delay > 0):
                    held[event.uuid] = (now + self._stopped_event_delay,
                                        event)
                else:
                    self._emit(event)
            for uuid, (due, held_event) in list(held.items()):
                if due <= now:
                    del held[uuid]
                    self._emit(held_event)

    def _emit(self, event):
        if self._event_handler is None:
            return
        try:
            self._event_handler(event)
        except Exception:
            LOG.exception('Delivering %s failed', event)

    def close(self):
        """Stops event delivery and closes the connection."""
        if self._dispatcher is not None:
            self._events.put(_STOP)
            self._dispatcher.join(timeout=10)
            self._dispatcher = None
        with self._conn_lock:
            conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except libvirt.libvirtError as e:
                LOG.debug('Closing the libvirt connection: %s', e)

    # -- host facts -------------------------------------------------------

    def capabilities(self):
        """The host capabilities document (lxml); it does not change."""
        if self._capabilities is None:
            self._capabilities = etree.fromstring(
                self.call(lambda c: c.getCapabilities()))
        return self._capabilities

    def hostname(self):
        return self.call(lambda c: c.getHostname())

    def lib_version(self):
        return self.call(lambda c: c.getLibVersion())

    def hypervisor_type(self):
        return self.call(lambda c: c.getType())

    def hypervisor_version(self):
        return self.call(lambda c: c.getVersion())

    def node_info(self):
        _model, memory_mb, cpus, mhz = self.call(lambda c: c.getInfo())[:4]
        return NodeInfo(memory_mb, cpus, mhz)

    def check_hypervisor(self, virt_type):
        """Refuses (InternalError, saying why) a libvirt or QEMU older than
        this driver needs, or KVM guests where the host cannot run them.
        """
        self._require('libvirt', self.lib_version(), MIN_LIBVIRT_VERSION)
        if self.hypervisor_type() == 'QEMU':
            self._require('QEMU', self.hypervisor_version(),
                          MIN_QEMU_VERSION)
        domain_types = {d.get('type') for d in
                        self.capabilities().findall('guest/arch/domain')}
        if virt_type == 'kvm' and 'kvm' not in domain_types:
            raise exception.InternalError(
                '[altdriver] virt_type = kvm, but %s cannot run KVM guests '
                '(no usable /dev/kvm?); use virt_type = qemu for software '
                'emulation' % self.uri)

    def _require(self, name, number, minimum):
        version = (number // 1000000, number // 1000 % 1000, number % 1000)
        if version < minimum:
            raise exception.InternalError(
                'nova_altdriver needs %s >= %d.%d.%d, %s runs %d.%d.%d' % (
                    (name,) + minimum + (self.uri,) + version))

    @staticmethod
    def has_cpu_controller():
        """Whether the kernel has cgroups' CPU controller, which libvirt's
        <cputune> needs (CONFIG_CGROUP_SCHED, off in kernels built for
        scheduling latency): among cgroups v2's controllers, or mounted as
        a cgroups v1 hierarchy.
        """
        try:
            with open(CGROUP2_CONTROLLERS) as f:
                if 'cpu' in f.read().split():
                    return True
        except OSError:
            pass  # no cgroups v2 hierarchy at the root
        try:
            with open(MOUNTS) as f:
                return any(fields[2] == 'cgroup' and
                           'cpu' in fields[3].split(',')
                           for fields in (line.split() for line in f))
        except OSError:
            return False

    def cpu_compatible(self, cpu_xml, virt_type, arch):
        """Whether guests of this host's virt_type can run the CPU cpu_xml
        (a ``<cpu>``) describes; None when libvirt cannot tell.
        """
        try:
            result = self.call(lambda c: c.compareHypervisorCPU(
                None, arch, None, virt_type, cpu_xml, 0))
        except libvirt.libvirtError as e:
            if e.get_error_code() not in (libvirt.VIR_ERR_NO_SUPPORT,
                                          libvirt.VIR_ERR_INVALID_ARG):
                raise
            LOG.debug('libvirt cannot compare CPUs here: %s', e)
            return None
        return result != libvirt.VIR_CPU_COMPARE_INCOMPATIBLE

    def memory_stats(self):
        """Host memory in KiB (total, free, buffers, cached), or None when
        the hypervisor does not report it (libvirt's test driver).
        """
        try:
            return self.call(lambda c: c.getMemoryStats(
                libvirt.VIR_NODE_MEMORY_STATS_ALL_CELLS))
        except libvirt.libvirtError as e:
            if e.get_error_code() != libvirt.VIR_ERR_NO_SUPPORT:
                raise
            return None

    def cpu_stats(self):
        return self.call(lambda c: c.getCPUStats(
            libvirt.VIR_NODE_CPU_STATS_ALL_CPUS))

    # -- guests -----------------------------------------------------------

    def _guest(self, domain):
        return guest_mod.Guest(domain, reconnect=self._domain_again,
                               unsaved=self._unsaved)

    def _domain_again(self, domain, error):
        """domain on a new connection when error says libvirtd went away
        (its restart breaks open connections), else None.
        """
        if not is_connection_lost(error):
            return None
        self._forget_connection(domain.connect())
        return self.call(lambda c: c.lookupByUUIDString(domain.UUIDString()))

    def list_guests(self):
        return [self._guest(d)
                for d in self.call(lambda c: c.listAllDomains(0))]

    def guest_states(self):
        """{uuid: (libvirt state, current vCPUs)} for every domain, in one
        round trip whatever the number of guests (drivers that do not report
        vCPU statistics, like the test driver, cost one call per guest).
        """
        stats = self.call(lambda c: c.getAllDomainStats(
            libvirt.VIR_DOMAIN_STATS_STATE | libvirt.VIR_DOMAIN_STATS_VCPU))
        return {dom.UUIDString(): (s['state.state'],
                                   s.get('vcpu.current') or dom.info()[3])
                for dom, s in stats}

    def disks_of_every_guest(self):
        """{uuid: [domain.Disk]} of every domain libvirt knows, nova's or
        not, running or not: a running one's disks as QEMU has them now
        (its live definition), another's as defined. A guest removed
        meanwhile is left out. One call a guest after the listing: libvirt
        has no call that returns many definitions.
        """
        disks = {}
        for guest in self.list_guests():
            try:
                disks[guest.uuid] = guest.disks()
            except exception.InstanceNotFound:
                LOG.debug('%s went away while its disks were listed',
                          guest.uuid)
        return disks

    def define(self, xml):
        """Defines (or redefines) a persistent domain; returns its Guest."""
        return self._guest(self.call(lambda c: c.defineXML(xml)))

    def find_guest(self, uuid):
        """The guest with this UUID, or None."""
        try:
            return self._guest(
                self.call(lambda c: c.lookupByUUIDString(uuid)))
        except libvirt.libvirtError as e:
            if e.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
                return None
            raise

    def stop_guest(self, uuid):
        """Powers the guest with this UUID off at once, if there is one;
        returns it (None when there is none).
        """
        guest = self.find_guest(uuid)
        if guest is not None:
            guest.hard_stop()
        return guest

    # -- secrets ----------------------------------------------------------

    def has_secret(self, uuid):
        try:
            self.call(lambda c: c.secretLookupByUUIDString(uuid))
            return True
        except libvirt.libvirtError as e:
            if e.get_error_code() == libvirt.VIR_ERR_NO_SECRET:
                return False
            raise

    def define_ceph_secret(self, uuid, user, key):
        """A private libvirt secret of type ceph holding the key (bytes) of
        cephx user, marked as this driver's own (SECRET_DESCRIPTION).
        """
        made = self.call(lambda c: c.secretDefineXML(
            ceph_secret_xml(uuid, user)))
        made.setValue(key)

    def own_secrets(self):
        """The UUIDs of the secrets this driver defined (none where libvirt
        keeps no secrets, as its test driver).
        """
        try:
            secrets = self.call(lambda c: c.listAllSecrets(0))
        except libvirt.libvirtError as e:
            if e.get_error_code() != libvirt.VIR_ERR_NO_SUPPORT:
                raise
            return []
        return [s.UUIDString() for s in secrets
                if etree.fromstring(s.XMLDesc()).findtext('description') ==
                SECRET_DESCRIPTION]

    def remove_secret(self, uuid):
        """Undefines a secret; one gone already is fine."""
        try:
            self.call(lambda c: c.secretLookupByUUIDString(uuid)).undefine()
        except libvirt.libvirtError as e:
            if e.get_error_code() != libvirt.VIR_ERR_NO_SECRET:
                raise

    def get_guest(self, instance):
        guest = self.find_guest(instance.uuid)
        if guest is None:
            raise exception.InstanceNotFound(instance_id=instance.uuid)
        return guest
