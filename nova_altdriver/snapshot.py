"""Snapshots: a server's root disk as a Glance image.

A running or paused guest is never paused for the copy nor undefined (the
in-tree driver does both): an external disk-only snapshot redirects its
writes to a temporary overlay, the now-stable disk is copied at leisure,
then an active block commit folds the overlay back and pivots the guest
onto its own disk. A stopped or suspended guest's disk is copied as it is
(a suspended guest stays suspended).

The copy goes straight to Glance (qcow2stream): no staging copy takes the
image's size on the instances filesystem. Only a chain that module cannot
copy, or a compressed qcow2 snapshot, is converted into a staging file
first and uploaded after the fold-back. A server deleted during the upload
ends it: the deletion does not wait for the rest of the image.

The overlay holds the guest's only copy of what it wrote meanwhile, so its
work directory (``<uuid>-<random>`` in the snapshots directory, with the
definition from before and the host that made it) goes only once the
overlay is folded back. Whatever interrupts that (a failed commit, QEMU,
libvirtd or nova-compute dying), the overlay is folded back, online or
offline, by the next of: nova-compute's start on that host, a hard reboot,
start, rescue or snapshot of the server, or its evacuation onto another
host of a shared instances path.
"""

import os
import shutil
import tempfile
import threading
import time
import uuid as uuid_mod

from nova.compute import task_states
from nova import exception
from nova.image import glance
from oslo_concurrency import lockutils
from oslo_concurrency import processutils
from oslo_log import log as logging
from oslo_utils import excutils
from oslo_utils import fileutils

import nova.conf
from nova_altdriver import disks
from nova_altdriver import paths
from nova_altdriver import qcow2stream

CONF = nova.conf.CONF
LOG = logging.getLogger(__name__)

# In a snapshot's work directory: what the guest writes meanwhile, its
# definition before, and the nova-compute host that owns the directory.
_OVERLAY = 'writes-meanwhile.qcow2'
_DEFINITION = 'definition.xml'
_OWNER = 'host'
# ... and the image, when it cannot be streamed
_STAGED = 'image'


def image_metadata(instance, image_meta, disk_format):
    """What the libvirt driver records on a snapshot image."""
    properties = {'image_location': 'snapshot',
                  'image_state': 'available',
                  'owner_id': instance.project_id}
    # Only what the instance has: an empty kernel_id makes nova look up an
    # image '' when booting from the snapshot, and fail.
    for key in ('kernel_id', 'ramdisk_id', 'os_type'):
        if getattr(instance, key):
            properties[key] = getattr(instance, key)
    return {'status': 'active',
            'disk_format': disk_format,
            'container_format': (image_meta.container_format
                                 if image_meta.obj_attr_is_set(
                                     'container_format') else 'bare'),
            'properties': properties}


def _compressed():
    return (CONF.altdriver.snapshot_compression and
            CONF.altdriver.snapshot_image_format == 'qcow2')


def _convert(source, source_format, target):
    """Copies source (and its backing chain) into one standalone image."""
    args = ['qemu-img', 'convert', '-U', '-f', source_format,
            '-O', CONF.altdriver.snapshot_image_format]
    if _compressed():
        args.append('-c')
    processutils.execute(*(args + [source, target]))


class _Cancellable(object):
    """An instance's image stream that ends once cancelled is set (the
    instance is being deleted).
    """

    def __init__(self, instance_uuid, stream, cancelled):
        self._instance_uuid = instance_uuid
        self._stream = stream
        self._cancelled = cancelled

    def read(self, size=-1):
        if self._cancelled.is_set():
            raise exception.InstanceNotFound(instance_id=self._instance_uuid)
        return self._stream.read(size)


def _instance_uuid(name):
    """The instance a work directory's name belongs to; None for others
    (lost+found, the in-tree driver's temporary directories).
    """
    try:
        return str(uuid_mod.UUID(name[:36])) if name[36:37] == '-' else None
    except ValueError:
        return None


def _work_dirs(root, instance_uuid=None):
    """[(instance uuid, work directory)] in root, oldest first: those of
    one instance, or all.
    """
    try:
        names = os.listdir(root)
    except FileNotFoundError:
        return []
    found = []
    for name in names:
        path = os.path.join(root, name)
        owner = _instance_uuid(name)
        if (owner and instance_uuid in (None, owner) and
                os.path.isfile(os.path.join(path, _OWNER))):
            found.append((os.path.getmtime(path), owner, path))
    return [(owner, path) for _mtime, owner, path in sorted(found)]


def _remove_unfinished_work_dirs(root):
    """Work directories a nova-compute did not live to give an owner: they
    never held anything (the owner is written before anything else).
    """
    try:
        names = os.listdir(root)
    except FileNotFoundError:
        return
    for name in names:
        path = os.path.join(root, name)
        if (_instance_uuid(name) and os.path.isdir(path) and
                set(os.listdir(path)) <= {_OWNER + '.tmp'}):
            shutil.rmtree(path, ignore_errors=True)


