"""One libvirt domain in nova's terms: the only code that calls a domain
or reads domain XML. A guest removed meanwhile (a delete racing another
operation) reaches nova as InstanceNotFound, not as a libvirtError.
"""

import collections
import errno
import functools
import os
import time

import libvirt
from lxml import etree
from nova.compute import power_state
from nova import exception
from nova.virt import hardware
from oslo_log import log as logging

from nova_altdriver import domain
from nova_altdriver import paths

LOG = logging.getLogger(__name__)

# libvirt domain state -> nova power state
POWER_STATES = {
    libvirt.VIR_DOMAIN_NOSTATE: power_state.NOSTATE,
    libvirt.VIR_DOMAIN_RUNNING: power_state.RUNNING,
    libvirt.VIR_DOMAIN_BLOCKED: power_state.RUNNING,
    libvirt.VIR_DOMAIN_PAUSED: power_state.PAUSED,
    libvirt.VIR_DOMAIN_SHUTDOWN: power_state.SHUTDOWN,
    libvirt.VIR_DOMAIN_SHUTOFF: power_state.SHUTDOWN,
    libvirt.VIR_DOMAIN_CRASHED: power_state.CRASHED,
    libvirt.VIR_DOMAIN_PMSUSPENDED: power_state.SUSPENDED,
}
# Stopped from running in this daemon's life: only a managed save (reason
# "saved") makes a saved memory image, so there is none to ask about.
STOPPED_WITHOUT_SAVE = frozenset((
    libvirt.VIR_DOMAIN_SHUTOFF_SHUTDOWN, libvirt.VIR_DOMAIN_SHUTOFF_DESTROYED,
    libvirt.VIR_DOMAIN_SHUTOFF_CRASHED, libvirt.VIR_DOMAIN_SHUTOFF_FAILED))


# QEMU stuck in uninterruptible I/O survives SIGKILL for a moment; libvirt
# then fails destroy with EBUSY. Retried as the in-tree driver does.
_DESTROY_ATTEMPTS = 6
_DESTROY_RETRY_SECONDS = 1.0
_JOB_POLL_SECONDS = 0.05


def _disk(el):
    def text(path):
        return el.xpath('string(%s)' % path) or None
    rbd = None
    if el.xpath("source/@protocol = 'rbd'"):
        rbd = domain.Rbd(
            name=text('source/@name'),
            hosts=tuple((h.get('name'), h.get('port'))
                        for h in el.findall('source/host')),
            username=text('auth/@username'),
            secret_uuid=text('auth/secret/@uuid'))
    return domain.Disk(
        source=text('source/@file'), format=text('driver/@type'),
        dev=text('target/@dev'), bus=text('target/@bus'),
        device=el.get('device', 'disk'),
        boot_order=int(text('boot/@order') or 0) or None,
        serial=text('serial'), rbd=rbd, alias=text('alias/@name'),
        readonly=el.find('readonly') is not None and
        el.get('device') != 'cdrom',
        shareable=el.find('shareable') is not None,
        iotune=tuple((limit.tag, limit.text)
                     for limit in el.iterfind('iotune/*')))


# Where the guest finds a device: its bus (pci, ide, scsi or usb) and its
# address there in nova's notation (PCI 0000:00:03.0, IDE bus:unit, SCSI
# controller:bus:target:unit, USB bus:port); address None where the
# definition has none (libvirt assigns them, QEMU's driver at definition).
DeviceAddress = collections.namedtuple('DeviceAddress', 'bus address')
# The NICs and disks of a definition by where the guest finds them: nics
# {MAC (lower case): DeviceAddress or None}, disks {target dev: (serial,
# DeviceAddress or None)}: what nova's device metadata (tags) is built of.
DeviceAddresses = collections.namedtuple('DeviceAddresses', 'nics disks')

# the disk buses whose drive or USB address nova's metadata can name
_DRIVE_BUSES = ('ide', 'scsi', 'usb')


def _hex(el, name):
    return int(el.get(name, '0'), 16)


