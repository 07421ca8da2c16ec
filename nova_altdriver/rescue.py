"""Rescue and unrescue: boot a broken server from a rescue image with its
own disk attached, then bring the original back.

Rescue saves the guest's definition to ``unrescue.xml`` (atomically), makes
``disk.rescue`` (a small overlay on the cached rescue image, never a copy of
the guest's disk) and boots a rescue domain, its disks laid out by
domain.rescue_disks (legacy, or stable device rescue).

Unrescue defines the saved original again (or, when ``unrescue.xml`` is
missing or damaged, rebuilds it from nova's data) and only then removes
``unrescue.xml`` and every ``*.rescue`` file: a crash at any step leaves a
state that unrescue, or a hard reboot, turns back into the original guest.
The original disks are only ever read here.
"""

import os

from nova import objects
from nova.virt import driver
from oslo_log import log as logging
from oslo_utils import excutils

import nova.conf
from nova_altdriver import disks as disks_mod
from nova_altdriver import domain
from nova_altdriver import guest as guest_mod
from nova_altdriver import paths

CONF = nova.conf.CONF
LOG = logging.getLogger(__name__)


class Rescue(object):

    def __init__(self, host, cache, lifecycle, power, snapshot, volumes):
        self._host = host
        self._volumes = volumes
        self._cache = cache
        self._layout = cache.layout
        self._lifecycle = lifecycle
        self._power = power
        self._snapshot = snapshot

    def rescue(self, context, instance, network_info, image_meta,
               rescue_password, block_device_info):
        guest = self._host.get_guest(instance)
        self._snapshot.settle(instance)  # the definition saved is the real one
        current = guest.xml(inactive=True)
        saved = self._layout.unrescue_xml(instance)
        # After an interrupted rescue the definition may already be the
        # rescue one: the saved original is then the one to keep.
        rescuing_again = (guest_mod.is_rescue_definition(current) and
                          os.path.exists(saved))
        if not rescuing_again:
            paths.write_atomically(saved, current)
        # A new rescue never reuses an old rescue disk (bug 1475652).
        disks_mod.remove_rescue_files(self._layout, instance,
                                      keep_saved_definition=True)

        image_id = (image_meta.id if image_meta.obj_attr_is_set('id')
                    else CONF.altdriver.rescue_image_id or
                    instance.image_ref)
        try:
            kernel, ramdisk = disks_mod.boot_files(
                self._cache, context,
                CONF.altdriver.rescue_kernel_id or instance.kernel_id,
                CONF.altdriver.rescue_ramdisk_id or instance.ramdisk_id)
            original, layout = self._disks(
                context, instance, image_meta, image_id, network_info,
                rescue_password, block_device_info)
            xml = self._lifecycle.build_xml(
                instance, instance.image_meta, layout, network_info, kernel,
                ramdisk)
            # Defined while the original still runs: a definition libvirt
            # refuses leaves the server as it was.
            self._lifecycle.describe_devices(context, instance, original)(
                self._host.define(xml))
        except Exception:
            with excutils.save_and_reraise_exception():
                if not rescuing_again:
                    self._host.define(current)
                    disks_mod.remove_rescue_files(self._layout, instance)
        guest.hard_stop()
        self._lifecycle.create(instance, xml, network_info,
                               wait_for_vifs=False)
        LOG.info('Rescue guest started from image %s', image_id,
                 instance=instance)

    def _disks(self, context, instance, image_meta, image_id, network_info,
               rescue_password, block_device_info):
        """(the InstanceDisks of the original's disks, with the rescue
        config drive still to make; the rescue domain's disks)
        """
        props = image_meta.properties
        rescue_base = self._cache.fetch_image(context, image_id,
                                              instance.trusted_certs)
        rescue_disk = self._layout.instance_file(instance, paths.RESCUE_DISK)
        disks_mod.overlay(rescue_base, rescue_disk)  # not flavor-sized
        # The original devices, as nova knows them (not from Glance: the
        # original image may be gone, bug 2002606); its volumes only in a
        # stable device rescue (the only one of a volume-backed server).
        stable = domain.is_stable_rescue(props)
        boot_volume, volumes = (
            self._volumes.disks(instance, block_device_info) if stable
            else (None, []))
        original = disks_mod.InstanceDisks(
            self._cache, instance, instance.image_meta,
            taken={v.dev for v in volumes + [boot_volume] if v})
        root = boot_volume or original.root(context)
        config_drive = original.config_drive(
            context, rescue_password, network_info, None,
            name=paths.RESCUE_CONFIG_DRIVE)
        others = (original.ephemerals(block_device_info) +
                  original.swap(block_device_info) + volumes
                  if stable else [])
        return original, domain.rescue_disks(rescue_disk, root, others,
                                             config_drive, props)

    def unrescue(self, context, instance):
        network_info = instance.get_network_info()
        xml = self._saved_original(instance)
        self._host.stop_guest(instance.uuid)
        if xml is None:
            LOG.warning('No usable %s; rebuilding the original guest from '
                        'nova\'s data', paths.UNRESCUE_XML, instance=instance)
            bdms = objects.BlockDeviceMappingList.get_by_instance_uuid(
                context, instance.uuid)
            self._power.hard_reboot(
                context, instance, network_info,
                driver.get_block_device_info(instance, bdms))
        else:
            # the original's addresses, not the rescue guest's
            self._lifecycle.create(
                instance, xml, network_info, wait_for_vifs=False,
                before_start=self._lifecycle.describe_devices(context,
                                                              instance))
        disks_mod.remove_rescue_files(self._layout, instance)

    def _saved_original(self, instance):
        try:
            with open(self._layout.unrescue_xml(instance)) as f:
                xml = f.read()
        except OSError:
            return None
        if (guest_mod.uuid_of(xml) == instance.uuid and
                not guest_mod.is_rescue_definition(xml)):
            return xml
        return None
