"""The host's image cache: base files under ``$instances_path/_base``.

Every image a guest needs (root disk, kernel, ramdisk) is fetched through
nova's image API once per host, checked by nova's format inspector (content
must match the declared format; no backing or data files), and kept as
``_base/<sha1 of image id>``, the layout of the in-tree libvirt driver.
Blank ephemeral and swap disks are cached the same way. Guests use them
through copy-on-write overlays (disks.py).
"""

import collections
import contextlib
import functools
import hashlib
import os
import struct
import time

import nova.conf
from nova import exception
import nova.privsep.fs
from nova.virt import imagecache
from nova.virt import images
from oslo_concurrency import lockutils
from oslo_concurrency import processutils
from oslo_log import log as logging
from oslo_utils import fileutils
from oslo_utils import units

from nova_altdriver import host
from nova_altdriver import paths

CONF = nova.conf.CONF
LOG = logging.getLogger(__name__)

# magic, version, backing file offset and size, cluster bits, virtual size
_QCOW2_HEADER = struct.Struct('>4sIQIIQ')
_QCOW2_MAGIC = b'QFI\xfb'
_QCOW2_MAX_BACKING_NAME = 1023  # the qcow2 specification's limit
_QCOW2_FEATURES_END = 80  # incompatible features: 8 bytes from 72 (v3)
_QCOW2_EXTERNAL_DATA_FILE = 1 << 2
_Qcow2Header = collections.namedtuple(
    '_Qcow2Header', 'backing_offset backing_length size external_data')


# The kernel or ramdisk image <sha1 of image id> + this (see fetch_boot_file)
BOOT_FILE_SUFFIX = '.boot'
# A base file being made: <name>.tmp (a fetch's download: <name>.tmp.part)
_UNFINISHED = '.tmp'


def image_base_name(image_id):
    return hashlib.sha1(image_id.encode()).hexdigest()


def ephemeral_base_name(size_gb, os_type):
    extension = nova.privsep.fs.get_file_extension_for_os_type(
        nova.privsep.fs.get_fs_type_for_os_type(os_type),
        CONF.default_ephemeral_format)
    return 'ephemeral_%d_%s' % (size_gb, extension)


def swap_base_name(size_mb):
    return 'swap_%d' % size_mb


class ImageCache(object):
    """The base files of one host's layout (paths.Layout)."""

    def __init__(self, layout):
        self.layout = layout

    def locked(self, name, blocking=True):
        """A lock on one base file, shared by every process using it."""
        return lockutils.lock(name, external=True,
                              lock_path=self.layout.locks_dir,
                              blocking=blocking)

    def _build(self, name, make):
        """Path of base file name, made whole by make(tmp path) unless
        cached. Under the base's lock, which the cache manager takes too: a
        base handed out here is young again, never removed under its user.
        """
        path = os.path.join(self.layout.base_dir, name)
        os.makedirs(self.layout.base_dir, exist_ok=True)
        with self.locked(name):
            if os.path.exists(path):
                os.utime(path)  # in use: young again for the cache manager
                return path
            paths.make_whole(path, make, _UNFINISHED)
        return path

    def fetch_image(self, context, image_id, trusted_certs=None):
        """Path of the cached, inspected base file of a Glance image."""
        return self._build(image_base_name(image_id),
                           lambda tmp: _fetch_disk_image(
                               context, image_id, tmp, trusted_certs))

    def fetch_boot_file(self, context, image_id, trusted_certs=None):
        """Path of the cached kernel or ramdisk image (aki / ari).

        QEMU loads these with -kernel / -initrd, not through its block
        layer: the disk-format inspection does not apply (it rejects every
        bzImage's legacy boot sector). Named apart, so an uninspected file
        (a qcow2 backed by a host file, once someone's kernel_id) is never
        taken for an inspected disk base later.
        """
        return self._build(image_base_name(image_id) + BOOT_FILE_SUFFIX,
                           lambda tmp: images.fetch(context, image_id, tmp,
                                                    trusted_certs))

    def cache_image(self, context, image_id):
        """Pre-caches an image; False when it was cached already."""
        if os.path.exists(os.path.join(self.layout.base_dir,
                                       image_base_name(image_id))):
            return False
        self.fetch_image(context, image_id)
        return True

    def copy_missing(self, names, uri, directory):
        """The base files names not cached here, copied from another
        host's cache (its directory) through its libvirtd at uri: a
        migration's destination, whose overlays need the same bases.
        """
        missing = [name for name in names if not os.path.exists(
            os.path.join(self.layout.base_dir, name))]
        if missing:
            with host.remote_directory(uri, directory) as download:
                for name in missing:
                    self._build(name, functools.partial(download, name))

    def blank_ephemeral(self, size_gb, os_type):
        def make(tmp):
            with open(tmp, 'wb') as f:
                f.truncate(size_gb * units.Gi)
            nova.privsep.fs.configurable_mkfs(
                os_type, 'ephemeral0', tmp, run_as_root=False,
                default_ephemeral_format=CONF.default_ephemeral_format)
        return self._build(ephemeral_base_name(size_gb, os_type), make)

    def blank_swap(self, size_mb):
        def make(tmp):
            with open(tmp, 'wb') as f:
                f.truncate(size_mb * units.Mi)
            nova.privsep.fs.unprivileged_mkfs('swap', tmp)
        return self._build(swap_base_name(size_mb), make)

    def is_base(self, path):
        """Whether path is one of this cache's files."""
        return os.path.dirname(path) == self.layout.base_dir

    def backing_files_in_use(self):
        """Names of the base files a disk of an instance directory here is
        an overlay of (nova's list of used images knows only an instance's
        first ephemeral disk, and no guest another host has just made).
        """
        names = set()
        for disk in self.layout.every_instance_disk():
            try:
                backing = backing_file(disk)
            except OSError:
                continue
            if backing and self.is_base(backing):
                names.add(os.path.basename(backing))
        return names


