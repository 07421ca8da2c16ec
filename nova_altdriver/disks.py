"""An instance's disks, where paths.Layout puts them.

Disks are qcow2 overlays on the image cache (made in a time independent of
the image size) unless ``use_cow_images = False``; ``disk.info`` records
each one's format. A disk that exists is reused, never recreated (an
evacuation onto shared storage keeps the guest's data); what is created is
recorded, so that a failed spawn removes exactly that.
"""

import os
import shutil

from nova.api.metadata import base as instance_metadata
from nova.compute import vm_states
from nova import exception
from nova.virt import configdrive
from nova.virt import driver
from nova.virt import images
from oslo_concurrency import processutils
from oslo_log import log as logging
from oslo_serialization import jsonutils
from oslo_utils import fileutils
from oslo_utils import units

import nova.conf
from nova_altdriver import domain
from nova_altdriver import imagecache
from nova_altdriver import paths

CONF = nova.conf.CONF
LOG = logging.getLogger(__name__)


def _disk_info(layout, instance):
    """disk.info as a dict; empty when missing or damaged."""
    try:
        with open(layout.disk_info(instance)) as f:
            info = jsonutils.loads(f.read())
    except (OSError, ValueError):
        return {}
    return info if isinstance(info, dict) else {}


def _expected_bases(instance):
    """Base files the disks of instance may be overlays of."""
    image_ids = {instance.image_ref,
                 instance.system_metadata.get('image_base_image_ref')}
    return {imagecache.image_base_name(i) for i in image_ids if i}


def recorded_format(cache, instance, path):
    """The format of one of instance's disks, as recorded in disk.info.

    A disk the guest writes to is never trusted by its content: a raw disk
    holding a qcow2 header would otherwise open the host's files. Without a
    record (disk.info lost or damaged), qcow2 only where the header is what
    this driver makes: an overlay of one of the instance's own cached
    bases (or of none) and no external data file; raw otherwise.
    """
    fmt = _disk_info(cache.layout, instance).get(path)
    if fmt in ('qcow2', 'raw'):
        return fmt
    LOG.warning('No format recorded for %s; reading it from its header',
                path, instance=instance)
    if not imagecache.is_plain_qcow2(path):
        return 'raw'
    backing = imagecache.backing_file(path)
    if backing is None:
        return 'qcow2'
    name = os.path.basename(backing)
    if (cache.is_base(backing) and
            (name in _expected_bases(instance) or
             name.startswith(('ephemeral_', 'swap_')))):
        return 'qcow2'
    return 'raw'


def virtual_size(cache, instance, path):
    """The size the guest sees of one of instance's disks."""
    fmt = recorded_format(cache, instance, path)
    return images.qemu_img_info(path, format=fmt).virtual_size


def overlay(base, path, size=None):
    """A qcow2 file whose unwritten blocks read from base."""
    args = ['qemu-img', 'create', '-f', 'qcow2', '-o',
            'backing_file=%s,backing_fmt=%s' % (
                base, imagecache.base_info(base)[0]), path]
    if size:
        args.append(str(size))
    processutils.execute(*args)


def _full_copy(base, path, size):
    processutils.execute('qemu-img', 'convert', '-O', 'raw', '-f',
                         imagecache.base_info(base)[0], base, path)
    if size > os.path.getsize(path):
        processutils.execute('qemu-img', 'resize', '-f', 'raw', path,
                             str(size))


