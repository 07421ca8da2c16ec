"""Where this driver keeps what it makes, named once: one host's layout.

The layout is the in-tree libvirt driver's, which lets an operator switch a
host between the two drivers with its guests in place::

    $instances_path/
        <uuid>/                 one instance
            disk                root disk
            disk.local          ephemeral disk (disk.eph<N> when several)
            disk.swap           swap disk
            disk.config         config drive
            disk.info           {disk path: format}, the formats to open
            console.log         the serial console, written by virtlogd
            disk.rescue         while rescued: the rescue disk,
            disk.config.rescue  its config drive,
            unrescue.xml        and the definition the rescue replaced
            <name>.part         a disk being made (renamed once whole)
            resized-by-<migration uuid>  made by that resize or cold
                                migration (a revert removes this copy)
            resize-source.json  where that resize's disks still are to
                                be brought from (gone once they are here)
            shared-storage-probe-*  a moment's probe: is this shared?
        <uuid>_resize/          the same, set aside by a resize or cold
                                migration until it is confirmed (removed)
                                or reverted (renamed back)
        <uuid>.part/            a resize's new copy being made (renamed
                                to <uuid> with its resized-by- mark)
        shared-storage-probe-*  the same for the whole instances path
                                (live migration's pre-checks)
        _base/                  the image cache ([image_cache]
                                subdirectory_name)
        locks/                  the image cache's file locks
        snapshots/              live snapshots' work directories
                                ([altdriver] snapshots_directory)

A driver captures its layout when it is created: several compute services
in one process (nova's functional tests) each keep their own, as separate
hosts would. Files never to be seen half-written are made here too.
"""

import glob
import os
import tempfile

from nova import exception
from oslo_utils import fileutils

import nova.conf

CONF = nova.conf.CONF

DISK = 'disk'
DISK_INFO = 'disk.info'
CONSOLE_LOG = 'console.log'
RESCUE_SUFFIX = '.rescue'
RESCUE_DISK = DISK + RESCUE_SUFFIX
RESCUE_CONFIG_DRIVE = 'disk.config' + RESCUE_SUFFIX
UNRESCUE_XML = 'unrescue.xml'
UNFINISHED_SUFFIX = '.part'
RESIZE_SUFFIX = '_resize'
RESIZE_SOURCE = 'resize-source.json'
_RESIZED_BY = 'resized-by-'
_PROBE_PREFIX = 'shared-storage-probe-'


