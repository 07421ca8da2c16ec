"""Rescue and unrescue: boot a broken server from a rescue image with its
own disk attached, then bring the original back.

Rescue saves the guest's definition to ``unrescue.xml`` (atomically), makes
``disk.rescue`` (a small overlay on the cached rescue image, never a copy of
the guest's disk) and boots a rescue domain:

* legacy layout: the rescue disk first (``vda``), the original root disk
  second (``vdb``), the config drive (with the rescue password) as cdrom;
* stable device rescue (the rescue image sets ``hw_rescue_device`` and/or
  ``hw_rescue_bus``): the original devices unchanged, the rescue disk added
  with boot order 1.

Unrescue defines the saved original again (or, when ``unrescue.xml`` is
missing or damaged, rebuilds it from nova's data) and only then removes
``unrescue.xml`` and every ``*.rescue`` file: a crash at any step leaves a
state that unrescue, or a hard reboot, turns back into the original guest.
The original disks are only ever read here.
"""

import os

from lxml import etree
from nova import objects
from nova.virt import driver
from oslo_log import log as logging
from oslo_utils import excutils

import nova.conf
from nova_altdriver import disks as disks_mod
from nova_altdriver import domain
from nova_altdriver import imagecache
from nova_altdriver import vifs

CONF = nova.conf.CONF
LOG = logging.getLogger(__name__)

UNRESCUE_XML = disks_mod.UNRESCUE_XML


def _path(instance, name):
    return os.path.join(disks_mod.instance_dir(instance), name)


def is_rescue_definition(xml):
    """Whether a domain definition boots a rescue disk (judged by its disk
    files, not by text anywhere in it: a server's name is in it too).
    """
    return any(os.path.basename(source) == disks_mod.RESCUE_DISK
               for source in etree.fromstring(xml).xpath(
                   'devices/disk/source/@file'))


def with_unique_devices(layout):
    """layout with every disk that repeats an earlier disk's device name
    moved to the next name free on its bus (the legacy rescue layout puts
    the rescue disk where the root disk was).
    """
    used = set()
    unique = []
    for disk in layout:
        if disk.dev in used:
            disk = disk._replace(dev=domain.free_device_name(disk.bus, used))
        used.add(disk.dev)
        unique.append(disk)
    return unique


class Rescue(object):

    def __init__(self, host, lifecycle, power, snapshot):
        self._host = host
        self._lifecycle = lifecycle
        self._power = power
        self._snapshot = snapshot

    def rescue(self, context, instance, network_info, image_meta,
               rescue_password, block_device_info):
        guest = self._host.get_guest(instance)
        self._snapshot.settle(instance)  # the definition saved is the real one
        current = guest.xml(inactive=True)
        saved = _path(instance, UNRESCUE_XML)
        # After an interrupted rescue the definition may already be the
        # rescue one: the saved original is then the one to keep.
        rescuing_again = (is_rescue_definition(current) and
                          os.path.exists(saved))
        if not rescuing_again:
            disks_mod.write_atomically(saved, current)
        # A new rescue never reuses an old rescue disk (bug 1475652).
        disks_mod.remove_rescue_files(instance, keep_saved_definition=True)

        image_id = (image_meta.id if image_meta.obj_attr_is_set('id')
                    else CONF.altdriver.rescue_image_id or
                    instance.image_ref)
        try:
            xml = domain.build(
                instance, instance.image_meta,
                self._layout(context, instance, image_meta, image_id,
                             network_info, rescue_password,
                             block_device_info),
                [vifs.interface(vif, instance.image_meta)
                 for vif in network_info],
                console_log=disks_mod.console_log(instance),
                **self._rescue_kernel(context, instance))
            # Defined while the original still runs: a definition libvirt
            # refuses leaves the server as it was.
            self._host.define(xml)
        except Exception:
            with excutils.save_and_reraise_exception():
                if not rescuing_again:
                    self._host.define(current)
                    disks_mod.remove_rescue_files(instance)
        guest.hard_stop()
        self._lifecycle.create(instance, xml, network_info,
                               wait_for_vifs=False)
        LOG.info('Rescue guest started from image %s', image_id,
                 instance=instance)

    def _layout(self, context, instance, image_meta, image_id, network_info,
                rescue_password, block_device_info):
        props = image_meta.properties
        rescue_base = imagecache.fetch_image(context, image_id,
                                             instance.trusted_certs)
        rescue_disk = _path(instance, disks_mod.RESCUE_DISK)
        disks_mod.overlay(rescue_base, rescue_disk)  # not flavor-sized
        # The original devices, as nova knows them (not from Glance: the
        # original image may be gone, bug 2002606).
        original = disks_mod.InstanceDisks(instance, instance.image_meta)
        root = original.root(context)
        config_drive = original.config_drive(
            context, rescue_password, network_info, None,
            name='disk.config' + disks_mod.RESCUE_SUFFIX)
        if props.get('hw_rescue_device') or props.get('hw_rescue_bus'):
            layout = ([root] + original.ephemerals(block_device_info) +
                      original.swap(block_device_info) + config_drive)
            bus = props.get('hw_rescue_bus') or 'virtio'
            dev = domain.free_device_name(bus, {d.dev for d in layout})
            return layout + [domain.Disk(
                rescue_disk, 'qcow2', dev, bus,
                device=props.get('hw_rescue_device') or 'disk',
                boot_order=1)]
        bus = props.get('hw_disk_bus') or 'virtio'
        return with_unique_devices(
            [domain.Disk(rescue_disk, 'qcow2', domain.device_name(bus, 0),
                         bus), root] + config_drive)

    @staticmethod
    def _rescue_kernel(context, instance):
        kernel_id = CONF.altdriver.rescue_kernel_id or instance.kernel_id
        ramdisk_id = CONF.altdriver.rescue_ramdisk_id or instance.ramdisk_id
        boot = {}
        if kernel_id:
            boot['kernel'] = imagecache.fetch_boot_file(context, kernel_id)
            if ramdisk_id:
                boot['ramdisk'] = imagecache.fetch_boot_file(context,
                                                             ramdisk_id)
        return boot

    def unrescue(self, context, instance):
        network_info = instance.get_network_info()
        xml = self._saved_original(instance)
        guest = self._host.find_guest(instance.uuid)
        if guest is not None:
            guest.hard_stop()
        if xml is None:
            LOG.warning('No usable %s; rebuilding the original guest from '
                        'nova\'s data', UNRESCUE_XML, instance=instance)
            bdms = objects.BlockDeviceMappingList.get_by_instance_uuid(
                context, instance.uuid)
            self._power.hard_reboot(
                context, instance, network_info,
                driver.get_block_device_info(instance, bdms))
        else:
            self._lifecycle.create(instance, xml, network_info,
                                   wait_for_vifs=False)
        disks_mod.remove_rescue_files(instance)

    @staticmethod
    def _saved_original(instance):
        try:
            with open(_path(instance, UNRESCUE_XML)) as f:
                xml = f.read()
            root = etree.fromstring(xml)
        except (OSError, etree.XMLSyntaxError):
            return None
        if (root.findtext('uuid') != instance.uuid or
                is_rescue_definition(xml)):
            return None
        return xml