def _fetch_disk_image(context, image_id, path, trusted_certs):
    """nova's fetch_to_raw, made of nova's own checks, and one more before
    anything reads the image: a qcow2 whose tables point past its end
    (truncated, or made so) is refused where a conversion reads zeros.
    """
    part = path + '.part'
    images.fetch(context, image_id, part, trusted_certs)
    with fileutils.remove_path_on_error(part):
        declared = None
        if not CONF.workarounds.disable_deep_image_inspection:
            declared = images.do_image_deep_inspection(
                images.get_info(context, image_id), image_id, part)
        info = images.qemu_img_info(part)
        fmt = info.file_format
        if fmt is None or (declared is not None and fmt != declared):
            raise exception.ImageUnacceptable(
                image_id=image_id,
                reason='Image content does not match disk_format')
        data_file = (info.format_specific or {}).get('data', {}).get(
            'data-file')
        if info.backing_file is not None or data_file is not None:
            raise exception.ImageUnacceptable(
                image_id=image_id,
                reason='%s with a backing or data file' % fmt)
        if fmt == 'vmdk':
            images.check_vmdk_image(image_id, info)
        if fmt == 'qcow2':
            _check_qcow2_integrity(image_id, part)
        if fmt == 'raw' or not CONF.force_raw_images:
            os.rename(part, path)
            return
        with fileutils.remove_path_on_error(path):
            images.convert_image(part, path, fmt, 'raw')
            # What the guest would see holds another image: the host
            # would open that one (nested qcow2 with a backing file).
            seen = images.qemu_img_info(path).file_format
            if seen != 'raw':
                raise exception.ImageUnacceptable(
                    image_id=image_id,
                    reason='Converted to raw, but format is now %s' % seen)
    os.unlink(part)


def _check_qcow2_integrity(image_id, path):
    try:
        processutils.execute('qemu-img', 'check', '-q', '-f', 'qcow2', path)
    except processutils.ProcessExecutionError as e:
        raise exception.ImageUnacceptable(
            image_id=image_id,
            reason='qcow2 image fails its integrity check (%s)' % (
                (e.stdout + e.stderr).strip().splitlines() or ['?'])[0])


def _qcow2_header(path):
    """A qcow2 file's header (its backing file's offset and length, the
    virtual size, whether the data is kept in an external data file); None
    for any other file.
    """
    with open(path, 'rb') as f:
        header = f.read(_QCOW2_FEATURES_END)
    if len(header) < _QCOW2_HEADER.size or not header.startswith(
            _QCOW2_MAGIC):
        return None
    _magic, version, offset, length, _bits, size = \
        _QCOW2_HEADER.unpack_from(header)
    # version 3 headers mark an external data file as incompatible
    # feature bit 2 (a header too short to say is not trusted either)
    external = version >= 3 and (
        len(header) < _QCOW2_FEATURES_END or
        header[_QCOW2_FEATURES_END - 1] & _QCOW2_EXTERNAL_DATA_FILE)
    return _Qcow2Header(offset, length, size, bool(external))


