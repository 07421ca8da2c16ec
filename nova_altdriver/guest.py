"""A thin wrapper over one libvirt domain, in nova's terms."""

import libvirt
from nova.compute import power_state
from nova.virt import hardware

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
        state, _reason = self._domain.state()
        if state == libvirt.VIR_DOMAIN_SHUTOFF and self.has_saved_memory():
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

    def hard_stop(self):
        """Powers off at once; a guest already off is not an error."""
        try:
            self._domain.destroy()
        except libvirt.libvirtError as e:
            if (e.get_error_code() != libvirt.VIR_ERR_OPERATION_INVALID or
                    self.is_active()):
                raise

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
        try:
            self._domain.shutdown()
        except libvirt.libvirtError as e:
            if (e.get_error_code() != libvirt.VIR_ERR_OPERATION_INVALID or
                    self.is_active()):
                raise

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
