"""Device tags: nova's device metadata of an instance (what the metadata
service and the config drive show in meta_data.json "devices").

A user tags a port or a block device when booting (API 2.42) or attaching
(2.49); the guest finds the device by the address libvirt gave it. So the
metadata is built from a definition libvirt holds (guest.py reads it): each
tagged NIC by its MAC, each tagged disk by its volume (or, for a local disk,
its device name), with its bus and address where the definition has one, as
nova's in-tree libvirt driver builds it.
"""

from nova import block_device
from nova import objects
from oslo_log import log as logging
from oslo_utils import excutils

LOG = logging.getLogger(__name__)

# nova's bus objects by name: nova.objects has them only once nova-compute
# registered its objects, after this module may be imported
_BUSES = {
    'pci': 'PCIDeviceBus',
    'ide': 'IDEDeviceBus',
    'scsi': 'SCSIDeviceBus',
    'usb': 'USBDeviceBus',
}


def _bus(address):
    """The nova bus object of a guest.DeviceAddress (None: no bus)."""
    if address is None:
        return None
    bus = getattr(objects, _BUSES[address.bus])()
    if address.address is not None:
        bus.address = address.address
    return bus


def _with_bus(device, address):
    bus = _bus(address)
    if bus is not None:
        device.bus = bus
    return device


def _disk_address(bdm, disks):
    """(found, the guest.DeviceAddress or None) of the disk of a block
    device mapping in disks ({target dev: (serial, address)}): a volume by
    its id (the disk's serial, whatever its device is named), a local disk
    by nova's device name.
    """
    if bdm.volume_id:
        found = [address for serial, address in disks.values()
                 if serial == bdm.volume_id]
        return bool(found), found[0] if found else None
    name = block_device.strip_dev(bdm.device_name or '')
    return name in disks, disks[name][1] if name in disks else None


def metadata(addresses, vifs, bdms):
    """nova's InstanceDeviceMetadata of the tagged ones of vifs
    (VirtualInterface) and bdms (BlockDeviceMapping) that the definition
    whose guest.DeviceAddresses are addresses has; None when there are
    none (nova's value for a server without tags).
    """
    devices = []
    for vif in vifs:
        mac = vif.address.lower()
        if vif.obj_attr_is_set('tag') and vif.tag and mac in addresses.nics:
            devices.append(_with_bus(objects.NetworkInterfaceMetadata(
                mac=vif.address, tags=[vif.tag]), addresses.nics[mac]))
    for bdm in bdms:
        found, address = _disk_address(bdm, addresses.disks)
        if bdm.tag and found:
            # serial: how nova's detach finds the entry to drop
            devices.append(_with_bus(objects.DiskMetadata(
                serial=bdm.volume_id, tags=[bdm.tag]), address))
    return (objects.InstanceDeviceMetadata(devices=devices) if devices
            else None)


def refresh(context, instance, guest, inactive=False):
    """instance.device_metadata from guest's live definition (or, with
    inactive, the persistent one: a guest just defined), nova's records
    of its ports and block devices; saved by whoever saves instance.
    """
    instance.device_metadata = metadata(
        guest.device_addresses(inactive),
        objects.VirtualInterfaceList.get_by_instance_uuid(
            context, instance.uuid),
        objects.BlockDeviceMappingList.get_by_instance_uuid(
            context, instance.uuid))


def describe_attached(host, context, instance, undo):
    """instance's device metadata, saved, with the device just hot-plugged
    (its tag and address: the metadata service shows it at once). Failing
    that, undo() takes the device out again, as the in-tree driver does,
    so that nova's failed attach leaves no device in the guest.
    """
    try:
        refresh(context, instance, host.get_guest(instance))
        instance.save()
    except Exception:
        with excutils.save_and_reraise_exception():
            LOG.exception('Could not describe the device just attached; '
                          'detaching it', instance=instance)
            undo()


def forget_detached(host, context, instance):
    """instance's device metadata, saved, without the interface just
    unplugged (nova's manager drops a volume's entry itself, by its serial,
    after detach_volume). Best effort: the detach stands.
    """
    try:
        guest = host.find_guest(instance.uuid)
        if guest is not None:
            refresh(context, instance, guest)
            instance.save()
    except Exception as e:
        LOG.warning('Could not remove the detached interface from the '
                    'device metadata: %s', e, instance=instance)