class InstanceDisks(object):
    """Creates (or finds) the disks of one instance."""

    def __init__(self, cache, instance, image_meta, taken=()):
        """:param taken: device names in use already (volumes')"""
        self.cache = cache
        self.instance = instance
        self.image_meta = image_meta
        self.dir = cache.layout.instance_dir(instance.uuid)
        self.created = []  # paths made here, newest last
        props = image_meta.properties
        self.disk_bus = props.get('hw_disk_bus') or 'virtio'
        self.cdrom_bus = props.get('hw_cdrom_bus') or 'ide'
        self._used = set(taken)
        self._config_drive = None  # (name, make) while still to be made

    def path(self, name):
        return os.path.join(self.dir, name)

    def _device(self, bus, last=False):
        dev = (domain.last_free_device_name if last else
               domain.free_device_name)(bus, self._used)
        self._used.add(dev)
        return dev

    def _ensure(self, name, make, fmt):
        """Path and format of disk name, made by make(path) as fmt unless
        it exists.
        """
        path = self.path(name)
        if os.path.exists(path):
            LOG.info('Reusing existing disk %s', path,
                     instance=self.instance)
            return path, recorded_format(self.cache, self.instance, path)
        self.make_dir()
        # Made whole under another name: a disk that exists is reused as
        # the guest's (above), so a half-made one must never carry the name
        # (nova-compute killed in the middle of an unshelve's rebase).
        paths.make_whole(path, make)
        self.created.append(path)
        return path, fmt

    def make_dir(self):
        """The instance directory (its console log and disk.info are there
        also when every disk is a volume).
        """
        if not os.path.isdir(self.dir):
            os.makedirs(self.dir)
            self.created.append(self.dir)

    def remove_created(self):
        """Undoes this object's work, and only its work."""
        for path in reversed(self.created):
            try:
                if os.path.isdir(path):
                    os.rmdir(path)  # empty unless someone else wrote there
                else:
                    os.unlink(path)
            except OSError as e:
                LOG.warning('Could not remove %s: %s', path, e,
                            instance=self.instance)
        self.created = []

    # -- the disks --------------------------------------------------------

    def root(self, context):
        path = self.path(paths.DISK)
        base = None
        from_shelve_image = False
        if not os.path.exists(path):
            base, from_shelve_image = self._root_base(context)
        elif recorded_format(self.cache, self.instance, path) == 'qcow2':
            # Also brings back a base the cache lost under an existing
            # overlay (hard reboot is the repair tool).
            base = self.cache.fetch_image(
                context, self.image_meta.id, self.instance.trusted_certs)

        def make(path):
            virtual = imagecache.base_info(base)[1]
            size = self.instance.flavor.root_gb * units.Gi
            if size and virtual > size:
                raise exception.FlavorDiskSmallerThanImage(
                    flavor_size=size, image_size=virtual)
            if not CONF.use_cow_images:
                _full_copy(base, path, max(size, virtual))
                return
            overlay(base, path, max(size, virtual))
            if from_shelve_image:
                self._detach_from_shelve_image(context, path)
        path, fmt = self._ensure(paths.DISK, make,
                                 'qcow2' if CONF.use_cow_images else 'raw')
        return domain.Disk(path, fmt, self._device(self.disk_bus),
                           self.disk_bus)

    def _root_base(self, context):
        """(base, whether it is the shelve image) of a new root disk; also
        the shelve image when an unshelve never finished (nova left the
        server on it for a hard reboot to repair).
        """
        shelved = self.instance.system_metadata.get('shelved_image_id')
        base = self.cache.fetch_image(context, self.image_meta.id,
                                      self.instance.trusted_certs)
        return base, (self.image_meta.id == shelved or
                      self.instance.vm_state == vm_states.SHELVED_OFFLOADED)

    def _detach_from_shelve_image(self, context, path):
        """Unshelve boots from the shelve snapshot, which nova deletes right
        after: the new disk must not keep depending on it (bug 1732428).
        Rebased onto the instance's original image when it can be had,
        flattened otherwise.
        """
        original = self.instance.system_metadata.get('image_base_image_ref')
        try:
            base = self.cache.fetch_image(context, original,
                                          self.instance.trusted_certs)
            args = ['-F', imagecache.base_info(base)[0], '-b', base]
        except Exception as e:
            LOG.info('Original image %s unavailable (%s): flattening the '
                     'unshelved disk', original, e, instance=self.instance)
            args = ['-b', '']
        processutils.execute('qemu-img', 'rebase', '-f', 'qcow2', *args, path)

    def ephemerals(self, block_device_info):
        specs = driver.block_device_info_get_ephemerals(block_device_info)
        if not specs and self.instance.flavor.ephemeral_gb:
            specs = [{'size': self.instance.flavor.ephemeral_gb,
                      'name': 'disk.local'}]
        disks = []
        for num, spec in enumerate(specs):
            name = spec.get('name') or 'disk.eph%d' % spec.get('num', num)
            base = self.cache.blank_ephemeral(spec['size'],
                                              self.instance.os_type)
            path, fmt = self._ensure(
                name, lambda path, base=base: overlay(base, path), 'qcow2')
            bus = spec.get('disk_bus') or self.disk_bus
            disks.append(domain.Disk(path, fmt, self._device(bus), bus))
        return disks

    def swap(self, block_device_info):
        swap = driver.block_device_info_get_swap(block_device_info)
        size_mb = (swap['swap_size'] if driver.swap_is_usable(swap)
                   else self.instance.flavor.swap)
        if not size_mb:
            return []
        base = self.cache.blank_swap(size_mb)
        path, fmt = self._ensure('disk.swap',
                                 lambda path: overlay(base, path), 'qcow2')
        return [domain.Disk(path, fmt, self._device(self.disk_bus),
                            self.disk_bus)]

    def config_drive(self, context, admin_password, network_info,
                     injected_files, name='disk.config'):
        """The config drive's disk, its file made later by
        make_config_drive: it carries the device metadata (tags), which
        needs the guest defined (libvirt gives the devices' addresses).
        """
        if not configdrive.required_by(self.instance):
            return []

        def make(path):
            extra_md = {'admin_pass': admin_password} if admin_password \
                else {}
            metadata = instance_metadata.InstanceMetadata(
                self.instance, content=injected_files, extra_md=extra_md,
                network_info=network_info)
            with configdrive.ConfigDriveBuilder(instance_md=metadata) as cdb:
                cdb.make_drive(path)

        self._config_drive = (name, make)
        if CONF.config_drive_format == 'vfat':
            return [domain.Disk(self.path(name), 'raw',
                                self._device(self.disk_bus, last=True),
                                self.disk_bus)]
        return [domain.Disk(self.path(name), 'raw',
                            self._device(self.cdrom_bus, last=True),
                            self.cdrom_bus, device='cdrom')]

    def make_config_drive(self):
        """The file of the config drive config_drive laid out, from
        instance as it is now (its device_metadata too), unless it exists
        (a config drive is never made again: reboots, a resize and an
        evacuation onto shared storage keep the first).
        """
        if self._config_drive is not None:
            name, make = self._config_drive
            self._ensure(name, make, 'raw')
            self._config_drive = None

    def kernel_and_ramdisk(self, context):
        """Cached kernel and ramdisk for direct boot, or (None, None)."""
        return boot_files(self.cache, context, self.instance.kernel_id,
                          self.instance.ramdisk_id,
                          self.instance.trusted_certs)

    def write_disk_info(self, disks):
        """disk.info: {path: format}, as the in-tree driver keeps it."""
        info = {d.source: d.format for d in disks if d.source}
        path = self.cache.layout.disk_info(self.instance)
        if not os.path.exists(path):
            self.created.append(path)
        elif _disk_info(self.cache.layout, self.instance) == info:
            return
        paths.write_atomically(path, jsonutils.dumps(info))