class Layout(object):

    def __init__(self, instances_path, base_subdirectory='_base',
                 snapshots_directory=None):
        self.root = instances_path
        self.base_dir = os.path.join(instances_path, base_subdirectory)
        self.locks_dir = os.path.join(instances_path, 'locks')
        self.snapshots_dir = (snapshots_directory or
                              os.path.join(instances_path, 'snapshots'))

    @classmethod
    def from_config(cls):
        return cls(CONF.instances_path, CONF.image_cache.subdirectory_name,
                   CONF.altdriver.snapshots_directory)

    # -- an instance's directory ----------------------------------------

    def instance_dir(self, instance_uuid):
        return os.path.join(self.root, instance_uuid)

    def resize_dir(self, instance_uuid):
        return self.instance_dir(instance_uuid) + RESIZE_SUFFIX

    def resized_by(self, instance_uuid, migration_uuid):
        """The mark of the copy of an instance that migration made."""
        return os.path.join(self.instance_dir(instance_uuid),
                            _RESIZED_BY + migration_uuid)

    def instance_file(self, instance, name):
        return os.path.join(self.instance_dir(instance.uuid), name)

    def disk_info(self, instance):
        return self.instance_file(instance, DISK_INFO)

    def console_log(self, instance):
        return self.instance_file(instance, CONSOLE_LOG)

    def unrescue_xml(self, instance):
        return self.instance_file(instance, UNRESCUE_XML)

    def rescue_files(self, instance):
        """The *.rescue files of instance, made or being made."""
        return glob.glob(self.instance_file(instance, '*' + RESCUE_SUFFIX +
                                            '*'))

    def unfinished_disks(self, instance):
        return glob.glob(self.instance_file(instance,
                                            '*' + UNFINISHED_SUFFIX))

    def every_instance_disk(self):
        """The disks of every instance directory here (any host's, on a
        shared instances path).
        """
        return glob.glob(os.path.join(self.root, '*', DISK + '*'))

    # -- is the instances path shared with another host? ----------------

    def place_probe(self, instance):
        """A probe file in instance's directory, named relative to the
        instances path (hosts may mount a shared one at different places);
        None when the directory is not here at all.
        """
        if not os.path.isdir(self.instance_dir(instance.uuid)):
            return None
        fd, path = tempfile.mkstemp(prefix=_PROBE_PREFIX,
                                    dir=self.instance_dir(instance.uuid))
        os.close(fd)
        return {'filename': os.path.relpath(path, self.root)}

    def _probe_path(self, data):
        path = os.path.normpath(os.path.join(self.root, data['filename']))
        if (os.path.dirname(os.path.dirname(path)) !=
                os.path.normpath(self.root) or
                not os.path.basename(path).startswith(_PROBE_PREFIX)):
            raise exception.NovaException(
                'Not a shared-storage probe: %s' % data['filename'])
        return path

    def place_resize_probe(self, instance_uuid):
        """A probe file in the directory a resize set aside; its name."""
        fd, path = tempfile.mkstemp(prefix=_PROBE_PREFIX,
                                    dir=self.resize_dir(instance_uuid))
        os.close(fd)
        return os.path.basename(path)

    def resize_probe_visible(self, instance_uuid, name):
        """Whether another host's resize probe is here: then the two
        share the instances path (or are one host).
        """
        if os.path.basename(name) != name or not name.startswith(
                _PROBE_PREFIX):
            raise exception.NovaException(
                'Not a shared-storage probe: %s' % name)
        return os.path.exists(os.path.join(self.resize_dir(instance_uuid),
                                           name))

    def remove_probes(self, instance_uuid):
        """Every probe in an instance's directory (of moves that ended)."""
        for path in glob.glob(os.path.join(self.instance_dir(instance_uuid),
                                           _PROBE_PREFIX + '*')):
            fileutils.delete_if_exists(path)

    def place_root_probe(self):
        """A probe file in the instances path itself; its absolute path
        (which also tells another host where this host's instances are).
        """
        fd, path = tempfile.mkstemp(prefix=_PROBE_PREFIX, dir=self.root)
        os.close(fd)
        return path

    def root_probe_visible(self, probe_path):
        """Whether another host's root probe (its absolute path there) is
        in this host's instances path: then the two share it.
        """
        name = os.path.basename(probe_path)
        if not name.startswith(_PROBE_PREFIX):
            raise exception.NovaException(
                'Not a shared-storage probe: %s' % probe_path)
        return os.path.exists(os.path.join(self.root, name))

    def remove_root_probe(self, probe_path):
        if (os.path.dirname(probe_path) != self.root or
                not os.path.basename(probe_path).startswith(_PROBE_PREFIX)):
            raise exception.NovaException(
                'Not a shared-storage probe: %s' % probe_path)
        fileutils.delete_if_exists(probe_path)

    def probe_visible(self, data):
        return os.path.exists(self._probe_path(data))

    def remove_probe(self, data):
        fileutils.delete_if_exists(self._probe_path(data))


def make_whole(path, make, suffix=UNFINISHED_SUFFIX):
    """Runs make(temporary path), then gives the result path's name: a
    file that carries the name is whole, whatever happens (a crash, a full
    disk). What make left goes when it fails.
    """
    part = path + suffix
    with fileutils.remove_path_on_error(part):
        make(part)
        os.rename(part, path)


def write_atomically(path, text):
    """Either the old file or the whole new one: written beside it,
    synced, renamed over it, the rename synced (it survives a power loss).
    """
    def write(tmp):
        with open(tmp, 'w') as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
    make_whole(path, write, '.tmp')
    fd = os.open(os.path.dirname(path), os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
