"""Live migration: what happens on both hosts, from the pre-checks to the
clean-up, in nova's order.

Destination pre-check: the CPU, a probe file in the instances path (its
absolute path travels in migrate_data.filename).
Source pre-check: the probe seen here means a shared instances path; with
the destination's answer, whether the local disks are shared, go along
(block migration) or make the move impossible (InvalidSharedStorage, the
server running on). Destination preparation: the instance directory, for a
block migration empty disks of the same sizes on the same bases (bases and
the config drive, which NBD does not copy, come from the source through its
libvirtd), volumes' secrets, network. Source: libvirt's peer-to-peer
migration in a thread of its own while this one watches it (progress into
the migration record, completion timeout, force-complete, abort), then
nova's post or recover method - never an exception, which would put the
server in ERROR although it runs on.

Hosts may keep their instances at different paths (tests do): the
destination's definition has the source's paths rewritten to its own. Its
Open vSwitch ports have no device names: the destination's libvirtd names
them (free_interface_names).
"""

import collections
import os
import threading
import time

from lxml import etree
from nova.compute import power_state
from nova.console import serial
from nova import exception
from nova import objects
from oslo_concurrency import processutils
from oslo_log import log as logging
from oslo_serialization import jsonutils
from oslo_utils import units

import nova.conf
from nova_altdriver import disks as disks_mod
from nova_altdriver import domain
from nova_altdriver import guest as guest_mod
from nova_altdriver import host as host_mod
from nova_altdriver import imagecache
from nova_altdriver import lifecycle
from nova_altdriver import paths
from nova_altdriver import vifs

CONF = nova.conf.CONF
LOG = logging.getLogger(__name__)

# libvirt's own test of shared storage (qemuMigrationSrcIsSafe) knows these
# network and cluster filesystems; on them it stays in charge.
NETWORK_FILESYSTEMS = frozenset((
    'nfs', 'nfs4', 'cifs', 'smb3', 'smbfs', 'gfs2', 'gfs2meta', 'ocfs2',
    'afs', 'ceph', 'fuse.glusterfs', 'glusterfs', 'lustre', 'gpfs',
    'fuse.quobyte', 'beegfs', '9p', 'virtiofs'))

_POLL_SECONDS = 0.5
_PROGRESS_SAVE_SECONDS = 5.0

# A local disk as get_instance_disk_info describes it to the destination.
DiskSpec = collections.namedtuple(
    'DiskSpec', 'name format virtual_size backing copied')


def storage_decision(shared_path, has_local_disks, block_migration):
    """(block_migration, shared block storage) of a live migration, or
    the exception that refuses it (the server runs on where it is).

    :param shared_path: the two hosts share the instances path
    :param has_local_disks: the guest has file disks (a config drive is one)
    :param block_migration: what the user asked; None: whatever works
    """
    shared_block = shared_path or not has_local_disks
    if block_migration is None:
        block_migration = not shared_block
    if block_migration and shared_block:
        raise exception.InvalidLocalStorage(
            path=CONF.instances_path,
            reason='the server\'s disks are shared with the destination '
                   '(%s): live-migrate it without block migration' % (
                       'shared instances path' if shared_path
                       else 'volumes only'))
    if not block_migration and not shared_block:
        raise exception.InvalidSharedStorage(
            path=CONF.instances_path,
            reason='the instances path is not shared with the destination '
                   'and the server has local disks: live-migrate it with '
                   'block migration')
    return block_migration, shared_block


def rewrite_paths(xml, source_root, dest_root):
    """The domain definition xml with every file under source_root (disks,
    their backing chains, console log, kernel) moved under dest_root.
    """
    if os.path.normpath(source_root) == os.path.normpath(dest_root):
        return xml
    prefix = os.path.normpath(source_root) + os.sep
    dest = os.path.normpath(dest_root) + os.sep
    doc = etree.fromstring(xml)
    for el in doc.iter(etree.Element):
        for name, value in el.attrib.items():
            if value.startswith(prefix):
                el.set(name, dest + value[len(prefix):])
        if el.text and el.text.startswith(prefix) and not len(el):
            el.text = dest + el.text[len(prefix):]
    return etree.tostring(doc, encoding='unicode')