def is_plain_qcow2(path):
    """A qcow2 file that keeps its data in itself."""
    header = _qcow2_header(path)
    return header is not None and not header.external_data


def qcow2_virtual_size(path):
    """The size the guest sees of a qcow2 file, from its header (QEMU
    writes it, the guest cannot); None for any other file. Only for a file
    known to be qcow2 by other means (its domain definition, the cache's
    inspection): the content of a guest's disk never decides its format.
    """
    header = _qcow2_header(path)
    return header.size if header is not None else None


def backing_file(path):
    """The backing file a qcow2 file names, or None."""
    header = _qcow2_header(path)
    if (not header or not header.backing_offset or
            header.backing_length > _QCOW2_MAX_BACKING_NAME):
        return None
    with open(path, 'rb') as f:
        f.seek(header.backing_offset)
        return os.fsdecode(f.read(header.backing_length))


# Base files are made here from images nova's format inspector accepted,
# so their header can be trusted: reading it spares a qemu-img process
# (about 0.1 s each) per disk on spawn and rescue. (Guest disks are never
# probed: see disks.recorded_format.)
def base_info(path):
    """(format: qcow2 or raw, virtual size) of a cached base file."""
    header = _qcow2_header(path)
    if header is not None:
        return 'qcow2', header.size
    if CONF.force_raw_images:  # fetch_to_raw converted anything else
        return 'raw', os.path.getsize(path)
    info = images.qemu_img_info(path)
    return info.file_format, info.virtual_size


class ImageCacheManager(imagecache.ImageCacheManager):
    """Removes base files no instance on the hosts sharing this instances
    path still uses, once they are older than nova's [image_cache] ages.
    """

    def __init__(self, cache):
        super().__init__()
        self._cache = cache
        self._base_dir = cache.layout.base_dir
        self._instances_root = cache.layout.root

    def update(self, context, all_instances):
        if not os.path.isdir(self._base_dir):
            return
        running = self._list_running_instances(context, all_instances)
        used_images = {image_base_name(i) for i in running['used_images']}
        in_use = (used_images |
                  {name + BOOT_FILE_SUFFIX for name in used_images} |
                  running['used_swap_images'] |
                  running['used_ephemeral_images'] |
                  self._cache.backing_files_in_use())
        for name in sorted(os.listdir(self._base_dir)):
            path = os.path.join(self._base_dir, name)
            if name in in_use:
                with contextlib.suppress(FileNotFoundError):
                    os.utime(path)
            elif (self.remove_unused_base_images and
                    _UNFINISHED not in name):
                self._remove_if_unused_long_enough(name, path)
        self.remove_unfinished()

    def remove_unfinished(self):
        """Removes what fetches that died left (``.tmp``, ``.tmp.part``),
        under the base's lock; a lock held is a living fetch (of any host of
        a shared instances path): left alone, never waited for.
        """
        if not os.path.isdir(self._base_dir):
            return
        for name in os.listdir(self._base_dir):
            base, dot, _rest = name.partition(_UNFINISHED)
            if not dot:
                continue
            try:
                with self._cache.locked(base, blocking=False):
                    fileutils.delete_if_exists(
                        os.path.join(self._base_dir, name))
            except lockutils.AcquireLockFailedException:
                LOG.debug('%s is being fetched; left alone', base)

    def _remove_if_unused_long_enough(self, name, path):
        max_age = CONF.image_cache.remove_unused_original_minimum_age_seconds
        with self._cache.locked(name):
            # Checked under the lock _build hands bases out under: a base
            # just handed out is young again.
            try:
                if time.time() - os.path.getmtime(path) < max_age:
                    return
                LOG.info('Removing unused cached image %s', path)
                os.unlink(path)
            except FileNotFoundError:
                pass

    def _get_base(self):
        return self._base_dir

    def get_disk_usage(self):
        """Bytes the cached base files hold on the instances filesystem
        (0 when the cache is on another one), as the in-tree driver counts
        them for [workarounds] reserve_disk_resource_for_image_cache.
        """
        try:
            if (os.stat(self._base_dir).st_dev !=
                    os.stat(self._instances_root).st_dev):
                return 0
            return sum(entry.stat().st_blocks * 512
                       for entry in os.scandir(self._base_dir)
                       if entry.is_file())
        except OSError:
            return 0  # no cache yet, or a file removed meanwhile