def all_disks(cache, context, instance, image_meta, block_device_info,
              volumes=(), boot_volume=None, admin_password=None,
              network_info=None, injected_files=None):
    """(InstanceDisks, [domain.Disk] in device order, kernel, ramdisk): the
    root disk (boot_volume, or one made from the image), the local disks,
    the volumes (domain.Disk), the config drive.
    """
    _remove(cache.layout.unfinished_disks(instance), instance)
    volumes = ([boot_volume] if boot_volume else []) + list(volumes)
    disks = InstanceDisks(cache, instance, image_meta,
                          taken={v.dev for v in volumes})
    try:
        layout = volumes[:1] if boot_volume else [disks.root(context)]
        layout += disks.ephemerals(block_device_info)
        layout += disks.swap(block_device_info)
        layout += volumes[1:] if boot_volume else volumes
        layout += disks.config_drive(context, admin_password, network_info,
                                     injected_files)
        kernel, ramdisk = disks.kernel_and_ramdisk(context)
        disks.make_dir()
        disks.write_disk_info(layout)
    except Exception:
        disks.remove_created()
        raise
    return disks, layout, kernel, ramdisk


def boot_files(cache, context, kernel_id, ramdisk_id, trusted_certs=None):
    """(kernel, ramdisk) cached for a direct boot; None where not (a
    ramdisk only with a kernel).
    """
    kernel = kernel_id and cache.fetch_boot_file(context, kernel_id,
                                                 trusted_certs)
    ramdisk = kernel and ramdisk_id and cache.fetch_boot_file(
        context, ramdisk_id, trusted_certs)
    return kernel or None, ramdisk or None


def _remove(files, instance):
    for path in files:
        LOG.info('Removing %s', path, instance=instance)
        fileutils.delete_if_exists(path)


def remove_rescue_files(layout, instance, keep_saved_definition=False):
    """Deletes every *.rescue file of instance (made or being made) and,
    unless told to keep it, the definition a rescue saved.
    """
    files = layout.rescue_files(instance)
    if not keep_saved_definition:
        files += [layout.unrescue_xml(instance),
                  layout.unrescue_xml(instance) + '.tmp']
    _remove(files, instance)


def remove_instance_dir(layout, instance):
    """Deletes the instance directory, and the one a resize set aside;
    True when nothing is left of them.
    """
    gone = True
    for path in (layout.instance_dir(instance.uuid),
                 layout.resize_dir(instance.uuid)):
        shutil.rmtree(path, ignore_errors=True)
        gone = gone and not os.path.exists(path)
    return gone