def move_serial_ports(xml, address, ports):
    """The domain definition xml with its TCP serial ports listening on
    address and, port by port (by the guest's port index), on the ports
    the destination took for them; a port it took none for keeps its
    number. (A <console> libvirt added as the alias of the first port
    moves with it, as the in-tree driver moves it.)
    """
    doc = etree.fromstring(xml)
    for device in doc.xpath("devices/serial[@type='tcp'] | "
                            "devices/console[@type='tcp']"):
        source = device.find('source')
        source.set('host', address)
        index = int(device.find('target').get('port'))
        if index < len(ports):
            source.set('service', str(ports[index]))
    return etree.tostring(doc, encoding='unicode')


def free_interface_names(xml):
    """The domain definition xml without the device names of its Open
    vSwitch ports: the destination's libvirtd names them, with names free
    on its host.

    The name a device has here may be taken there: on two compute hosts of
    one machine (one kernel) it is, by this very guest's device, and the
    destination's QEMU could not start. An OVS port is bound by its
    iface-id, which libvirt sets from the <virtualport> whatever the
    device's name (neutron's OVS agent and OVN look ports up by it);
    other interfaces keep their names, by which agents may know them.
    """
    doc = etree.fromstring(xml)
    for target in doc.xpath("devices/interface[virtualport/@type="
                            "'openvswitch']/target"):
        target.getparent().remove(target)
    return etree.tostring(doc, encoding='unicode')


def copied_disk(disk):
    """Whether a block migration copies disk (a domain.Disk) over NBD:
    local writable files; volumes are Ceph's and read-only media (the
    config drive cdrom) are the destination's to bring.
    """
    return bool(disk.source and not disk.rbd and disk.device != 'cdrom' and
                not disk.readonly and not disk.shareable)


