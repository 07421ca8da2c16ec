"""A server's diagnostics (``openstack server show --diagnostics``, an
admin's view) in the two forms of nova's API, with the figures nova's
in-tree libvirt driver gives, from what guest.py reads of the guest.

nova-compute asks only while the guest runs (nova answers ``409``
otherwise). A figure libvirt cannot give, a guest that stopped meanwhile
among others, is left out rather than failing the whole answer, as in the
in-tree driver.
"""

from nova.compute import power_state
from nova.objects import diagnostics as diagnostics_obj
from nova.virt import configdrive
from oslo_utils import timeutils
from oslo_utils import units


def legacy(guest):
    """Before microversion 2.48: one flat dict under the in-tree driver's
    keys (cpu0_time, vda_read, <tap device>_rx, memory, memory-rss, ...).
    """
    result = {'cpu%d_time' % number: cpu_time
              for number, cpu_time in guest.vcpu_times()}
    for dev, disk in guest.disk_counters():
        result.update({dev + '_read_req': disk.read_requests,
                       dev + '_read': disk.read_bytes,
                       dev + '_write_req': disk.write_requests,
                       dev + '_write': disk.write_bytes,
                       dev + '_errors': disk.errors})
    for nic in guest.nics():
        counters = nic.counters
        if counters:
            result.update({nic.dev + '_rx': counters.rx_bytes,
                           nic.dev + '_rx_packets': counters.rx_packets,
                           nic.dev + '_rx_errors': counters.rx_errors,
                           nic.dev + '_rx_drop': counters.rx_drop,
                           nic.dev + '_tx': counters.tx_bytes,
                           nic.dev + '_tx_packets': counters.tx_packets,
                           nic.dev + '_tx_errors': counters.tx_errors,
                           nic.dev + '_tx_drop': counters.tx_drop})
    result['memory'] = guest.memory_kib().maximum
    result.update(('memory-' + name, value)
                  for name, value in guest.memory_stats().items())
    return result


def standard(instance, guest):
    """From microversion 2.48 on: nova's Diagnostics object."""
    memory = guest.memory_kib()
    diagnostics = diagnostics_obj.Diagnostics(
        state=power_state.STATE_MAP[guest.power_state()],
        # the name nova's API knows libvirt drivers by
        driver='libvirt',
        hypervisor=guest.domain_type(),
        hypervisor_os='linux',
        config_drive=configdrive.required_by(instance),
        # since nova last launched it (a build, rebuild, rescue or resize),
        # as the in-tree driver counts: not the guest's own uptime
        uptime=timeutils.delta_seconds(
            timeutils.normalize_time(instance.launched_at),
            timeutils.utcnow()),
        # MiB, as nova's API documents it (the in-tree driver divides
        # libvirt's KiB by a Mi: GiB rounded down, 0 for 512 MiB)
        memory_details=diagnostics_obj.MemoryDiagnostics(
            maximum=memory.maximum // units.Ki,
            used=memory.current // units.Ki))
    for number, cpu_time in guest.vcpu_times():
        diagnostics.add_cpu(id=number, time=cpu_time)
    for _dev, disk in guest.disk_counters():
        diagnostics.add_disk(read_bytes=disk.read_bytes,
                             read_requests=disk.read_requests,
                             write_bytes=disk.write_bytes,
                             write_requests=disk.write_requests,
                             errors_count=disk.errors)
    for nic in guest.nics():
        counters = nic.counters
        if counters is None:
            diagnostics.add_nic(mac_address=nic.mac)
            continue
        diagnostics.add_nic(
            mac_address=nic.mac,
            rx_octets=counters.rx_bytes, rx_packets=counters.rx_packets,
            rx_errors=counters.rx_errors, rx_drop=counters.rx_drop,
            tx_octets=counters.tx_bytes, tx_packets=counters.tx_packets,
            tx_errors=counters.tx_errors, tx_drop=counters.tx_drop)
    return diagnostics
