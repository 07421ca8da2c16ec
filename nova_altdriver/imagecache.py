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


def image_format(path):
    """qcow2 or raw: the format qemu sees in a cached base file."""
    return images.qemu_img_info(path).file_format


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