def _device_address(el, disk_bus=None):
    """The DeviceAddress of a device element: a PCI address as such; a
    disk on an IDE, SCSI or USB bus by that bus (its address when libvirt
    gave one); None for anything else (a virtio disk libvirt has not placed
    on the PCI bus yet).
    """
    address = el.find('address')
    kind = address.get('type') if address is not None else None
    if kind == 'pci':
        return DeviceAddress('pci', '%04x:%02x:%02x.%x' % tuple(
            _hex(address, name)
            for name in ('domain', 'bus', 'slot', 'function')))
    if disk_bus not in _DRIVE_BUSES:
        return None
    if kind == 'drive' and disk_bus == 'ide':
        return DeviceAddress('ide', '%d:%d' % (
            int(address.get('bus', '0')), int(address.get('unit', '0'))))
    if kind == 'drive' and disk_bus == 'scsi':
        return DeviceAddress('scsi', '%x:%x:%x:%x' % tuple(
            int(address.get(name, '0'))
            for name in ('controller', 'bus', 'target', 'unit')))
    if kind == 'usb' and disk_bus == 'usb':
        return DeviceAddress('usb', '%s:%s' % (address.get('bus', '0'),
                                               address.get('port', '0')))
    return DeviceAddress(disk_bus, None)


def device_addresses_of(xml):
    """The DeviceAddresses of a domain definition (text)."""
    devices = etree.fromstring(xml).find('devices')
    if devices is None:
        return DeviceAddresses({}, {})
    nics = {el.xpath('string(mac/@address)').lower(): _device_address(el)
            for el in devices.findall('interface')}
    disks = {el.xpath('string(target/@dev)'): (
        el.findtext('serial'),
        _device_address(el, el.xpath('string(target/@bus)')))
        for el in devices.findall('disk')}
    return DeviceAddresses(nics, disks)


def _device_xml(disk):
    return etree.tostring(domain.disk_element(disk), encoding='unicode')


def disks_of(xml):
    """The disks of a domain definition (text), as domain.Disk."""
    return [_disk(el) for el in etree.fromstring(xml).findall('devices/disk')]


def _graphics_port(graphics, name):
    """A port of a <graphics> element (None for none): libvirt writes -1
    until QEMU runs.
    """
    port = int(graphics.get(name, -1)) if graphics is not None else -1
    return port if port > 0 else None


def serial_ports_of(xml):
    """[(address, port)] of the TCP serial ports a domain definition (text)
    listens on, in the guest's order; empty for a pty serial port.
    """
    return [(source.get('host'), int(source.get('service')))
            for source in etree.fromstring(xml).xpath(
                "devices/serial[@type='tcp']/source[@mode='bind']")]


def is_rescue_definition(xml):
    """Whether a domain definition (text) boots a rescue disk: judged by
    its disk files, not by text anywhere in it (a server's name is in it).
    """
    return any(os.path.basename(disk.source or '') == paths.RESCUE_DISK
               for disk in disks_of(xml))


def uuid_of(xml):
    """The UUID a domain definition (text) names; None if it is damaged."""
    try:
        return etree.fromstring(xml).findtext('uuid')
    except etree.XMLSyntaxError:
        return None


def _gone_is_not_found(method):
    """A domain call: a guest removed meanwhile is InstanceNotFound, and a
    call that met a libvirtd restart (the connection broke under it) is
    made once more on a new connection.
    """
    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        for attempt in (1, 2):
            try:
                return method(self, *args, **kwargs)
            except libvirt.libvirtError as e:
                if e.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
                    raise exception.InstanceNotFound(instance_id=self.uuid)
                fresh = (self._reconnect(self._domain, e)
                         if self._reconnect and attempt == 1 else None)
                if fresh is None:
                    raise
                LOG.warning('libvirtd went away under a call on %s (%s); '
                            'calling again', self.uuid, e)
                self._domain = fresh
    return wrapper


# What a running live migration's job has done (bytes).
JobProgress = collections.namedtuple('JobProgress', (
    'memory_total', 'memory_processed', 'memory_remaining',
    'disk_total', 'disk_processed', 'disk_remaining'))


def migration_flags(copy_disks, unsafe, post_copy):
    """The libvirt flags of a live migration: peer to peer (the source
    libvirtd opens the destination's), the definition moved with the
    guest; copy_disks: the local disks go along over NBD (only those named
    in the migrate_disks parameter); unsafe: libvirt's storage safety check
    skipped (the caller proved the disks shared); post_copy: a switch to
    post-copy is permitted.
    """
    flags = (libvirt.VIR_MIGRATE_LIVE | libvirt.VIR_MIGRATE_PEER2PEER |
             libvirt.VIR_MIGRATE_UNDEFINE_SOURCE |
             libvirt.VIR_MIGRATE_PERSIST_DEST)
    if copy_disks:
        flags |= libvirt.VIR_MIGRATE_NON_SHARED_INC
    if unsafe:
        flags |= libvirt.VIR_MIGRATE_UNSAFE
    if post_copy:
        flags |= libvirt.VIR_MIGRATE_POSTCOPY
    return flags