def data_gib(memory_mb, copied_disk_bytes):
    """The GiB a completion timeout is measured by: memory, and each
    copied disk, counted as at least 2 GiB (as the in-tree driver does).
    """
    gib = max(2, memory_mb // units.Ki)
    return gib + sum(max(2, size // units.Gi) for size in copied_disk_bytes)


def filesystem_type(path):
    """The type of the filesystem holding path (/proc/self/mountinfo)."""
    path = os.path.realpath(path)
    best, best_type = '', None
    with open('/proc/self/mountinfo') as f:
        for line in f:
            fields = line.split()
            mount_point = fields[4].replace('\\040', ' ')
            fs_type = fields[fields.index('-') + 1]
            inside = (path == mount_point or
                      path.startswith(mount_point.rstrip('/') + '/'))
            if inside and len(mount_point) >= len(best):
                best, best_type = mount_point, fs_type
    return best_type


def _best_effort(what, call, instance):
    try:
        call()
    except Exception as e:
        LOG.warning('%s failed: %s', what, e, instance=instance)


class _Job(object):
    """One live migration running on this host (the source)."""

    def __init__(self, guest, run, post_copy, timeout):
        """:param post_copy: it may switch to post-copy
        :param timeout: seconds after which it is aborted (0: never)
        """
        self.guest = guest
        self.post_copy = post_copy
        self.timeout = timeout
        self._run = run
        self.error = None
        self.cancelled = False
        self.paused_here = False
        self._force_complete = threading.Event()
        self.thread = threading.Thread(target=self._migrate,
                                       name='live-migration-' + guest.uuid,
                                       daemon=True)

    def _migrate(self):
        try:
            self._run()
        except guest_mod.MigrationCancelled as e:
            self.cancelled = True
            self.error = e
        except Exception as e:
            self.error = e

    def request_force_complete(self):
        self._force_complete.set()

    def force_complete_requested(self):
        requested = self._force_complete.is_set()
        self._force_complete.clear()
        return requested


class LiveMigration(object):

    def __init__(self, host, cache, volumes, migration_addr):
        """:param migration_addr: this host's address for migrations"""
        self._host = host
        self._cache = cache
        self._layout = cache.layout
        self._volumes = volumes
        self._addr = migration_addr
        # Captured now, like the address: one driver per host.
        opts = CONF.altdriver
        self._uri_template = opts.migration_uri
        self._completion_timeout = opts.live_migration_completion_timeout
        self._bandwidth = opts.live_migration_bandwidth
        self._post_copy = opts.live_migration_permit_post_copy
        self._virt_type = opts.virt_type
        self._jobs = {}  # instance uuid -> _Job

    def _uri(self, addr):
        return self._uri_template % host_mod.address_for_uri(addr)

    # -- pre-checks ---------------------------------------------------------

    def check_destination(self, instance, src_compute_info,
                          block_migration, disk_over_commit):
        """On the destination: can the guest run here? migrate_data for
        the source's check.
        """
        self._check_cpu(src_compute_info)
        data = objects.LibvirtLiveMigrateData()
        data.filename = self._layout.place_root_probe()
        data.target_connect_addr = self._addr
        data.disk_over_commit = bool(disk_over_commit)
        st = os.statvfs(self._layout.root)
        data.disk_available_mb = st.f_frsize * st.f_bavail // units.Mi
        data.wait_for_vif_plugged = (
            CONF.compute.live_migration_wait_for_vif_plug)
        # where this host's guests listen for nova-serialproxy (None: a
        # pty serial port, no TCP port to move here)
        data.serial_listen_addr = (
            CONF.serial_console.proxyclient_address
            if CONF.serial_console.enabled else None)
        if block_migration is not None:
            data.block_migration = block_migration
        return data

    def _check_cpu(self, src_compute_info):
        # Software emulation (TCG) runs any guest CPU model anywhere.
        if (self._virt_type != 'kvm' or
                CONF.workarounds.skip_cpu_compare_on_dest or
                not src_compute_info or
                not src_compute_info.get('cpu_info')):
            return
        info = jsonutils.loads(src_compute_info['cpu_info'])
        cpu = etree.Element('cpu')
        for name in ('arch', 'model', 'vendor'):
            if info.get(name):
                etree.SubElement(cpu, name).text = info[name]
        for feature in info.get('features', ()):
            etree.SubElement(cpu, 'feature', name=feature, policy='require')
        compatible = self._host.cpu_compatible(
            etree.tostring(cpu, encoding='unicode'), self._virt_type,
            info.get('arch'))
        if compatible is False:
            raise exception.MigrationPreCheckError(
                reason='the CPU of the source host (%s %s) is not '
                       'compatible with this host\'s' % (
                           info.get('vendor'), info.get('model')))

    def cleanup_destination_check(self, dest_check_data):
        if 'filename' in dest_check_data:
            self._layout.remove_root_probe(dest_check_data.filename)

    def check_source(self, instance, dest_check_data):
        """On the source: what moves how (the shared flags and
        block_migration set), or InvalidSharedStorage/InvalidLocalStorage.
        """
        data = dest_check_data
        shared_path = self._layout.root_probe_visible(data.filename)
        guest = self._host.get_guest(instance)
        if not guest.serial_ports():
            data.serial_listen_addr = None  # no ports to take there
        elif ('serial_listen_addr' not in data or
              data.serial_listen_addr is None):
            raise exception.MigrationPreCheckError(
                reason='the server has a TCP serial console and the '
                       'destination host has [serial_console] disabled')
        local = [d for d in guest.disks() if d.source]
        block_migration, shared_block = storage_decision(
            shared_path, bool(local),
            data.block_migration if 'block_migration' in data else None)
        data.is_shared_instance_path = shared_path
        data.is_shared_block_storage = shared_block
        data.block_migration = block_migration
        data.instance_relative_path = instance.uuid
        if block_migration and data.disk_over_commit is False:
            self._check_free_space(instance, local,
                                   data.disk_available_mb)
        return data

    def _check_free_space(self, instance, local, available_mb):
        needed = sum(self._virtual_size(instance, d.source) for d in local)
        if available_mb is not None and needed > available_mb * units.Mi:
            raise exception.MigrationPreCheckError(
                reason='the destination has %d MiB free, the server\'s '
                       'disks need %d MiB' % (available_mb,
                                              needed // units.Mi))

    def _virtual_size(self, instance, path):
        return disks_mod.virtual_size(self._cache, instance, path)

    # -- the destination's preparation --------------------------------------

    def disk_info(self, instance):
        """On the source, for a block migration: JSON telling the
        destination where to find this host and what disks to make.
        """
        specs = []
        for disk in self._host.get_guest(instance).disks():
            if not disk.source:
                continue
            if os.path.dirname(disk.source) != self._layout.instance_dir(
                    instance.uuid):
                raise exception.MigrationError(
                    reason='disk %s is outside the instance directory' %
                    disk.source)
            fmt = disks_mod.recorded_format(self._cache, instance,
                                            disk.source)
            backing = (imagecache.backing_file(disk.source)
                       if fmt == 'qcow2' else None)
            if backing and not self._cache.is_base(backing):
                raise exception.MigrationError(
                    reason='disk %s is an overlay of %s, which is not in '
                           'the image cache' % (disk.source, backing))
            specs.append(DiskSpec(
                os.path.basename(disk.source), fmt,
                self._virtual_size(instance, disk.source),
                backing and os.path.basename(backing),
                copied_disk(disk))._asdict())
        return jsonutils.dumps({
            'source_addr': self._addr,
            'instance_dir': self._layout.instance_dir(instance.uuid),
            'base_dir': self._layout.base_dir,
            'disks': specs})

    def pre_live_migration(self, instance, block_device_info, network_info,
                           disk_info, migrate_data):
        """On the destination: instance directory and disks where not
        shared, volumes' secrets, network. migrate_data back.
        """
        if not migrate_data.is_shared_instance_path:
            directory = self._layout.instance_dir(instance.uuid)
            if os.path.exists(directory):
                raise exception.DestinationDiskExists(path=directory)
            os.makedirs(directory)
            if not migrate_data.is_shared_block_storage:
                self._make_disks(instance, jsonutils.loads(disk_info))
        self._volumes.disks(instance, block_device_info)
        vifs.plug(instance, network_info)
        migrate_data.target_connect_addr = self._addr
        # The guest's TCP serial ports listen on ports of this host's pool
        # (the source's numbers may be taken here); rollback_at_destination
        # gives them back.
        address = (migrate_data.serial_listen_addr
                   if 'serial_listen_addr' in migrate_data else None)
        migrate_data.serial_listen_ports = [
            serial.acquire_port(address) for _ in range(
                domain.serial_port_count(instance.flavor,
                                         instance.image_meta))
        ] if address else []
        return migrate_data

    def _make_disks(self, instance, info):
        """Empty disks (on the same bases) for NBD to fill; the files it
        does not copy brought from the source's instance directory.
        """
        uri = self._uri(info['source_addr'])
        specs = [DiskSpec(**spec) for spec in info['disks']]
        for spec in specs:  # names of files here, never paths elsewhere
            for name in (spec.name, spec.backing or 'base'):
                if os.path.basename(name) != name or name.startswith('.'):
                    raise exception.MigrationError(
                        reason='the source names a disk file %r' % name)
            if spec.format not in ('qcow2', 'raw'):
                raise exception.MigrationError(
                    reason='the source names a disk format %r' %
                    spec.format)
        formats = {}
        self._cache.copy_missing({s.backing for s in specs if s.backing},
                                 uri, info['base_dir'])
        pulled = [s for s in specs if not s.copied]
        if pulled:
            with host_mod.remote_directory(
                    uri, info['instance_dir']) as download:
                for spec in pulled:
                    path = self._layout.instance_file(instance, spec.name)
                    paths.make_whole(path, lambda tmp, spec=spec:
                                     download(spec.name, tmp))
                    formats[path] = spec.format
        for spec in specs:
            if not spec.copied:
                continue
            path = self._layout.instance_file(instance, spec.name)
            if spec.backing:
                base = os.path.join(self._layout.base_dir, spec.backing)
                disks_mod.overlay(base, path, spec.virtual_size)
            else:
                processutils.execute('qemu-img', 'create', '-f', spec.format,
                                     path, str(spec.virtual_size))
            formats[path] = spec.format
        paths.write_atomically(self._layout.disk_info(instance),
                               jsonutils.dumps(formats))

    # -- the migration, on the source ---------------------------------------

    def live_migration(self, context, instance, dest, post_method,
                       recover_method, block_migration, migrate_data):
        """Moves the guest; calls post_method or recover_method as nova
        expects and returns (never raises: the server runs on somewhere).
        """
        # (block_migration is the request's, None for "auto"; the source's
        # pre-check decided)
        try:
            guest = self._host.get_guest(instance)
            serial_ports = guest.serial_ports()  # undefined here once moved
            job = self._start(instance, guest, migrate_data.block_migration,
                              migrate_data)
        except Exception:
            LOG.exception('The live migration to %s could not start', dest,
                          instance=instance)
            recover_method(context, instance, dest, migrate_data)
            return
        try:
            self._watch(instance, job, migrate_data)
        except Exception:
            # Never leave a migration running unwatched (LP 1905944).
            LOG.exception('Watching the live migration failed; aborting it',
                          instance=instance)
            _best_effort('Aborting the live migration', guest.abort_job,
                         instance)
            job.thread.join()
            job.cancelled = False  # by this failure, not by the user
        finally:
            self._jobs.pop(instance.uuid, None)
        if job.error is None:
            LOG.info('Live migration to %s completed', dest,
                     instance=instance)
            lifecycle.release_serial_ports(serial_ports)
            post_method(context, instance, dest, block_migration,
                        migrate_data)
            return
        if job.paused_here:
            _best_effort('Unpausing the guest', guest.resume, instance)
        if job.cancelled:
            LOG.info('Live migration to %s cancelled; the guest runs on '
                     'here', dest, instance=instance)
            recover_method(context, instance, dest, migrate_data,
                           migration_status='cancelled')
        else:
            LOG.error('Live migration to %s failed; the guest runs on here: '
                      '%s', dest, job.error, instance=instance)
            recover_method(context, instance, dest, migrate_data)

    def _start(self, instance, guest, block_migration, migrate_data):
        addr = migrate_data.target_connect_addr
        disks = guest.disks()
        copied = [d for d in disks if copied_disk(d)] if block_migration \
            else []
        unsafe = bool(
            not block_migration and migrate_data.is_shared_instance_path and
            any(d.source for d in disks) and
            filesystem_type(self._layout.root) not in NETWORK_FILESYSTEMS)
        xml = free_interface_names(rewrite_paths(
            guest.migratable_xml(), self._layout.root,
            os.path.dirname(migrate_data.filename)))
        if migrate_data.serial_listen_addr:
            xml = move_serial_ports(xml, migrate_data.serial_listen_addr,
                                    migrate_data.serial_listen_ports)
        uri = self._uri(addr)
        migrate_uri = 'tcp://' + host_mod.address_for_uri(addr)
        LOG.info('Live-migrating to %s (%s)%s', uri, migrate_uri,
                 ', copying disks %s' % ', '.join(d.dev for d in copied)
                 if copied else '', instance=instance)

        # A paused guest cannot switch to post-copy (LP 1671011): it is
        # forced along by being paused already.
        post_copy = (self._post_copy and
                     guest.power_state() != power_state.PAUSED)

        def run():
            guest.migrate(uri, migrate_uri, xml,
                          copy_disks=[d.dev for d in copied],
                          bandwidth=self._bandwidth, unsafe=unsafe,
                          post_copy=post_copy)
        job = _Job(guest, run, post_copy, self._completion_timeout * data_gib(
            instance.flavor.memory_mb,
            [self._virtual_size(instance, d.source) for d in copied]))
        self._jobs[instance.uuid] = job
        job.thread.start()
        return job

    def _watch(self, instance, job, migrate_data):
        migration = migrate_data.migration
        started = time.monotonic()
        saved = started
        timed_out = False
        while True:
            job.thread.join(_POLL_SECONDS)
            if not job.thread.is_alive():
                return
            now = time.monotonic()
            if (job.force_complete_requested() and
                    not self._force_complete(instance, job, migration)):
                job.request_force_complete()  # at the next tick
            if (job.timeout and not timed_out and
                    now - started > job.timeout):
                LOG.warning('Live migration not complete after %d s '
                            '([altdriver] live_migration_completion_'
                            'timeout): aborting it', job.timeout,
                            instance=instance)
                job.guest.abort_job()
                timed_out = True
            if now - saved >= _PROGRESS_SAVE_SECONDS:
                saved = now
                try:
                    progress = job.guest.job_progress()
                except exception.InstanceNotFound:
                    continue  # gone from here: completed
                if progress is not None:
                    self._save_progress(instance, migration, progress)

    def _force_complete(self, instance, job, migration):
        """Pauses the guest or switches to post-copy; False when it is too
        early for the switch: QEMU refuses it before its migration has
        begun (libvirt still preparing the destination).
        """
        if job.post_copy:
            try:
                progress = job.guest.job_progress()
            except exception.InstanceNotFound:
                return True  # across already
            if progress is None or not progress.memory_processed:
                return False
            LOG.info('Switching the live migration to post-copy',
                     instance=instance)
            job.guest.start_post_copy()
            migration.status = 'running (post-copy)'
            migration.save()
        else:
            LOG.info('Pausing the guest to complete its live migration',
                     instance=instance)
            job.guest.pause()
            job.paused_here = True
        return True

    @staticmethod
    def _save_progress(instance, migration, progress):
        # (nova's API shows no figure rather than a 0: its schema wants
        # at least 1 byte)
        for name, value in progress._asdict().items():
            setattr(migration, name, value or None)
        migration.save()
        LOG.debug('Live migration: memory %d of %d bytes left, disks %d of '
                  '%d', progress.memory_remaining, progress.memory_total,
                  progress.disk_remaining, progress.disk_total,
                  instance=instance)

    def force_complete(self, instance):
        job = self._jobs.get(instance.uuid)
        if job is None:
            raise exception.NoActiveMigrationForInstance(
                instance_id=instance.uuid)
        job.request_force_complete()

    def abort(self, instance):
        """The running migration ends; the guest runs on here."""
        job = self._jobs.get(instance.uuid)
        if job is None:
            raise exception.NoActiveMigrationForInstance(
                instance_id=instance.uuid)
        job.guest.abort_job()

    # -- after the move -------------------------------------------------

    def post_at_source(self, instance, network_info):
        vifs.unplug(instance, network_info)

    def post_at_destination(self, instance):
        """The definition libvirt made here persistent (PERSIST_DEST) is
        checked, not trusted: a guest without one would vanish at its next
        stop.
        """
        guest = self._host.get_guest(instance)
        if not guest.is_persistent():
            LOG.warning('The migrated guest has no persistent definition; '
                        'defining it', instance=instance)
            self._host.define(guest.xml())

    def rollback_at_destination(self, instance, network_info, migrate_data):
        """Removes what the destination made: the guest if libvirt left
        one, the network, the instance directory unless shared (then it
        is the source's, the guest's own disks).
        """
        guest = self._host.stop_guest(instance.uuid)
        if guest is not None:
            guest.undefine()
        vifs.unplug(instance, network_info or [])
        self._volumes.release_secrets()
        if (migrate_data is not None and
                'serial_listen_ports' in migrate_data and
                migrate_data.serial_listen_ports):
            lifecycle.release_serial_ports(
                (migrate_data.serial_listen_addr, port)
                for port in migrate_data.serial_listen_ports)
        if (migrate_data is not None and
                'is_shared_instance_path' in migrate_data and
                not migrate_data.is_shared_instance_path):
            disks_mod.remove_instance_dir(self._layout, instance)
