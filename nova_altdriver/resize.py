"""Resize and cold migration: the guest stopped, its disks moved.

On the source, ``migrate_disk_and_power_off`` stops the guest and renames
its directory ``<uuid>`` to ``<uuid>_resize``: that copy stays untouched
until the user confirms (it goes) or reverts (it is renamed back and the
guest made again from it). The destination, in ``finish_migration``, makes
a new ``<uuid>`` from it:

* on the same host or a shared instances path (a probe file the source put
  in ``<uuid>_resize`` is visible here) by a local copy, reflinked where the
  filesystem can;
* otherwise through the source's libvirtd (``host.remote_directory``: no
  SSH trust between compute hosts), the cached bases it lacks the same way.

Then the disks are rebased onto this host's cache, grown to the new flavor,
and the guest is defined and started as before. Swap is not copied: it is
made anew at the new flavor's size (as the in-tree driver does).

What cannot be done is refused before the guest is touched (a smaller
disk); a failure on the source once it was touched puts everything back,
so that nova shows the server as it was. A nova-compute killed in the
middle leaves the task ``resize_migrating``, for which nova calls
``finish_revert_migration`` at the next start: that works from whatever
step it was.
"""

import os
import re
import shutil

from nova import exception
from oslo_concurrency import processutils
from oslo_log import log as logging
from oslo_serialization import jsonutils
from oslo_utils import excutils
from oslo_utils import fileutils
from oslo_utils import units

import nova.conf
from nova_altdriver import disks as disks_mod
from nova_altdriver import host as host_mod
from nova_altdriver import imagecache
from nova_altdriver import paths
from nova_altdriver import vifs
from nova_altdriver import volumes

CONF = nova.conf.CONF
LOG = logging.getLogger(__name__)

# the disks moved; swap is made anew, console.log and disk.info stay
_MOVED = re.compile(r'disk|disk\.local|disk\.config|disk\.eph[0-9]+')


def _moved(name):
    return bool(_MOVED.fullmatch(name))


def _checked_name(name):
    """A file name the source sent: never a path elsewhere."""
    if (not isinstance(name, str) or os.path.basename(name) != name or
            name.startswith('.') or not name):
        raise exception.ResizeError(
            reason='the source names a disk file %r' % (name,))
    return name


def _checked_spec(spec):
    _checked_name(spec['name'])
    if not _moved(spec['name']):
        raise exception.ResizeError(
            reason='the source names a disk %r' % spec['name'])
    if spec['backing'] is not None:
        _checked_name(spec['backing'])
    if spec['format'] not in ('qcow2', 'raw'):
        raise exception.ResizeError(
            reason='the source names a disk format %r' % spec['format'])
    return spec


def bring_disks(cache, instance):
    """The disks a resize's destination still has to bring, as recorded
    in its resize-source.json (nothing without one): copied where the
    source's set-aside copy is here too (a shared path, the same host),
    pulled through the source's libvirtd otherwise; rebased onto this
    host's cache, recorded in disk.info. No guest has run on them yet, so
    all of them come again after an interruption.
    """
    layout = cache.layout
    record = layout.instance_file(instance, paths.RESIZE_SOURCE)
    try:
        with open(record) as f:
            source = jsonutils.loads(f.read())
    except FileNotFoundError:
        return
    specs = [_checked_spec(spec) for spec in source['disks']]
    cache.copy_missing({s['backing'] for s in specs if s['backing']},
                       source['uri'], source['base_dir'])

    def make_each(bring):
        for spec in specs:
            paths.make_whole(layout.instance_file(instance, spec['name']),
                             lambda tmp, spec=spec: bring(spec, tmp))

    if source['shared']:
        set_aside = layout.resize_dir(instance.uuid)
        make_each(lambda spec, tmp: processutils.execute(
            'cp', '--reflink=auto', '--sparse=always',
            os.path.join(set_aside, spec['name']), tmp))
    else:
        with host_mod.remote_directory(
                source['uri'], source['directory']) as download:
            make_each(lambda spec, tmp: download(spec['name'], tmp))
    formats = {}
    for spec in specs:
        path = layout.instance_file(instance, spec['name'])
        if spec['backing']:
            base = os.path.join(layout.base_dir, spec['backing'])
            processutils.execute(
                'qemu-img', 'rebase', '-u', '-f', 'qcow2',
                '-F', imagecache.base_info(base)[0], '-b', base, path)
        formats[path] = spec['format']
    paths.write_atomically(layout.disk_info(instance),
                           jsonutils.dumps(formats))
    os.unlink(record)
    LOG.info('The disks of the resize are here', instance=instance)