# A guest's memory in KiB: what it was given, and what its balloon leaves
# it now.
Memory = collections.namedtuple('Memory', 'maximum current')
# One disk's counters, in virDomainBlockStats' order (-1: a count the
# hypervisor does not keep, such as QEMU's errors).
DiskCounters = collections.namedtuple('DiskCounters', (
    'read_requests', 'read_bytes', 'write_requests', 'write_bytes',
    'errors'))
# One network interface's counters, in virDomainInterfaceStats' order.
NicCounters = collections.namedtuple('NicCounters', (
    'rx_bytes', 'rx_packets', 'rx_errors', 'rx_drop',
    'tx_bytes', 'tx_packets', 'tx_errors', 'tx_drop'))
# A network interface of a guest: its MAC, the host device libvirt knows it
# by and its NicCounters (None where there is no device or no count).
Nic = collections.namedtuple('Nic', 'mac dev counters')

# libvirt's answers when it has no such counter: the guest is not running
# (it stopped since nova looked), the hypervisor counts no such thing, or
# the device is not counted. Anything else is an error of its own.
_NOT_COUNTED = frozenset((
    libvirt.VIR_ERR_OPERATION_INVALID, libvirt.VIR_ERR_NO_SUPPORT,
    libvirt.VIR_ERR_OPERATION_UNSUPPORTED, libvirt.VIR_ERR_INVALID_ARG))


def _counted(call, *args):
    """call(*args), or None where libvirt has no such counter."""
    try:
        return call(*args)
    except libvirt.libvirtError as e:
        if e.get_error_code() not in _NOT_COUNTED:
            raise
        LOG.debug('No count from libvirt: %s', e)
        return None


class MigrationCancelled(exception.NovaException):
    msg_fmt = 'The live migration of %(uuid)s was cancelled'


class AgentUnresponsive(exception.NovaException):
    msg_fmt = ('The QEMU guest agent of %(uuid)s does not answer (not '
               'running, or not started yet): %(reason)s')


class BlockJobEnded(exception.NovaException):
    msg_fmt = ('The block job on disk %(target)s of %(uuid)s ended without '
               'completing (aborted or failed)')


