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
        return POWER_STATES.get(state, power_state.NOSTATE)

    def info(self):
        return hardware.InstanceInfo(state=self.power_state(),
                                     internal_id=self._domain.ID())