def _read(path):
    with open(path) as f:
        return f.read()


def _owner(work):
    try:
        return _read(os.path.join(work, _OWNER)).strip()
    except OSError:
        return None


def _locked(instance_uuid):
    """One fold-back or snapshot of an instance at a time in this
    process (a hard reboot may come while a snapshot folds back).
    """
    return lockutils.lock('altdriver-snapshot-' + instance_uuid)


def _pending(work):
    """Whether work still holds the guest's writes or its definition."""
    return any(os.path.exists(os.path.join(work, name))
               for name in (_OVERLAY, _DEFINITION))


class Snapshot(object):

    def __init__(self, host, cache):
        self._host = host
        self._cache = cache
        self._layout = cache.layout
        self._image_api = glance.API()
        # instance uuid: an Event set when the instance is being deleted,
        # for each upload under way
        self._uploads = {}
        self._uploads_lock = threading.Lock()

    def snapshot(self, context, instance, image_id, update_task_state):
        guest = self._host.find_guest(instance.uuid)
        if guest is None:
            raise exception.InstanceNotRunning(instance_id=instance.uuid)
        update_task_state(task_state=task_states.IMAGE_PENDING_UPLOAD)
        root = self._layout.instance_file(instance, paths.DISK)
        root_format = disks.recorded_format(self._cache, instance, root)

        def upload(data):
            update_task_state(task_state=task_states.IMAGE_UPLOADING,
                              expected_state=task_states.IMAGE_PENDING_UPLOAD)
            metadata = image_metadata(instance, instance.image_meta,
                                      CONF.altdriver.snapshot_image_format)
            self._image_api.update(context, image_id, metadata, data,
                                   purge_props=False)
            LOG.info('Snapshot %s uploaded', image_id, instance=instance)

        with _locked(instance.uuid):
            self._settle(instance.uuid)
            work = self._new_work_dir(instance)
            try:
                # Active also while shutting down or PM-suspended: QEMU
                # still has the disk open for writing.
                if guest.is_active():
                    staged = self._live_copy(instance, guest, root,
                                             root_format, work, upload)
                else:
                    staged = self._copy(instance, root, root_format, work,
                                        upload)
            except Exception:
                fileutils.delete_if_exists(os.path.join(work, _STAGED))
                gone = self._host.find_guest(instance.uuid) is None
                if not _pending(work) or (gone and not os.path.isdir(
                        self._layout.instance_dir(instance.uuid))):
                    shutil.rmtree(work, ignore_errors=True)
                if gone:  # deleted meanwhile: nova then discards the image
                    raise exception.InstanceNotFound(
                        instance_id=instance.uuid)
                raise
        try:
            if staged:
                with open(staged, 'rb') as data:
                    upload(data)
        finally:
            shutil.rmtree(work, ignore_errors=True)

    def _copy(self, instance, source, source_format, work, upload):
        """The image of source's stable chain: streamed to upload (None),
        or, when it cannot be, converted into work (the file's path, for
        the caller to upload).
        """
        if not _compressed():
            try:
                stream = qcow2stream.ImageStream(
                    source, source_format,
                    CONF.altdriver.snapshot_image_format)
            except qcow2stream.NotStreamable as e:
                LOG.info('Snapshot staged on disk: %s', e, instance=instance)
            else:
                cancelled = threading.Event()
                with self._uploads_lock:
                    self._uploads[instance.uuid] = cancelled
                try:
                    with stream:
                        upload(_Cancellable(instance.uuid, stream, cancelled))
                finally:
                    with self._uploads_lock:
                        del self._uploads[instance.uuid]
                return None
        staged = os.path.join(work, _STAGED)
        _convert(source, source_format, staged)
        return staged

    def _new_work_dir(self, instance):
        os.makedirs(self._layout.snapshots_dir, exist_ok=True)
        work = tempfile.mkdtemp(prefix=instance.uuid + '-',
                                dir=self._layout.snapshots_dir)
        paths.write_atomically(os.path.join(work, _OWNER), instance.host)
        return work

    def _live_copy(self, instance, guest, root, root_format, work, upload):
        props = instance.image_meta.properties
        if props.get('os_require_quiesce') and not props.get(
                'hw_qemu_guest_agent'):
            raise exception.QemuGuestAgentNotEnabled()
        target = guest.disk_target(root)
        if target is None:
            raise exception.DiskNotFound(location=root)
        # Kept on disk until the overlay is folded back: whoever finishes
        # the job puts the definition back as it was.
        definition = os.path.join(work, _DEFINITION)
        paths.write_atomically(definition, guest.xml(inactive=True))
        overlay = os.path.join(work, _OVERLAY)
        try:
            guest.redirect_writes(
                target, overlay,
                quiesce=bool(props.get('hw_qemu_guest_agent')),
                require_quiesce=bool(props.get('os_require_quiesce')))
        except Exception:
            with excutils.save_and_reraise_exception():
                if not os.path.exists(overlay):  # nothing was redirected
                    fileutils.delete_if_exists(definition)
        try:
            # Stable now: the guest writes elsewhere.
            return self._copy(instance, root, root_format, work, upload)
        finally:
            self._fold_back_retrying(instance.uuid, work)

    def _fold_back_retrying(self, instance_uuid, work):
        """Folds back, once more after a failure (libvirtd restarted, QEMU
        gone): the second attempt sees the guest as it is now.
        """
        try:
            self._fold_back(instance_uuid, work)
        except Exception as e:
            LOG.warning('Folding back the snapshot overlay failed (%s); '
                        'trying again', e, instance_uuid=instance_uuid)
            self._fold_back(instance_uuid, work)

    def _fold_back(self, instance_uuid, work):
        """Puts the overlay's writes into the guest's own disk, the guest
        back onto it and its definition back as it was; then the overlay and
        saved definition go. Each step can be repeated after a crash.
        Without a QEMU of this host on the overlay (killed, domain lost,
        evacuated here from a failed host) it is committed offline.
        """
        started = time.monotonic()
        overlay = os.path.join(work, _OVERLAY)
        guest = self._host.find_guest(instance_uuid)
        if os.path.exists(overlay):
            if guest is not None and guest.is_active():
                target = guest.disk_target(overlay)
                if target is not None:
                    self._commit_online(guest, target)
                # else pivoted already: what the overlay holds is in the
                # disk, which the guest has written to since.
            elif guest is None or guest.disk_target(overlay, True):
                processutils.execute('qemu-img', 'commit', '-q', '-f',
                                     'qcow2', overlay)
            os.unlink(overlay)
        definition = os.path.join(work, _DEFINITION)
        # (a pivot may have put the definition back already)
        if guest is not None and guest.disk_target(overlay, True):
            self._host.define(_read(definition))
        fileutils.delete_if_exists(definition)
        LOG.debug('Snapshot overlay of %s folded back in %.2f s',
                  instance_uuid, time.monotonic() - started)

    @staticmethod
    def _commit_online(guest, target):
        # A commit that outlived nova-compute is still running (or ready):
        # started again it would fail.
        if not guest.has_block_job(target):
            guest.commit_active_layer(target)
        guest.pivot_when_ready(target)

    def _settle(self, instance_uuid):
        for _uuid, work in _work_dirs(self._layout.snapshots_dir,
                                      instance_uuid):
            if _pending(work):
                LOG.warning('Finishing an interrupted snapshot',
                            instance_uuid=instance_uuid)
                self._fold_back_retrying(instance_uuid, work)
                shutil.rmtree(work, ignore_errors=True)
            # else an upload is under way (or died with nova-compute: the
            # next start of nova-compute removes it)

    def settle(self, instance):
        """Finishes what an interrupted snapshot of instance left, before
        its domain is made again from nova's data. A work directory whose
        overlay cannot be folded back stays, and the error is raised.
        """
        with _locked(instance.uuid):
            self._settle(instance.uuid)

    def forget(self, instance):
        """Removes the work directories of an instance whose disks go,
        once an upload of its image under way has ended.
        """
        with self._uploads_lock:
            if instance.uuid in self._uploads:
                self._uploads[instance.uuid].set()
        with _locked(instance.uuid):
            for _uuid, work in _work_dirs(self._layout.snapshots_dir,
                                          instance.uuid):
                shutil.rmtree(work, ignore_errors=True)

    def recover_interrupted(self, host):
        """At nova-compute's start: finishes this host's interrupted
        snapshots (other hosts' on a shared instances path are theirs). One
        that cannot be finished stays; nova-compute starts all the same.
        """
        _remove_unfinished_work_dirs(self._layout.snapshots_dir)
        for instance_uuid, work in _work_dirs(self._layout.snapshots_dir):
            if _owner(work) != host:
                continue
            try:
                with _locked(instance_uuid):
                    self._recover(instance_uuid, work)
            except Exception:
                LOG.exception('Could not finish the interrupted snapshot in '
                              '%s; it is kept', work,
                              instance_uuid=instance_uuid)

    def _recover(self, instance_uuid, work):
        if _pending(work) and os.path.isdir(
                self._layout.instance_dir(instance_uuid)):
            if self._host.find_guest(instance_uuid) is None:
                LOG.warning('Interrupted snapshot of a guest this host no '
                            'longer has: left for the host that starts it',
                            instance_uuid=instance_uuid)
                return
            self._fold_back_retrying(instance_uuid, work)
        shutil.rmtree(work, ignore_errors=True)