class Guest(object):

    def __init__(self, domain, reconnect=None, unsaved=None):
        """:param reconnect: reconnect(domain, error) gives the domain on a
            new connection when error says libvirtd went away, else None
        :param unsaved: a set, shared for the life of domain's connection,
            of the UUIDs of guests found shut off, not by a managed save,
            and without a saved memory image (see power_state)
        """
        self._domain = domain
        self._reconnect = reconnect
        self._unsaved = set() if unsaved is None else unsaved
        self.uuid = domain.UUIDString()  # kept: it names a guest gone

    @property
    def name(self):
        return self._domain.name()

    @_gone_is_not_found
    def power_state(self):
        state, reason = self._domain.state()
        if (state != libvirt.VIR_DOMAIN_SHUTOFF or
                reason in STOPPED_WITHOUT_SAVE):
            return POWER_STATES.get(state, power_state.NOSTATE)
        # A guest shut off but not by a managed save, once found without a
        # saved memory image, gains one only by running and being saved,
        # which makes its reason "saved": nova-compute asks every guest's
        # state at each power state sync, and guests not started since
        # libvirtd was then cost one call less each.
        saved = reason == libvirt.VIR_DOMAIN_SHUTOFF_SAVED
        if not saved and self.uuid in self._unsaved:
            return power_state.SHUTDOWN
        if self.has_saved_memory():
            return power_state.SUSPENDED  # nova's suspend: a managed save
        if not saved:
            self._unsaved.add(self.uuid)
        return power_state.SHUTDOWN

    @_gone_is_not_found
    def info(self):
        return hardware.InstanceInfo(state=self.power_state(),
                                     internal_id=self._domain.ID())

    @_gone_is_not_found
    def start(self, paused=False):
        self._domain.createWithFlags(
            libvirt.VIR_DOMAIN_START_PAUSED if paused else 0)

    @_gone_is_not_found
    def resume(self):
        self._domain.resume()

    @_gone_is_not_found
    def is_active(self):
        return bool(self._domain.isActive())

    @_gone_is_not_found
    def xml(self, inactive=False):
        """The live definition, or with inactive the persistent one."""
        return self._domain.XMLDesc(
            libvirt.VIR_DOMAIN_XML_INACTIVE if inactive else 0)

    def _unless_off(self, operation):
        """Runs operation; a guest already off, or gone, is not an error."""
        try:
            operation()
        except libvirt.libvirtError as e:
            if e.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
                return
            if (e.get_error_code() != libvirt.VIR_ERR_OPERATION_INVALID or
                    self.is_active()):
                raise

    def _destroy(self):
        for attempt in range(1, _DESTROY_ATTEMPTS + 1):
            try:
                return self._domain.destroy()
            except libvirt.libvirtError as e:
                if (e.get_error_code() != libvirt.VIR_ERR_SYSTEM_ERROR or
                        e.get_int1() != errno.EBUSY or
                        attempt == _DESTROY_ATTEMPTS):
                    raise
                LOG.warning('QEMU of %s is busy; stopping it again (%s)',
                            self.uuid, e)
                time.sleep(_DESTROY_RETRY_SECONDS)

    @_gone_is_not_found
    def hard_stop(self):
        """Powers off at once."""
        self._unless_off(self._destroy)

    def undefine(self):
        """Removes the definition with its managed save image, snapshot
        metadata and UEFI variable store; a guest gone already is fine.
        """
        flags = (libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE |
                 libvirt.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA)
        try:
            try:
                self._domain.undefineFlags(
                    flags | libvirt.VIR_DOMAIN_UNDEFINE_CHECKPOINTS_METADATA |
                    libvirt.VIR_DOMAIN_UNDEFINE_NVRAM)
            except libvirt.libvirtError as e:
                # Hypervisor drivers without NVRAM or checkpoints (libvirt's
                # test driver) refuse those flags.
                if e.get_error_code() != libvirt.VIR_ERR_INVALID_ARG:
                    raise
                self._domain.undefineFlags(flags)
        except libvirt.libvirtError as e:
            if e.get_error_code() != libvirt.VIR_ERR_NO_DOMAIN:
                raise

    @_gone_is_not_found
    def shutdown(self):
        """Presses the ACPI power button (the guest decides what to do)."""
        self._unless_off(self._domain.shutdown)

    @_gone_is_not_found
    def inject_nmi(self):
        """A crash dump as nova's in-tree libvirt driver triggers it: the
        guest's kernel turns the NMI into a dump, a panic or a log line,
        as it is configured to.
        """
        try:
            self._domain.injectNMI(0)
        except libvirt.libvirtError as e:
            if e.get_error_code() == libvirt.VIR_ERR_OPERATION_INVALID:
                raise exception.InstanceNotRunning(instance_id=self.uuid)
            raise

    @_gone_is_not_found
    def pause(self):
        self._domain.suspend()

    @_gone_is_not_found
    def save(self):
        """Saves memory to disk and stops (libvirt's managed save)."""
        self._domain.managedSave(0)

    @_gone_is_not_found
    def has_saved_memory(self):
        return bool(self._domain.hasManagedSaveImage(0))

    @_gone_is_not_found
    def discard_saved_memory(self):
        if self.has_saved_memory():
            self._domain.managedSaveRemove(0)

    def disks(self, inactive=False):
        """The guest's disks (domain.Disk), live or as defined."""
        return disks_of(self.xml(inactive))

    def device_addresses(self, inactive=False):
        """Where the guest finds its NICs and disks (DeviceAddresses), live
        or as defined.
        """
        return device_addresses_of(self.xml(inactive))

    def vnc_port(self):
        """The port of the guest's VNC server, or None."""
        graphics = etree.fromstring(self.xml()).find(
            "devices/graphics[@type='vnc']")
        return _graphics_port(graphics, 'port')

    def spice_ports(self):
        """(port, TLS port) of the guest's SPICE server, None for a port
        it has not; None when it has no SPICE server.
        """
        graphics = etree.fromstring(self.xml()).find(
            "devices/graphics[@type='spice']")
        if graphics is None:
            return None
        return (_graphics_port(graphics, 'port'),
                _graphics_port(graphics, 'tlsPort'))

    def serial_ports(self):
        """[(address, port)] of the guest's TCP serial ports."""
        return serial_ports_of(self.xml())

    def disk_target(self, path, inactive=False):
        """The target device (vda) of the disk backed by file path; None
        if no disk is.
        """
        return next((disk.dev for disk in self.disks(inactive)
                     if disk.source == path), None)

    def attach_disk(self, disk):
        """Adds a disk (domain.Disk) to the definition and, while the guest
        runs or is paused, to the guest itself.
        """
        self.attach_device(_device_xml(disk))

    def detach_disk(self, disk, live):
        """detach_device of a disk (domain.Disk)."""
        return self.detach_device(_device_xml(disk), live)

    @_gone_is_not_found
    def attach_device(self, xml):
        """Adds a device (its XML) to the definition and, while the guest
        runs or is paused, to the guest itself.
        """
        flags = libvirt.VIR_DOMAIN_AFFECT_CONFIG
        if self._domain.isActive():
            flags |= libvirt.VIR_DOMAIN_AFFECT_LIVE
        self._domain.attachDeviceFlags(xml, flags)

    @_gone_is_not_found
    def detach_device(self, xml, live):
        """Asks for a device's removal from the definition or, with live,
        from the running guest, which decides when to let it go (libvirt
        tells with an event: Host.device_removal). False when it is not
        there.
        """
        flags = (libvirt.VIR_DOMAIN_AFFECT_LIVE if live
                 else libvirt.VIR_DOMAIN_AFFECT_CONFIG)
        try:
            self._domain.detachDeviceFlags(xml, flags)
        except libvirt.libvirtError as e:
            code, message = e.get_error_code(), e.get_error_message() or ''
            if (code == libvirt.VIR_ERR_DEVICE_MISSING or
                    code == libvirt.VIR_ERR_OPERATION_FAILED and
                    'not found' in message):
                return False
            # asked before: the answer to that request is still to come
            if 'already in the process of unplug' not in message:
                raise
        return True

    @_gone_is_not_found
    def mirror_disk(self, target, disk):
        """Starts copying the running guest's disk target onto disk (a
        domain.Disk whose storage exists, as large): the guest goes on with
        target, every write mirrored, until pivot_when_ready or
        abort_block_job (a transient job: it ends with libvirtd).
        """
        self._domain.blockCopy(
            target, _device_xml(disk), None,
            libvirt.VIR_DOMAIN_BLOCK_COPY_REUSE_EXT |
            libvirt.VIR_DOMAIN_BLOCK_COPY_TRANSIENT_JOB)

    @_gone_is_not_found
    def abort_block_job(self, target):
        """Ends the block job on target, the guest staying where it was
        (nothing when there is none).
        """
        if self._domain.blockJobInfo(target, 0):
            self._domain.blockJobAbort(target, 0)

    @_gone_is_not_found
    def resize_disk(self, target, size):
        """Tells the running guest its disk target has size bytes now."""
        self._domain.blockResize(target, size,
                                 libvirt.VIR_DOMAIN_BLOCK_RESIZE_BYTES)

    @_gone_is_not_found
    def freeze_filesystems(self):
        """Flushes and freezes the guest's filesystems (its QEMU agent)."""
        try:
            self._domain.fsFreeze()
        except libvirt.libvirtError as e:
            raise exception.InstanceQuiesceFailed(reason=e)

    @_gone_is_not_found
    def thaw_filesystems(self):
        try:
            self._domain.fsThaw()
        except libvirt.libvirtError as e:
            raise exception.InstanceQuiesceFailed(reason=e)

    def set_user_password(self, user, new_pass):
        """Sets the password of user in the guest, through its QEMU agent
        (which hashes it there). AgentUnresponsive when no agent answers;
        InternalError when the agent could not (no such user, say).
        """
        try:
            self._set_user_password(user, new_pass)
        except libvirt.libvirtError as e:
            code = e.get_error_code()
            if code == libvirt.VIR_ERR_AGENT_UNRESPONSIVE:
                raise AgentUnresponsive(uuid=self.uuid, reason=e)
            raise exception.InternalError(
                'Error from libvirt while setting the password of %r: '
                '[Error Code %s] %s' % (user, code, e))

    @_gone_is_not_found
    def _set_user_password(self, user, new_pass):
        self._domain.setUserPassword(user, new_pass, 0)

    @_gone_is_not_found
    def redirect_writes(self, target, overlay, quiesce, require_quiesce):
        """External disk-only snapshot: target's writes go to the new
        overlay from now on, its current file becomes read-only.
        """
        snap = etree.Element('domainsnapshot')
        disks = etree.SubElement(snap, 'disks')
        for disk in self.disks():
            el = etree.SubElement(disks, 'disk', name=disk.dev)
            if disk.dev == target:
                el.set('snapshot', 'external')
                etree.SubElement(el, 'source', file=overlay)
            else:
                el.set('snapshot', 'no')
        xml = etree.tostring(snap, encoding='unicode')
        flags = (libvirt.VIR_DOMAIN_SNAPSHOT_CREATE_DISK_ONLY |
                 libvirt.VIR_DOMAIN_SNAPSHOT_CREATE_NO_METADATA |
                 libvirt.VIR_DOMAIN_SNAPSHOT_CREATE_ATOMIC)
        if quiesce:
            try:
                self._domain.snapshotCreateXML(
                    xml, flags | libvirt.VIR_DOMAIN_SNAPSHOT_CREATE_QUIESCE)
                return
            except libvirt.libvirtError as e:
                if require_quiesce:
                    raise exception.InstanceQuiesceFailed(reason=e)
                LOG.info('Quiescing failed (%s); snapshotting without', e)
        self._domain.snapshotCreateXML(xml, flags)

    @_gone_is_not_found
    def commit_active_layer(self, target):
        """Folds target's top layer into the layer right below it: only
        that one (SHALLOW), never deeper into a shared cached image.
        """
        self._domain.blockCommit(target, None, None, 0,
                                 libvirt.VIR_DOMAIN_BLOCK_COMMIT_ACTIVE |
                                 libvirt.VIR_DOMAIN_BLOCK_COMMIT_SHALLOW)

    @_gone_is_not_found
    def has_block_job(self, target):
        return bool(self._domain.blockJobInfo(target, 0))

    @_gone_is_not_found
    def block_job_ready(self, target):
        """The block job on target can be pivoted: libvirt marks the disk's
        mirror ready (cur == end comes earlier, and a pivot then fails with
        "not ready for pivot yet", nova bug 1530275). BlockJobEnded when
        there is no job any more: an aborted or failed one never is ready.
        """
        info = self._domain.blockJobInfo(target, 0)
        if not info:
            raise BlockJobEnded(uuid=self.uuid, target=target)
        if info['end'] == 0 or info['cur'] != info['end']:
            return False
        return bool(etree.fromstring(self.xml()).xpath(
            "devices/disk[target/@dev=$dev]/mirror[@ready='yes']",
            dev=target))

    def pivot_when_ready(self, target):
        """Waits until the block job on target is ready, then moves the
        guest onto the job's destination (BlockJobEnded if the job ends
        first).
        """
        while not self.block_job_ready(target):
            time.sleep(_JOB_POLL_SECONDS)
        self._pivot(target)

    @_gone_is_not_found
    def _pivot(self, target):
        self._domain.blockJobAbort(target,
                                   libvirt.VIR_DOMAIN_BLOCK_JOB_ABORT_PIVOT)

    # -- what the hypervisor counts (nova's server diagnostics) -----------

    def domain_type(self):
        """The hypervisor that runs the guest: kvm or qemu (software)."""
        return etree.fromstring(self.xml()).get('type')

    @_gone_is_not_found
    def memory_kib(self):
        _state, maximum, current, _vcpus, _cpu_time = self._domain.info()
        return Memory(maximum, current)

    @_gone_is_not_found
    def memory_stats(self):
        """What the guest's balloon driver reports, in KiB under libvirt's
        names (actual, rss, unused, ...); empty where there is nothing.
        """
        return _counted(self._domain.memoryStats) or {}

    @_gone_is_not_found
    def vcpu_times(self):
        """[(vCPU number, CPU time in ns)]; empty where libvirt cannot
        tell.
        """
        vcpus = _counted(self._domain.vcpus)
        if not vcpus:
            return []
        return [(number, cpu_time)
                for number, _state, cpu_time, _host_cpu in vcpus[0]]

    @_gone_is_not_found
    def disk_counters(self):
        """[(target, DiskCounters)] of the disks libvirt counts for."""
        counted = []
        for disk in self.disks():
            counters = _counted(self._domain.blockStats, disk.dev)
            if counters:
                counted.append((disk.dev, DiskCounters(*counters)))
        return counted

    @_gone_is_not_found
    def nics(self):
        """The guest's network interfaces (Nic), as the live definition
        lists them.
        """
        nics = []
        for el in etree.fromstring(self.xml()).findall('devices/interface'):
            dev = el.xpath('string(target/@dev)') or None
            counters = dev and _counted(self._domain.interfaceStats, dev)
            nics.append(Nic(el.xpath('string(mac/@address)'), dev,
                            NicCounters(*counters) if counters else None))
        return nics

    def interface(self, mac, inactive=False):
        """The <interface> with this MAC address in the live definition
        (or the inactive one), as (its XML, its alias); None when there is
        none.
        """
        for el in etree.fromstring(self.xml(inactive)).findall(
                'devices/interface'):
            if el.xpath('string(mac/@address)').lower() == mac.lower():
                return (etree.tostring(el, encoding='unicode'),
                        el.xpath('string(alias/@name)') or None)
        return None

    # -- live migration ----------------------------------------------------

    @_gone_is_not_found
    def migratable_xml(self):
        """The live definition as another host may start it (without what
        libvirt adds by itself, such as default controllers).
        """
        return self._domain.XMLDesc(libvirt.VIR_DOMAIN_XML_MIGRATABLE)

    @_gone_is_not_found
    def is_persistent(self):
        return bool(self._domain.isPersistent())

    def migrate(self, uri, migrate_uri, destination_xml, copy_disks=(),
                bandwidth=0, unsafe=False, post_copy=False):
        """Live-migrates the guest to the libvirtd at uri, its memory (and
        copy_disks, the targets of local disks) streamed to migrate_uri;
        destination_xml is its definition there, live and persistent.
        Blocks until done. MigrationCancelled when abort_job ended it.

        Never called again after a lost connection (unlike the other
        calls): a migration may have gone on without this side.
        """
        params = {
            libvirt.VIR_MIGRATE_PARAM_URI: migrate_uri,
            libvirt.VIR_MIGRATE_PARAM_DEST_XML: destination_xml,
            libvirt.VIR_MIGRATE_PARAM_PERSIST_XML: destination_xml,
            libvirt.VIR_MIGRATE_PARAM_BANDWIDTH: bandwidth,
        }
        if copy_disks:
            params[libvirt.VIR_MIGRATE_PARAM_MIGRATE_DISKS] = list(copy_disks)
        try:
            self._domain.migrateToURI3(
                uri, params, migration_flags(bool(copy_disks), unsafe,
                                             post_copy))
        except libvirt.libvirtError as e:
            if e.get_error_code() == libvirt.VIR_ERR_OPERATION_ABORTED:
                raise MigrationCancelled(uuid=self.uuid)
            if e.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
                raise exception.InstanceNotFound(instance_id=self.uuid)
            raise

    @_gone_is_not_found
    def job_progress(self):
        """The running job's JobProgress, None when there is none."""
        try:
            stats = self._domain.jobStats()
        except libvirt.libvirtError as e:
            # the guest stopped here: a migration just completed
            if e.get_error_code() != libvirt.VIR_ERR_OPERATION_INVALID:
                raise
            return None
        if stats.get('type') != libvirt.VIR_DOMAIN_JOB_UNBOUNDED:
            return None
        return JobProgress(*(stats.get(name, 0)
                             for name in JobProgress._fields))

    @_gone_is_not_found
    def abort_job(self):
        """Cancels the running job (a migration: the guest stays here);
        nothing when there is none.
        """
        try:
            self._domain.abortJob()
        except libvirt.libvirtError as e:
            if e.get_error_code() != libvirt.VIR_ERR_OPERATION_INVALID:
                raise

    @_gone_is_not_found
    def start_post_copy(self):
        """Switches the running migration to post-copy: the guest runs on
        the destination from now on, fetching its missing memory there.
        """
        self._domain.migrateStartPostCopy(0)
