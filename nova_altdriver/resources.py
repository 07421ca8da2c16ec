"""What this compute node offers: the resource tracker's figures and the
Placement inventory, read from libvirt and the instances filesystem.
"""

import os

import nova.conf
from nova import exception
from nova.objects import fields
from nova.virt import driver
import os_resource_classes as orc
from oslo_serialization import jsonutils
from oslo_utils import units

CONF = nova.conf.CONF

_RUNNING = (1, 2, 3)  # libvirt RUNNING, BLOCKED, PAUSED: vCPUs in use


def disk_figures(path):
    """(total, used, free) bytes of the filesystem holding path."""
    st = os.statvfs(path)
    total = st.f_frsize * st.f_blocks
    return (total, st.f_frsize * (st.f_blocks - st.f_bfree),
            st.f_frsize * st.f_bavail)


def cpu_info(capabilities):
    """The JSON nova stores as the node's cpu_info, like the libvirt
    driver's: arch, model, vendor, topology and features of the host CPU.
    """
    cpu = capabilities.find('host/cpu')
    topology = cpu.find('topology')
    return jsonutils.dumps({
        'arch': cpu.findtext('arch'),
        'model': cpu.findtext('model'),
        'vendor': cpu.findtext('vendor'),
        'topology': {
            'cells': len(capabilities.findall('host/topology/cells/cell')),
            'sockets': int(topology.get('sockets', 1)),
            'cores': int(topology.get('cores', 1)),
            'threads': int(topology.get('threads', 1)),
        } if topology is not None else {},
        'features': sorted(f.get('name') for f in cpu.findall('feature')),
    })


def supported_instances(capabilities):
    """[(arch, hypervisor type, vm mode)] for every guest kind libvirt runs."""
    result = []
    for guest in capabilities.findall('guest'):
        arch = guest.find('arch')
        for domain in arch.findall('domain'):
            try:
                result.append((
                    fields.Architecture.canonicalize(arch.get('name')),
                    fields.HVType.canonicalize(domain.get('type')),
                    fields.VMMode.canonicalize(guest.findtext('os_type'))))
            except exception.InvalidArchitectureName:
                continue
    return result


class HostResources(object):

    def __init__(self, host, layout):
        self._host = host
        self._layout = layout

    def _memory_mb_used(self, total_mb):
        stats = self._host.memory_stats()
        if stats is None:
            return 0
        unused_kib = (stats.get('free', 0) + stats.get('buffers', 0) +
                      stats.get('cached', 0))
        return max(0, total_mb - unused_kib // units.Ki)

    def _vcpus_used(self):
        return sum(vcpus for state, vcpus in
                   self._host.guest_states().values() if state in _RUNNING)

    def report(self, nodename):
        """The dict get_available_resource() returns."""
        info = self._host.node_info()
        total, used, free = disk_figures(self._layout.root)
        caps = self._host.capabilities()
        return {
            'vcpus': info.cpus,
            'memory_mb': info.memory_mb,
            'local_gb': total // units.Gi,
            'vcpus_used': self._vcpus_used(),
            'memory_mb_used': self._memory_mb_used(info.memory_mb),
            'local_gb_used': used // units.Gi,
            'hypervisor_type': self._host.hypervisor_type(),
            'hypervisor_version': self._host.hypervisor_version(),
            'hypervisor_hostname': nodename,
            'cpu_info': cpu_info(caps),
            'disk_available_least': free // units.Gi,
            'numa_topology': None,
            'supported_instances': supported_instances(caps),
        }

    def inventory(self, current):
        """Placement inventory of VCPU, MEMORY_MB and DISK_GB, given the
        inventory the provider has now (for operator-set ratios).
        """
        info = self._host.node_info()
        ratios = driver.ComputeDriver._get_allocation_ratios(current)
        reserved = {
            orc.VCPU: CONF.reserved_host_cpus,
            orc.MEMORY_MB: CONF.reserved_host_memory_mb,
            orc.DISK_GB:
                driver.ComputeDriver._get_reserved_host_disk_gb_from_config(),
        }
        totals = {orc.VCPU: info.cpus, orc.MEMORY_MB: info.memory_mb,
                  orc.DISK_GB: disk_figures(self._layout.root)[0] // units.Gi}
        return {rc: {'total': total, 'min_unit': 1, 'max_unit': total,
                     'step_size': 1, 'allocation_ratio': ratios[rc],
                     'reserved': reserved[rc]}
                for rc, total in totals.items() if total > 0}