class Resize(object):

    def __init__(self, host, cache, lifecycle, power, volumes, snapshot,
                 migration_addr, migration_uri):
        """:param migration_addr: this host's address for migrations
        :param migration_uri: template of another host's libvirt URI
        """
        self._host = host
        self._cache = cache
        self._layout = cache.layout
        self._lifecycle = lifecycle
        self._power = power
        self._volumes = volumes
        self._snapshot = snapshot
        self._addr = migration_addr
        self._uri_template = migration_uri

    # -- the source ---------------------------------------------------------

    def migrate_disk_and_power_off(self, context, instance, flavor,
                                   network_info, block_device_info, timeout,
                                   retry_interval):
        """Stops the guest and sets its disks aside for the destination;
        JSON telling the destination where to find them.
        """
        self._refuse_shrinking(instance, flavor, block_device_info)
        guest = self._host.find_guest(instance.uuid)
        was_running = guest is not None and guest.is_active()
        try:
            self._power.power_off(instance, timeout, retry_interval)
            vifs.unplug(instance, network_info or [])
            self._snapshot.settle(instance)
            disk_specs = self._moved_disks(instance)
            self._set_aside(instance)
            probe = self._layout.place_resize_probe(instance.uuid)
            # made again from nova's data where it lands
            self._lifecycle.remove_domain(instance)
        except Exception as e:
            LOG.exception('Resize failed on the source; putting the server '
                          'back as it was', instance=instance)
            self.finish_revert_migration(context, instance, network_info,
                                         None, block_device_info,
                                         was_running)
            raise exception.InstanceFaultRollback(
                exception.ResizeError(reason=str(e)))
        self._volumes.release_secrets()
        return jsonutils.dumps({
            'source_addr': self._addr,
            'directory': self._layout.resize_dir(instance.uuid),
            'base_dir': self._layout.base_dir,
            'probe': probe,
            'disks': disk_specs})

    @staticmethod
    def _refuse_shrinking(instance, flavor, block_device_info):
        """A disk never shrinks (its filesystem would be cut): refused
        before anything is touched, the server stays as it was.
        """
        root_local = not volumes.boots_from_volume(block_device_info)
        if ((root_local and flavor.root_gb < instance.flavor.root_gb) or
                flavor.ephemeral_gb < instance.flavor.ephemeral_gb):
            raise exception.InstanceFaultRollback(exception.ResizeError(
                reason='the new flavor\'s disks are smaller than the '
                       'server\'s (%d GiB root, %d GiB ephemeral against '
                       '%d and %d): nova_altdriver never shrinks a disk' % (
                           flavor.root_gb, flavor.ephemeral_gb,
                           instance.flavor.root_gb,
                           instance.flavor.ephemeral_gb)))

    def _moved_disks(self, instance):
        """[{name, format, backing}] of the disks that move."""
        specs = []
        directory = self._layout.instance_dir(instance.uuid)
        for name in sorted(os.listdir(directory)):
            path = os.path.join(directory, name)
            if not _moved(name) or not os.path.isfile(path):
                continue
            fmt = disks_mod.recorded_format(self._cache, instance, path)
            backing = (imagecache.backing_file(path)
                       if fmt == 'qcow2' else None)
            if backing and not self._cache.is_base(backing):
                raise exception.ResizeError(
                    reason='disk %s is an overlay of %s, which is not in '
                           'the image cache' % (path, backing))
            specs.append({'name': name, 'format': fmt,
                          'backing': backing and os.path.basename(backing)})
        return specs

    def _set_aside(self, instance):
        """<uuid> renamed to <uuid>_resize; one an earlier attempt left
        (LP 1960230) goes first: the server's disks are in <uuid>.
        """
        resize_dir = self._layout.resize_dir(instance.uuid)
        if os.path.exists(resize_dir):
            LOG.warning('Removing %s, left by an earlier resize',
                        resize_dir, instance=instance)
            shutil.rmtree(resize_dir)
        os.rename(self._layout.instance_dir(instance.uuid), resize_dir)

    def confirm_migration(self, migration, instance):
        """The copy set aside goes; on another host than the guest's now,
        so does anything of it left in libvirt.
        """
        if migration.source_compute != migration.dest_compute:
            self._lifecycle.remove_domain(instance)
        shutil.rmtree(self._layout.resize_dir(instance.uuid),
                      ignore_errors=True)
        # here where the new copy is too (the same host, a shared path)
        fileutils.delete_if_exists(self._layout.resized_by(
            instance.uuid, migration.uuid))
        LOG.info('Resize confirmed; the old disks are removed',
                 instance=instance)

    def finish_revert_migration(self, context, instance, network_info,
                                migration, block_device_info, power_on):
        """The guest as before the resize, from the copy set aside (from
        any step: also nova's repair after a restart in the middle).
        migration: the one to revert; None for a failure before the
        destination had a part in it.
        """
        directory = self._layout.instance_dir(instance.uuid)
        resize_dir = self._layout.resize_dir(instance.uuid)
        self._lifecycle.remove_domain(instance)  # the resized one, if here
        if not os.path.exists(resize_dir):
            pass  # not set aside (yet): the server's disks are in place
        elif not os.path.exists(directory):
            os.rename(resize_dir, directory)
        elif migration and os.path.exists(self._layout.resized_by(
                instance.uuid, migration.uuid)):
            shutil.rmtree(directory)  # the copy this migration made
            os.rename(resize_dir, directory)
        else:
            LOG.warning('Keeping %s, the server\'s disks, and %s, which an '
                        'earlier resize left', directory, resize_dir,
                        instance=instance)
        self._layout.remove_probes(instance.uuid)
        self._lifecycle.create_from_nova_data(
            context, instance, instance.image_meta, network_info,
            block_device_info, power_on=power_on, wait_for_vifs=False)
        LOG.info('Resize reverted', instance=instance)

    # -- the destination ------------------------------------------------

    def finish_migration(self, context, migration, instance, disk_info,
                         network_info, image_meta, resize_instance,
                         block_device_info, power_on):
        """The guest made here from the disks the source set aside. A
        failure keeps what was made: nova's answer to it, a hard reboot
        here, brings the rest (bring_disks) rather than a fresh disk.
        """
        info = jsonutils.loads(disk_info)
        source = {
            'uri': self._uri_template % host_mod.address_for_uri(
                info['source_addr']),
            'shared': self._layout.resize_probe_visible(instance.uuid,
                                                        info['probe']),
            'directory': info['directory'], 'base_dir': info['base_dir'],
            'disks': [_checked_spec(spec) for spec in info['disks']]}
        self._new_directory(instance, migration, source)
        try:
            bring_disks(self._cache, instance)
            if resize_instance:
                self._grow(instance)
            self._lifecycle.create_from_nova_data(
                context, instance, image_meta, network_info,
                block_device_info, power_on=power_on, wait_for_vifs=False)
        except Exception:
            with excutils.save_and_reraise_exception():
                LOG.error('Resize failed on the destination; a hard reboot '
                          'here brings what is missing (the source keeps '
                          'the server\'s disks)', instance=instance)
                self._lifecycle.remove_domain(instance)
        LOG.info('Resize finished here%s', '' if power_on else
                 ' (not started)', instance=instance)

    def _new_directory(self, instance, migration, source):
        """An empty <uuid> but for the record of where its disks are to
        come from, marked as this migration's copy from the moment it has
        the name: a revert removes only such a copy.
        """
        directory = self._layout.instance_dir(instance.uuid)
        unfinished = directory + paths.UNFINISHED_SUFFIX
        for leftover in (directory, unfinished):  # an earlier attempt's
            if os.path.exists(leftover):
                LOG.warning('Removing %s, left by an earlier move to this '
                            'host', leftover, instance=instance)
                shutil.rmtree(leftover)
        os.makedirs(unfinished)
        mark = self._layout.resized_by(instance.uuid, migration.uuid)
        open(os.path.join(unfinished, os.path.basename(mark)), 'w').close()
        paths.write_atomically(os.path.join(unfinished, paths.RESIZE_SOURCE),
                               jsonutils.dumps(source))
        os.rename(unfinished, directory)

    def _grow(self, instance):
        """Root and ephemeral disk grown to the new flavor (the guest
        grows its filesystems itself, as after any larger flavor); several
        ephemeral disks keep their sizes, as nova's records of them do.
        """
        directory = self._layout.instance_dir(instance.uuid)
        ephemerals = [n for n in os.listdir(directory)
                      if _moved(n) and n not in (paths.DISK, 'disk.config')]
        sizes = {paths.DISK: instance.flavor.root_gb}
        if len(ephemerals) == 1:
            sizes[ephemerals[0]] = instance.flavor.ephemeral_gb
        for name, size_gb in sizes.items():
            path = os.path.join(directory, name)
            if not size_gb or not os.path.exists(path):
                continue
            if (disks_mod.virtual_size(self._cache, instance, path) <
                    size_gb * units.Gi):
                LOG.info('Growing %s to %d GiB', name, size_gb,
                         instance=instance)
                processutils.execute(
                    'qemu-img', 'resize', '-f',
                    disks_mod.recorded_format(self._cache, instance, path),
                    path, str(size_gb * units.Gi))
