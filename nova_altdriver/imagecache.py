"""The host's image cache: base files under ``$instances_path/_base``.

Every image a guest needs (root disk, kernel, ramdisk) is fetched through
nova's image API once per host, checked by nova's format inspector (content
must match the declared format; no backing or data files), and kept as
``_base/<sha1 of image id>``, the layout of the in-tree libvirt driver.
Blank ephemeral and swap disks are cached the same way. Guests use them
through copy-on-write overlays (disks.py).
"""

import hashlib
import os
import struct
import time

import nova.conf
import nova.privsep.fs
from nova.virt import imagecache
from nova.virt import images
from oslo_concurrency import lockutils
from oslo_log import log as logging
from oslo_utils import units

from nova_altdriver import paths

CONF = nova.conf.CONF
LOG = logging.getLogger(__name__)

# magic, version, backing file offset and size, cluster bits, virtual size
_QCOW2_HEADER = struct.Struct('>4sIQIIQ')
_QCOW2_MAGIC = b'QFI\xfb'


def base_dir():
    return os.path.join(paths.instances_path(),
                        CONF.image_cache.subdirectory_name)


def _locked(name):
    """A lock on one base file, shared by every process using the cache."""
    return lockutils.lock(name, external=True,
                          lock_path=os.path.join(paths.instances_path(),
                                                 'locks'))


def image_base_name(image_id):
    return hashlib.sha1(image_id.encode()).hexdigest()


def ephemeral_base_name(size_gb, os_type):
    extension = nova.privsep.fs.get_file_extension_for_os_type(
        nova.privsep.fs.get_fs_type_for_os_type(os_type),
        CONF.default_ephemeral_format)
    return 'ephemeral_%d_%s' % (size_gb, extension)


def swap_base_name(size_mb):
    return 'swap_%d' % size_mb


def _build(name, make):
    """Path of base file name, made by make(tmp path) unless cached.

    Made under a temporary name and renamed: a crash never leaves a
    half-written base that later guests would use.
    """
    path = os.path.join(base_dir(), name)
    if os.path.exists(path):
        os.utime(path)  # in use: its age for the cache manager restarts
        return path
    os.makedirs(base_dir(), exist_ok=True)
    with _locked(name):
        if not os.path.exists(path):
            tmp = path + '.tmp'
            try:
                make(tmp)
                os.rename(tmp, path)
            except Exception:
                if os.path.exists(tmp):
                    os.unlink(tmp)
                raise
    return path


def fetch_image(context, image_id, trusted_certs=None):
    """Path of the cached, inspected base file of a Glance image."""
    return _build(image_base_name(image_id),
                  lambda tmp: images.fetch_to_raw(context, image_id, tmp,
                                                  trusted_certs))


def fetch_boot_file(context, image_id, trusted_certs=None):
    """Path of the cached kernel or ramdisk image (aki / ari).

    QEMU loads these with -kernel / -initrd, never through its block layer,
    so the disk-format inspection does not apply (it rejects the legacy boot
    sector every x86 bzImage starts with).
    """
    return _build(image_base_name(image_id),
                  lambda tmp: images.fetch(context, image_id, tmp,
                                           trusted_certs))


def cache_image(context, image_id):
    """Pre-caches an image; False when it was cached already."""
    if os.path.exists(os.path.join(base_dir(), image_base_name(image_id))):
        return False
    fetch_image(context, image_id)
    return True


def blank_ephemeral(size_gb, os_type):
    def make(tmp):
        with open(tmp, 'wb') as f:
            f.truncate(size_gb * units.Gi)
        nova.privsep.fs.configurable_mkfs(
            os_type, 'ephemeral0', tmp, run_as_root=False,
            default_ephemeral_format=CONF.default_ephemeral_format)
    return _build(ephemeral_base_name(size_gb, os_type), make)


def blank_swap(size_mb):
    def make(tmp):
        with open(tmp, 'wb') as f:
            f.truncate(size_mb * units.Mi)
        nova.privsep.fs.unprivileged_mkfs('swap', tmp)
    return _build(swap_base_name(size_mb), make)


def _qcow2_virtual_size(path):
    """The virtual size in a qcow2 header, None for any other file."""
    with open(path, 'rb') as f:
        header = f.read(_QCOW2_HEADER.size)
    if len(header) < _QCOW2_HEADER.size:
        return None
    magic, _version, _backing_offset, _backing_size, _bits, size = \
        _QCOW2_HEADER.unpack(header)
    return size if magic == _QCOW2_MAGIC else None


# Base files are made here from images nova's format inspector accepted,
# so their header can be trusted: reading it spares a qemu-img process
# (about 0.1 s each) per disk on spawn and rescue. (Guest disks are never
# probed: see disks.recorded_format.)
def _base_info(path):
    """(format, virtual size) of a cached base file."""
    size = _qcow2_virtual_size(path)
    if size is not None:
        return 'qcow2', size
    if CONF.force_raw_images:  # fetch_to_raw converted anything else
        return 'raw', os.path.getsize(path)
    info = images.qemu_img_info(path)
    return info.file_format, info.virtual_size


def image_format(path):
    """qcow2 or raw: the format qemu sees in a cached base file."""
    return _base_info(path)[0]


def virtual_size(path):
    """The disk size a guest sees in a cached base file."""
    return _base_info(path)[1]


class ImageCacheManager(imagecache.ImageCacheManager):
    """Removes base files no instance on the hosts sharing this instances
    path still uses, once they are older than nova's [image_cache] ages.
    """

    def update(self, context, all_instances):
        if not os.path.isdir(base_dir()):
            return
        running = self._list_running_instances(context, all_instances)
        in_use = ({image_base_name(i) for i in running['used_images']} |
                  running['used_swap_images'] |
                  running['used_ephemeral_images'])
        max_age = CONF.image_cache.remove_unused_original_minimum_age_seconds
        now = time.time()
        for name in sorted(os.listdir(base_dir())):
            path = os.path.join(base_dir(), name)
            if name in in_use:
                os.utime(path)
                continue
            if not self.remove_unused_base_images or name.endswith('.tmp'):
                continue
            if now - os.path.getmtime(path) < max_age:
                continue
            with _locked(name):
                LOG.info('Removing unused cached image %s', path)
                try:
                    os.unlink(path)
                except FileNotFoundError:
                    pass

    def _get_base(self):
        return base_dir()

    def get_disk_usage(self):
        if not os.path.isdir(base_dir()):
            return 0
        return sum(os.stat(os.path.join(base_dir(), n)).st_blocks * 512
                   for n in os.listdir(base_dir()))
