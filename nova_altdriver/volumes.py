"""Cinder volumes: this host's connector, a volume's disk, attach, detach,
extend, swap (Cinder's migration of an attached volume), and the quiescing
of nova's snapshots of volume-backed servers.

Ceph RBD volumes only (``driver_volume_type = rbd``, Cinder's RBD driver):
QEMU opens them itself through librbd, so nothing is connected on the host.
libvirt needs the cephx user's key as a ``ceph`` secret of the UUID Cinder
names: an operator's own secret is used as it is; without one, the driver
defines it from the host's Ceph keyring
(``<[altdriver] ceph_conf_dir>/<cluster>.client.<user>.keyring``) and
removes it once no guest of this host uses it.
"""

import base64
import dataclasses
import os
import platform
import re
import sys

from nova import block_device
from nova.compute import power_state
from nova import exception
from nova.virt import block_device as driver_block_device
from nova.virt import driver
from oslo_log import log as logging
from oslo_utils import units

import nova.conf
from nova_altdriver import domain

CONF = nova.conf.CONF
LOG = logging.getLogger(__name__)

_KEY = re.compile(r'^\s*key\s*=\s*(\S+)\s*$', re.M)


class UnsupportedVolume(exception.InvalidInput):
    # (invalid input: a build fails at once, never tried on other hosts)
    msg_fmt = ('nova_altdriver attaches Ceph RBD volumes only, not '
               '%(what)s')


class KeyringMissing(exception.NovaException):
    msg_fmt = ('No libvirt secret %(uuid)s and no key of cephx user '
               '%(user)s in %(path)s: QEMU cannot open the volume')


def connector():
    """What nova hands Cinder as this host's connector (an RBD volume needs
    nothing of the host but its name).
    """
    return {'platform': platform.machine(), 'os_type': sys.platform,
            'ip': CONF.my_block_storage_ip, 'host': CONF.host,
            'multipath': False, 'enforce_multipath': False,
            'do_local_attach': False}


def boots_from_volume(block_device_info):
    return any(vol.get('boot_index') == 0 for vol in
               driver.block_device_info_get_mapping(block_device_info))


def device_of(mount_device, bus):
    """The guest's device for nova's name of a volume (/dev/vdc) on bus:
    nova's letter with the bus's prefix (older servers' names are sd*).
    """
    return (domain.device_prefix(bus) +
            block_device.get_device_letter(mount_device))


def _iotune(qos_specs):
    """Disk.iotune of the QoS specs Cinder hands with a volume (its
    front-end limits), as the in-tree driver reads them.
    """
    if not qos_specs:
        return ()
    if not isinstance(qos_specs, dict):
        LOG.warning('Unknown content in connection_info/qos_specs: %s',
                    qos_specs)
        return ()
    return tuple((name, str(qos_specs[name])) for name in domain.IOTUNE
                 if name in qos_specs)


def volume_disk(connection_info, dev, bus, device_type=None,
                boot_order=None):
    """The domain.Disk of a volume Cinder connected."""
    kind = connection_info.get('driver_volume_type')
    if kind != 'rbd':
        raise UnsupportedVolume(what='%s volumes' % kind)
    data = connection_info['data']
    volume_id = driver_block_device.get_volume_id(connection_info)
    rbd = domain.Rbd(
        name=data['name'],
        hosts=tuple(zip(data.get('hosts') or (), data.get('ports') or ())),
        username=data.get('auth_username') if data.get('auth_enabled')
        else None,
        secret_uuid=data.get('secret_uuid'))
    return domain.Disk(
        None, 'raw', dev, bus, device=device_type or 'disk',
        boot_order=boot_order,
        serial=connection_info.get('serial') or volume_id, rbd=rbd,
        alias='ua-' + volume_id,
        readonly=data.get('access_mode') == 'ro',
        shareable=bool(connection_info.get('multiattach')),
        iotune=_iotune(data.get('qos_specs')))


