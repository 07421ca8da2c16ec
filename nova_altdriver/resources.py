"""What this compute node offers: the resource tracker's figures and the
Placement inventory, read from libvirt and the instances filesystem.
"""

import errno
import os

from nova.compute import utils as compute_utils
import nova.conf
from nova import exception
from nova.objects import fields
from nova.virt import driver
import os_resource_classes as orc
from oslo_log import log as logging
from oslo_serialization import jsonutils
from oslo_utils import units

from nova_altdriver import imagecache

CONF = nova.conf.CONF
LOG = logging.getLogger(__name__)

_RUNNING = (1, 2, 3)  # libvirt RUNNING, BLOCKED, PAUSED: vCPUs in use


def disk_figures(path):
    """(total, used, free) bytes of the filesystem holding path."""
    st = os.statvfs(path)
    total = st.f_frsize * st.f_blocks
    return (total, st.f_frsize * (st.f_blocks - st.f_bfree),
            st.f_frsize * st.f_bavail)


def overcommitted_bytes(disk):
    """How many bytes more one local file disk (domain.Disk) can take from
    the host: its virtual size less the bytes its file holds, as nova's
    in-tree driver counts them (its _get_instance_disk_info_from_config).

    The format is the definition's: a qcow2 disk's virtual size comes from
    its header (the in-tree driver asks qemu-img, whose "disk size" is the
    same st_blocks * 512); any other file is raw, its virtual size the file
    size. Like the in-tree driver, only qcow2 is held at 0: a raw file
    holding more blocks than its size (a fully written ISO) counts below 0.
    A file that is not qcow2 after all counts by its file size, as the
    in-tree driver's qemu-img (which probes the format) would see it.
    """
    st = os.stat(disk.source)
    allocated = st.st_blocks * 512
    if disk.format != 'qcow2':
        return st.st_size - allocated
    virtual = imagecache.qcow2_virtual_size(disk.source)
    return max(0, (st.st_size if virtual is None else virtual) - allocated)


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

    def __init__(self, host, layout, image_cache_bytes):
        """:param image_cache_bytes: image_cache_bytes() gives the bytes
            the image cache holds on the instances filesystem
        """
        self._host = host
        self._layout = layout
        self._image_cache_bytes = image_cache_bytes

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

    def _disk_overcommit(self):
        """Bytes the local file disks of every guest on this host, nova's
        or not, running or not, can still take: the sum the in-tree driver
        (_get_disk_over_committed_size_total) takes off the free space.

        Volumes are left out without the database query the in-tree
        driver makes for the guests' block devices: this driver's volumes
        are RBD disks (type network), which have no file, and a disk
        without a file (block, network, an empty cdrom) counts nothing
        in-tree either.

        A guest whose disk files went away or cannot be read meanwhile (a
        delete, a resize moving them) counts nothing at all, its other
        disks neither, as in the in-tree driver: the periodic task goes on.
        Intentional difference: a libvirt error other than the guest being
        gone fails the report (nova tries again next period), where the
        in-tree driver logs it and reports a sum without that guest.
        """
        total = 0
        for uuid, disks in self._host.disks_of_every_guest().items():
            try:
                total += sum(overcommitted_bytes(disk) for disk in disks
                             if disk.source is not None)
            except OSError as e:
                if e.errno not in (errno.ENOENT, errno.ESTALE, errno.EACCES):
                    raise
                LOG.warning('Disk over-commit of %s left out: %s', uuid, e)
        return total

    def report(self, nodename):
        """The dict get_available_resource() returns."""
        info = self._host.node_info()
        total, used, free = disk_figures(self._layout.root)
        # What nova stores of the in-tree driver's float: its integer part
        # (ComputeNode's IntegerField), below 0 when the guests' disks can
        # grow past the free space.
        available_least = int((free - self._disk_overcommit()) / units.Gi)
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
            'disk_available_least': available_least,
            'numa_topology': None,
            'supported_instances': supported_instances(caps),
        }

    def _image_cache_gb(self):
        """The DISK_GB the image cache holds, when the operator has them
        reserved (as the in-tree driver: rounded up to whole GiB).
        """
        if not CONF.workarounds.reserve_disk_resource_for_image_cache:
            return 0
        return compute_utils.convert_mb_to_ceil_gb(
            self._image_cache_bytes() / units.Mi)

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
                driver.ComputeDriver._get_reserved_host_disk_gb_from_config() +
                self._image_cache_gb(),
        }
        totals = {orc.VCPU: info.cpus, orc.MEMORY_MB: info.memory_mb,
                  orc.DISK_GB: disk_figures(self._layout.root)[0] // units.Gi}
        return {rc: {'total': total, 'min_unit': 1, 'max_unit': total,
                     'step_size': 1, 'allocation_ratio': ratios[rc],
                     'reserved': reserved[rc]}
                for rc, total in totals.items() if total > 0}
