"""Snapshots: a server's root disk as a Glance image.

A running or paused guest is never paused for the copy and its persistent
definition is never undefined (the in-tree driver does both): an external
disk-only snapshot redirects the guest's writes to a temporary overlay, the
now-stable disk is converted at leisure, then an active block commit folds
the overlay back and pivots the guest onto its own disk again. A stopped or
suspended guest's disk is converted as it is; a suspended guest stays
suspended.
"""

import os
import shutil
import tempfile
import time

from nova.compute import power_state
from nova.compute import task_states
from nova import exception
from nova.image import glance
from oslo_concurrency import processutils
from oslo_log import log as logging

import nova.conf
from nova_altdriver import disks
from nova_altdriver import paths

CONF = nova.conf.CONF
LOG = logging.getLogger(__name__)

_JOB_POLL_SECONDS = 0.05
# In a live snapshot's work directory (<uuid>-<random> in the snapshots
# directory): what the guest writes meanwhile, and its definition before.
_OVERLAY = 'writes-meanwhile.qcow2'
_DEFINITION = 'definition.xml'


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


def _convert(source, source_format, target):
    """Copies source (and its backing chain) into one standalone image."""
    args = ['qemu-img', 'convert', '-U', '-f', source_format,
            '-O', CONF.altdriver.snapshot_image_format]
    if (CONF.altdriver.snapshot_compression and
            CONF.altdriver.snapshot_image_format == 'qcow2'):
        args.append('-c')
    processutils.execute(*(args + [source, target]))


class Snapshot(object):

    def __init__(self, host):
        self._host = host
        self._image_api = glance.API()

    def snapshot(self, context, instance, image_id, update_task_state):
        guest = self._host.find_guest(instance.uuid)
        if guest is None:
            raise exception.InstanceNotRunning(instance_id=instance.uuid)
        update_task_state(task_state=task_states.IMAGE_PENDING_UPLOAD)
        root = os.path.join(disks.instance_dir(instance), 'disk')
        root_format = disks.recorded_format(instance, root)
        os.makedirs(paths.snapshots_directory(), exist_ok=True)
        work = tempfile.mkdtemp(prefix=instance.uuid + '-',
                                dir=paths.snapshots_directory())
        try:
            out = os.path.join(work, 'image')
            try:
                if guest.power_state() in (power_state.RUNNING,
                                           power_state.PAUSED):
                    self._live_copy(instance, guest, root, root_format, out,
                                    work)
                else:
                    _convert(root, root_format, out)
            except Exception:
                # Deleted meanwhile: nova then discards the image quietly.
                if self._host.find_guest(instance.uuid) is None:
                    raise exception.InstanceNotFound(instance_id=instance.uuid)
                raise
            update_task_state(task_state=task_states.IMAGE_UPLOADING,
                              expected_state=task_states.IMAGE_PENDING_UPLOAD)
            metadata = image_metadata(instance, instance.image_meta,
                                      CONF.altdriver.snapshot_image_format)
            with open(out, 'rb') as data:
                self._image_api.update(context, image_id, metadata, data,
                                       purge_props=False)
            LOG.info('Snapshot %s uploaded', image_id, instance=instance)
        finally:
            shutil.rmtree(work, ignore_errors=True)

    def _live_copy(self, instance, guest, root, root_format, out, work):
        props = instance.image_meta.properties
        if props.get('os_require_quiesce') and not props.get(
                'hw_qemu_guest_agent'):
            raise exception.QemuGuestAgentNotEnabled()
        target = guest.disk_target(root)
        persistent = guest.xml(inactive=True)
        # Kept on disk until the overlay is folded back: if nova-compute
        # dies meanwhile, init_host finishes the job (recover_interrupted).
        with open(os.path.join(work, _DEFINITION), 'w') as f:
            f.write(persistent)
            f.flush()
            os.fsync(f.fileno())
        overlay = os.path.join(work, _OVERLAY)
        guest.redirect_writes(target, overlay,
                              quiesce=bool(props.get('hw_qemu_guest_agent')),
                              require_quiesce=bool(
                                  props.get('os_require_quiesce')))
        try:
            # Stable now: the guest writes elsewhere.
            _convert(root, root_format, out)
        finally:
            self._fold_back(guest, target, persistent)

    def _fold_back(self, guest, target, persistent):
        """Commits the temporary overlay into the guest's own disk and
        pivots onto it, leaving the chain exactly as before.
        """
        started = time.monotonic()
        guest.commit_active_layer(target)
        while not guest.block_job_ready(target):
            time.sleep(_JOB_POLL_SECONDS)
        guest.pivot(target)
        # The persistent definition as it was (libvirt may have pointed it
        # at the overlay): it was never undefined, only updated.
        self._host.define(persistent)
        LOG.debug('Overlay of %s folded back in %.2f s', guest.uuid,
                  time.monotonic() - started)

    def recover_interrupted(self):
        """Finishes live snapshots nova-compute did not live to finish:
        a guest still writing to a temporary overlay gets it committed back
        (online, or offline when the host rebooted meanwhile) and its saved
        definition; then the leftovers go.
        """
        root = paths.snapshots_directory()
        if not os.path.isdir(root):
            return
        for name in os.listdir(root):
            work = os.path.join(root, name)
            overlay = os.path.join(work, _OVERLAY)
            guest = self._host.find_guest(name[:36])
            # (the live definition, or the persistent one of a guest off)
            if guest is not None and overlay in guest.xml():
                LOG.warning('Committing back the overlay of a snapshot '
                            'interrupted by a restart',
                            instance_uuid=name[:36])
                with open(os.path.join(work, _DEFINITION)) as f:
                    persistent = f.read()
                if guest.is_active():
                    self._fold_back(guest, guest.disk_target(overlay),
                                    persistent)
                else:
                    processutils.execute('qemu-img', 'commit', '-q', overlay)
                    self._host.define(persistent)
            shutil.rmtree(work, ignore_errors=True)
