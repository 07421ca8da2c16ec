"""A thin wrapper over one libvirt domain, in nova's terms."""

import libvirt
from lxml import etree
from nova.compute import power_state
from nova import exception
from nova.virt import hardware
from oslo_log import log as logging

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


class Guest(object):

    def __init__(self, domain):
        self._domain = domain

    @property
    def uuid(self):
        return self._domain.UUIDString()

    @property
    def name(self):
        return self._domain.name()

    def power_state(self):
        state, reason = self._domain.state()
        if (state == libvirt.VIR_DOMAIN_SHUTOFF and
                reason not in STOPPED_WITHOUT_SAVE and
                self.has_saved_memory()):
            return power_state.SUSPENDED  # nova's suspend: a managed save
        return POWER_STATES.get(state, power_state.NOSTATE)

    def info(self):
        return hardware.InstanceInfo(state=self.power_state(),
                                     internal_id=self._domain.ID())

    def start(self, paused=False):
        self._domain.createWithFlags(
            libvirt.VIR_DOMAIN_START_PAUSED if paused else 0)

    def resume(self):
        self._domain.resume()

    def is_active(self):
        return bool(self._domain.isActive())

    def xml(self, inactive=False):
        """The live definition, or with inactive the persistent one."""
        return self._domain.XMLDesc(
            libvirt.VIR_DOMAIN_XML_INACTIVE if inactive else 0)

    def _unless_off(self, operation):
        """Runs operation; a guest already off is not an error."""
        try:
            operation()
        except libvirt.libvirtError as e:
            if (e.get_error_code() != libvirt.VIR_ERR_OPERATION_INVALID or
                    self.is_active()):
                raise

    def hard_stop(self):
        """Powers off at once."""
        self._unless_off(self._domain.destroy)

    def undefine(self, keep_nvram=False):
        """Removes the definition with its managed save image, snapshot
        metadata and (unless keep_nvram) its UEFI variable store.
        """
        flags = (libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE |
                 libvirt.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA)
        try:
            self._domain.undefineFlags(
                flags | libvirt.VIR_DOMAIN_UNDEFINE_CHECKPOINTS_METADATA |
                (libvirt.VIR_DOMAIN_UNDEFINE_KEEP_NVRAM if keep_nvram
                 else libvirt.VIR_DOMAIN_UNDEFINE_NVRAM))
        except libvirt.libvirtError as e:
            # Hypervisor drivers without NVRAM or checkpoints (libvirt's
            # test driver) refuse those flags.
            if e.get_error_code() != libvirt.VIR_ERR_INVALID_ARG:
                raise
            self._domain.undefineFlags(flags)

    def shutdown(self):
        """Presses the ACPI power button (the guest decides what to do)."""
        self._unless_off(self._domain.shutdown)

    def pause(self):
        self._domain.suspend()

    def save(self):
        """Saves memory to disk and stops (libvirt's managed save)."""
        self._domain.managedSave(0)

    def has_saved_memory(self):
        return bool(self._domain.hasManagedSaveImage(0))

    def discard_saved_memory(self):
        if self.has_saved_memory():
            self._domain.managedSaveRemove(0)

    def disk_target(self, path):
        """The target device (vda) of the disk backed by file path."""
        for disk in etree.fromstring(self.xml()).findall('devices/disk'):
            source = disk.find('source')
            if source is not None and source.get('file') == path:
                return disk.find('target').get('dev')
        raise exception.DiskNotFound(location=path)

    def redirect_writes(self, target, overlay, quiesce, require_quiesce):
        """External disk-only snapshot: target's writes go to the new
        overlay from now on, its current file becomes read-only.
        """
        snap = etree.Element('domainsnapshot')
        disks = etree.SubElement(snap, 'disks')
        for disk in etree.fromstring(self.xml()).findall('devices/disk'):
            dev = disk.find('target').get('dev')
            el = etree.SubElement(disks, 'disk', name=dev)
            if dev == target:
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

    def commit_active_layer(self, target):
        """Folds target's top layer into the layer right below it: only
        that one (SHALLOW), never deeper into a shared cached image.
        """
        self._domain.blockCommit(target, None, None, 0,
                                 libvirt.VIR_DOMAIN_BLOCK_COMMIT_ACTIVE |
                                 libvirt.VIR_DOMAIN_BLOCK_COMMIT_SHALLOW)

    def block_job_ready(self, target):
        """The block job on target can be pivoted: libvirt marks the disk's
        mirror ready. cur == end alone comes earlier, and a pivot then
        fails with "not ready for pivot yet" (nova bug 1530275).
        """
        info = self._domain.blockJobInfo(target, 0)
        if not info or info['end'] == 0 or info['cur'] != info['end']:
            return False
        return bool(etree.fromstring(self.xml()).xpath(
            "devices/disk[target/@dev=$dev]/mirror[@ready='yes']",
            dev=target))

    def pivot(self, target):
        self._domain.blockJobAbort(target,
                                   libvirt.VIR_DOMAIN_BLOCK_JOB_ABORT_PIVOT)