def _cephx_key(cluster, user, secret_uuid):
    path = os.path.join(CONF.altdriver.ceph_conf_dir,
                        '%s.client.%s.keyring' % (cluster, user))
    try:
        with open(path) as f:
            found = _KEY.search(f.read())
    except OSError:
        found = None
    if found is None:
        raise KeyringMissing(uuid=secret_uuid, user=user, path=path)
    return base64.b64decode(found.group(1))  # libvirt keeps it decoded


class Volumes(object):

    def __init__(self, host):
        self._host = host

    def _bus(self, instance, disk_bus=None):
        return (disk_bus or
                instance.image_meta.properties.get('hw_disk_bus') or
                'virtio')

    def disks(self, instance, block_device_info):
        """(the boot volume's domain.Disk or None, [those of the others])
        of the volumes in block_device_info, their secrets defined where
        needed.
        """
        boot, others = None, []
        for vol in driver.block_device_info_get_mapping(block_device_info):
            bus = self._bus(instance, vol.get('disk_bus'))
            disk = self._usable(vol['connection_info'],
                                device_of(vol['mount_device'], bus), bus,
                                vol.get('device_type'))
            if vol.get('boot_index') == 0:
                boot = disk
            else:
                others.append(disk)
        return boot, others

    def _usable(self, connection_info, dev, bus, device_type=None):
        """The volume's disk, its cephx key in libvirt."""
        disk = volume_disk(connection_info, dev, bus, device_type)
        rbd = disk.rbd
        if rbd.username and not self._host.has_secret(rbd.secret_uuid):
            cluster = connection_info['data'].get('cluster_name') or 'ceph'
            self._host.define_ceph_secret(
                rbd.secret_uuid, rbd.username,
                _cephx_key(cluster, rbd.username, rbd.secret_uuid))
        return disk

    def attach(self, connection_info, instance, mountpoint, disk_bus=None,
               device_type=None, encryption=None):
        if encryption:
            raise UnsupportedVolume(what='encrypted volumes')
        guest = self._host.get_guest(instance)
        bus = self._bus(instance, disk_bus)
        disk = self._usable(connection_info, device_of(mountpoint, bus),
                            bus, device_type)
        try:
            guest.attach_disk(disk)
        except Exception:
            self.release_secrets()
            raise
        LOG.info('Volume %s attached as %s', disk.serial, disk.dev,
                 instance=instance)

    def detach(self, connection_info, instance, mountpoint):
        """Removes the volume from the running guest once it lets go, then
        from the definition. A guest or device gone already is fine; a
        paused guest, or one that does not let go, is DeviceDetachFailed
        with the definition untouched (a guest may still let go later: the
        next start brings the volume back from nova's data).
        """
        volume_id = driver_block_device.get_volume_id(connection_info)
        guest = self._host.find_guest(instance.uuid)
        if guest is None:
            LOG.info('No guest to detach volume %s from', volume_id,
                     instance=instance)
            return
        running = (_volume(guest.disks(), connection_info)
                   if guest.is_active() else None)
        if running is not None:
            if guest.power_state() == power_state.PAUSED:
                raise exception.DeviceDetachFailed(
                    device=running.dev, reason='a paused guest cannot let '
                    'it go: unpause the server first')
            self._detach_live(guest, running, connection_info)
        defined = _volume(guest.disks(inactive=True), connection_info)
        if defined is not None:
            guest.detach_disk(defined, live=False)
        self.release_secrets()
        LOG.info('Volume %s detached', volume_id, instance=instance)

    def _detach_live(self, guest, disk, connection_info):
        self._host.unplug_from_running(
            guest, disk.dev, disk.alias,
            ask=lambda: guest.detach_disk(disk, live=True),
            present=lambda: _volume(guest.disks(),
                                    connection_info) is not None,
            attempts=CONF.altdriver.device_detach_attempts,
            seconds=CONF.altdriver.device_detach_timeout)

    def extend(self, connection_info, instance, requested_size):
        """A running guest is told its volume's new size (bytes); a stopped
        one sees it when it starts.
        """
        volume_id = driver_block_device.get_volume_id(connection_info)
        guest = self._host.find_guest(instance.uuid)
        if guest is None or not guest.is_active():
            return
        disk = _volume(guest.disks(), connection_info)
        if disk is None:
            raise exception.DiskNotFound(location=volume_id)
        guest.resize_disk(disk.dev, requested_size)
        LOG.info('Volume %s extended to %d bytes', volume_id,
                 requested_size, instance=instance)

    def swap(self, old_connection_info, new_connection_info, instance,
             resize_to):
        """Copies the running guest's volume onto the new one Cinder made,
        then moves the guest onto it (copy, then pivot: the guest runs on
        and sees one disk throughout; libvirt puts the new volume into the
        definition with the pivot); resize_to GiB (0: same size). On any
        failure the guest stays on the old volume, untouched.
        """
        guest = self._host.get_guest(instance)
        old_id = driver_block_device.get_volume_id(old_connection_info)
        running = (_volume(guest.disks(), old_connection_info)
                   if guest.is_active() else None)
        if running is None:
            raise exception.VolumeRebaseFailed(
                reason='volume %s is not in a running guest: QEMU copies it'
                % old_id)
        # the guest keeps its device as it knows it: serial, alias, address
        new = dataclasses.replace(
            self._usable(new_connection_info, running.dev, running.bus,
                         running.device),
            serial=running.serial, alias=running.alias,
            boot_order=running.boot_order)
        try:
            guest.mirror_disk(running.dev, new)
            guest.pivot_when_ready(running.dev)
        except Exception as e:
            try:
                guest.abort_block_job(running.dev)
            except Exception as abort_error:
                LOG.warning('Could not abort the copy of %s: %s', running.dev,
                            abort_error, instance=instance)
            self.release_secrets()
            raise exception.VolumeRebaseFailed(reason=e)
        if resize_to:
            guest.resize_disk(running.dev, resize_to * units.Gi)
        self.release_secrets()
        LOG.info('Volume %s swapped for %s', old_id,
                 driver_block_device.get_volume_id(new_connection_info),
                 instance=instance)

    def abort_interrupted_swaps(self):
        """Ends the copies of swaps nova-compute died in: the guests stay on
        their old volumes, as nova's data still has them (Cinder's
        migration fails; asked again, it starts afresh).
        """
        for guest in self._host.list_guests():
            try:
                if not guest.is_active():
                    continue
                for disk in guest.disks():
                    if disk.rbd and guest.has_block_job(disk.dev):
                        LOG.warning('Aborting the copy of volume %s that an '
                                    'interrupted swap left', disk.serial,
                                    instance_uuid=guest.uuid)
                        guest.abort_block_job(disk.dev)
            except exception.InstanceNotFound:
                continue  # removed meanwhile
            except Exception as e:  # nova-compute starts all the same
                LOG.warning('Could not look for interrupted volume swaps: '
                            '%s', e, instance_uuid=guest.uuid)

    def release_secrets(self):
        """Removes the secrets this driver defined that no guest of this
        host uses any more: best effort, never failing what called it (a
        secret left is used again, or removed next time).
        """
        try:
            own = self._host.own_secrets()
            used = set()
            for guest in self._host.list_guests() if own else ():
                try:
                    used |= {disk.rbd.secret_uuid for disk in
                             guest.disks(inactive=True) if disk.rbd}
                except exception.InstanceNotFound:
                    continue  # removed meanwhile
            for uuid in set(own) - used:
                self._host.remove_secret(uuid)
        except Exception as e:
            LOG.warning('Could not remove unused Ceph secrets: %s', e)


def _volume(disks, connection_info):
    """The disk of a volume: by its id as the guest knows it, or by its
    image (after a swap the guest's device keeps the first volume's id,
    which Cinder's migration usually gives the new volume too).
    """
    volume_id = driver_block_device.get_volume_id(connection_info)
    name = connection_info['data'].get('name')
    return next((d for d in disks if d.rbd and (
        d.serial == volume_id or d.rbd.name == name)), None)
