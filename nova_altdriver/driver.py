"""AltDriver: nova's ComputeDriver interface, mapped onto this package.

A facade: each method hands the work to the module that owns the concern
(host.py for the libvirt connection and events, resources.py for what the
node offers, lifecycle.py for spawn and destroy, imagecache.py for the
host's cached images).
"""

import os

from nova import context as nova_context
from nova import exception
from nova import utils
from nova.virt import driver
from nova.virt import node
from oslo_concurrency import processutils
from oslo_log import log as logging

from nova_altdriver import agent
from nova_altdriver import conf
from nova_altdriver import devicemeta
from nova_altdriver import diagnostics
from nova_altdriver import disks
from nova_altdriver import domain
from nova_altdriver import host as host_mod
from nova_altdriver import imagecache
from nova_altdriver import lifecycle
from nova_altdriver import live_migration
from nova_altdriver import optional
from nova_altdriver import paths
from nova_altdriver import power
from nova_altdriver import rescue
from nova_altdriver import resize
from nova_altdriver import resources
from nova_altdriver import snapshot
from nova_altdriver import vifs
from nova_altdriver import volumes

CONF = conf.CONF
LOG = logging.getLogger(__name__)


class AltDriver(driver.ComputeDriver):

    capabilities = dict(
        driver.ComputeDriver.capabilities,
        has_imagecache=True,
        supports_attach_interface=True,
        # tags at boot (API 2.42) and on attach (2.49): devicemeta.py
        supports_device_tagging=True,
        supports_tagged_attach_interface=True,
        supports_tagged_attach_volume=True,
        supports_evacuate=True,
        supports_extend_volume=True,
        supports_multiattach=True,
        supports_bfv_rescue=True,
        supports_image_type_qcow2=True,
        supports_image_type_raw=True,
        supports_image_type_aki=True,
        supports_image_type_ari=True,
        # an AMI is a raw disk to nova's image checks, and boots with its
        # kernel_id / ramdisk_id as any image does
        supports_image_type_ami=True,
        # every image download passes instance.trusted_certs to nova's
        # Glance client, which verifies the signature with them
        supports_trusted_certs=True,
    )

    def __init__(self, virtapi, read_only=False):
        super().__init__(virtapi)
        # Captured now: several compute services in one process (nova's
        # functional tests) each keep the URI and paths they started with.
        # (host: this host's libvirt, which tests reach too)
        self.host = host_mod.Host(
            CONF.altdriver.connection_uri,
            event_handler=self.emit_event,
            stopped_event_delay=CONF.altdriver.stopped_event_delay)
        self._configured_nodename = CONF.altdriver.hypervisor_hostname
        # where other hosts reach this one for migrations
        self._migration_addr = (CONF.altdriver.migration_inbound_addr or
                                CONF.my_ip)
        self._layout = paths.Layout.from_config()
        self._node_uuid = None
        self._nodename = None
        self._cache = imagecache.ImageCache(self._layout)
        self._snapshot = snapshot.Snapshot(self.host, self._cache)
        self._volumes = volumes.Volumes(self.host)
        self._interfaces = vifs.Interfaces(self.host)
        self._agent = agent.Agent(self.host)
        self._lifecycle = lifecycle.Lifecycle(self.host, virtapi,
                                              self._snapshot, self._cache,
                                              self._volumes)
        self._power = power.Power(self.host, self._layout, self._lifecycle)
        self._rescue = rescue.Rescue(self.host, self._cache,
                                     self._lifecycle, self._power,
                                     self._snapshot, self._volumes)
        self._image_cache = imagecache.ImageCacheManager(self._cache)
        self._resources = resources.HostResources(
            self.host, self._layout, self._image_cache.get_disk_usage)
        self._live_migration = live_migration.LiveMigration(
            self.host, self._cache, self._volumes, self._migration_addr)
        self._resize = resize.Resize(
            self.host, self._cache, self._lifecycle, self._power,
            self._volumes, self._snapshot, self._migration_addr,
            CONF.altdriver.migration_uri)

    # -- service start and stop --------------------------------------------

    def init_host(self, host):
        if not utils.concurrency_mode_threading():
            # libvirt's event loop runs in a native thread of its own,
            # which under eventlet's monkey patching blocks the hub.
            raise exception.InternalError(
                'nova_altdriver needs nova-compute in native threading '
                'mode, and this one runs with eventlet: set [DEFAULT] '
                'concurrency_backend = threading (or the environment '
                'variable OS_NOVA_DISABLE_EVENTLET_PATCHING=1)')
        self.host.start_events()
        self.host.check_hypervisor(CONF.altdriver.virt_type)
        os.makedirs(self._layout.root, exist_ok=True)
        self._local_node_uuid()
        self._snapshot.recover_interrupted(host)
        self._volumes.abort_interrupted_swaps()
        self._image_cache.remove_unfinished()
        self._lifecycle.remove_unfinished_evacuations(
            nova_context.get_admin_context(), host)
        self._lifecycle.claim_serial_ports_of_guests()

    def cleanup_host(self, host):
        self.host.close()

    # -- inventory of guests ---------------------------------------------

    def list_instances(self):
        return [g.name for g in self.host.list_guests()]

    def list_instance_uuids(self):
        return [g.uuid for g in self.host.list_guests()]

    def instance_exists(self, instance):
        return self.host.find_guest(instance.uuid) is not None

    def get_info(self, instance, use_cache=True):
        return self.host.get_guest(instance).info()

    # -- the node ----------------------------------------------------------

    def get_available_nodes(self, refresh=False):
        if self._nodename is None:
            self._nodename = (self._configured_nodename or
                              self.host.hostname())
        return [self._nodename]

    def _local_node_uuid(self):
        # Read once, like the URI: several compute services in one process
        # (nova's functional tests) each keep the node they started with.
        if self._node_uuid is None:
            self._node_uuid = node.get_local_node_uuid()
        return self._node_uuid

    def get_nodenames_by_uuid(self, refresh=False):
        return {self._local_node_uuid(): self.get_available_nodes()[0]}

    def get_available_resource(self, nodename):
        return dict(self._resources.report(nodename),
                    uuid=self._local_node_uuid())

    def update_provider_tree(self, provider_tree, nodename,
                             allocations=None):
        current = provider_tree.data(nodename).inventory
        provider_tree.update_inventory(
            nodename, self._resources.inventory(current))

    def get_host_ip_addr(self):
        return CONF.my_ip

    def get_host_uptime(self):
        out, _err = processutils.execute('env', 'LANG=C', 'uptime')
        return out

    def get_host_cpu_stats(self):
        stats = self.host.cpu_stats()
        stats['frequency'] = self.host.node_info().mhz
        return stats

    # -- a guest's life ----------------------------------------------------

    def spawn(self, context, instance, image_meta, injected_files,
              admin_password, allocations, network_info=None,
              block_device_info=None, power_on=True, accel_info=None):
        self._lifecycle.spawn(context, instance, image_meta, injected_files,
                              admin_password, network_info,
                              block_device_info, power_on)

    def destroy(self, context, instance, network_info, block_device_info=None,
                destroy_disks=True, destroy_secrets=True):
        self._lifecycle.destroy(instance, network_info, destroy_disks)

    def cleanup(self, context, instance, network_info, block_device_info=None,
                destroy_disks=True, migrate_data=None, destroy_vifs=True,
                destroy_secrets=True):
        self._lifecycle.cleanup(instance, network_info, destroy_disks,
                                destroy_vifs)

    # -- evacuation: rebuild runs nova's default (destroy + spawn) ---------

    def instance_on_disk(self, instance):
        # Only where the instances path is shared with the dead host.
        return os.path.isdir(self._layout.instance_dir(instance.uuid))

    def check_instance_shared_storage_local(self, context, instance):
        return self._layout.place_probe(instance)

    def check_instance_shared_storage_remote(self, context, data):
        return self._layout.probe_visible(data)

    def check_instance_shared_storage_cleanup(self, context, data):
        self._layout.remove_probe(data)

    def delete_instance_files(self, instance):
        return disks.remove_instance_dir(self._layout, instance)

    def plug_vifs(self, instance, network_info):
        vifs.plug(instance, network_info)

    def unplug_vifs(self, instance, network_info):
        vifs.unplug(instance, network_info)

    def attach_interface(self, context, instance, image_meta, vif):
        self._interfaces.attach(instance, image_meta, vif)
        devicemeta.describe_attached(
            self.host, context, instance,
            undo=lambda: self._interfaces.detach(instance, vif))

    def detach_interface(self, context, instance, vif):
        self._interfaces.detach(instance, vif)
        devicemeta.forget_detached(self.host, context, instance)

    def get_console_output(self, context, instance):
        return self._lifecycle.console_output(instance)

    def get_vnc_console(self, context, instance):
        return self._lifecycle.vnc_console(instance)

    def get_spice_console(self, context, instance):
        return self._lifecycle.spice_console(instance)

    def get_serial_console(self, context, instance):
        return self._lifecycle.serial_console(instance)

    # -- diagnostics (diagnostics.py): nova asks while the guest runs -------

    def get_diagnostics(self, instance):
        return diagnostics.legacy(self.host.get_guest(instance))

    def get_instance_diagnostics(self, instance):
        return diagnostics.standard(instance, self.host.get_guest(instance))

    # -- power -------------------------------------------------------------

    def power_off(self, instance, timeout=0, retry_interval=0):
        self._power.power_off(instance, timeout, retry_interval)

    def power_on(self, context, instance, network_info,
                 block_device_info=None, accel_info=None, share_info=None):
        self._power.hard_reboot(context, instance, network_info,
                                block_device_info)

    def reboot(self, context, instance, network_info, reboot_type,
               block_device_info=None, bad_volumes_callback=None,
               accel_info=None, share_info=None):
        self._power.reboot(context, instance, network_info, reboot_type,
                           block_device_info)

    def pause(self, instance):
        self._power.pause(instance)

    def unpause(self, instance):
        self._power.unpause(instance)

    def suspend(self, context, instance):
        self._power.suspend(instance)

    def resume(self, context, instance, network_info, block_device_info=None,
               share_info=None):
        self._power.resume(instance, network_info)

    def resume_state_on_host_boot(self, context, instance, network_info,
                                  share_info, block_device_info=None):
        self._power.resume_on_host_boot(context, instance, network_info,
                                        block_device_info)

    # -- rescue ------------------------------------------------------------

    def rescue(self, context, instance, network_info, image_meta,
               rescue_password, block_device_info, share_info):
        self._rescue.rescue(context, instance, network_info, image_meta,
                            rescue_password, block_device_info)

    def unrescue(self, context, instance):
        self._rescue.unrescue(context, instance)

    # -- snapshots (shelve: the manager's power off, snapshot, destroy) -----

    def snapshot(self, context, instance, image_id, update_task_state):
        self._snapshot.snapshot(context, instance, image_id,
                                update_task_state)

    # -- Cinder volumes (Ceph RBD) -------------------------------------

    def get_volume_connector(self, instance):
        return volumes.connector()

    def default_root_device_name(self, instance, image_meta, root_bdm):
        # the names nova then gives the other disks follow its prefix
        bus = (root_bdm.disk_bus or
               image_meta.properties.get('hw_disk_bus') or 'virtio')
        try:
            return '/dev/' + domain.device_name(bus, 0)
        except exception.InvalidInput:
            # nova then names it; the spawn refuses the bus by name
            raise NotImplementedError()

    def attach_volume(self, context, connection_info, instance, mountpoint,
                      disk_bus=None, device_type=None, encryption=None):
        self._volumes.attach(connection_info, instance, mountpoint,
                             disk_bus, device_type, encryption)
        devicemeta.describe_attached(
            self.host, context, instance,
            undo=lambda: self._volumes.detach(connection_info, instance,
                                              mountpoint))

    def detach_volume(self, context, connection_info, instance, mountpoint,
                      encryption=None):
        self._volumes.detach(connection_info, instance, mountpoint)

    def extend_volume(self, context, connection_info, instance,
                      requested_size):
        self._volumes.extend(connection_info, instance, requested_size)

    def swap_volume(self, context, old_connection_info, new_connection_info,
                    instance, mountpoint, resize_to):
        self._volumes.swap(old_connection_info, new_connection_info,
                           instance, resize_to)

    # -- the guest's QEMU agent (agent.py): nova quiesces a guest for a
    # snapshot of its volumes (a local disk's snapshot: snapshot.py) -------

    def quiesce(self, context, instance, image_meta):
        self._agent.quiesce(instance, image_meta)

    def unquiesce(self, context, instance, image_meta):
        self._agent.unquiesce(instance, image_meta)

    def set_admin_password(self, instance, new_pass):
        self._agent.set_admin_password(instance, new_pass)

    # -- live migration (live_migration.py) --------------------------------

    def check_can_live_migrate_destination(self, context, instance,
                                           src_compute_info, dst_compute_info,
                                           block_migration=False,
                                           disk_over_commit=False):
        return self._live_migration.check_destination(
            instance, src_compute_info, block_migration, disk_over_commit)

    def cleanup_live_migration_destination_check(self, context,
                                                 dest_check_data):
        self._live_migration.cleanup_destination_check(dest_check_data)

    def check_can_live_migrate_source(self, context, instance,
                                      dest_check_data,
                                      block_device_info=None):
        return self._live_migration.check_source(instance, dest_check_data)

    def get_instance_disk_info(self, instance, block_device_info=None):
        return self._live_migration.disk_info(instance)

    def pre_live_migration(self, context, instance, block_device_info,
                           network_info, disk_info, migrate_data):
        return self._live_migration.pre_live_migration(
            instance, block_device_info, network_info, disk_info,
            migrate_data)

    def live_migration(self, context, instance, dest, post_method,
                       recover_method, block_migration=False,
                       migrate_data=None):
        self._live_migration.live_migration(
            context, instance, dest, post_method, recover_method,
            block_migration, migrate_data)

    def live_migration_force_complete(self, instance):
        self._live_migration.force_complete(instance)

    def live_migration_abort(self, instance):
        self._live_migration.abort(instance)

    def post_live_migration(self, context, instance, block_device_info,
                            migrate_data=None):
        # the guest is gone from here: so are its volumes' secrets
        self._volumes.release_secrets()

    def post_live_migration_at_source(self, context, instance, network_info):
        self._live_migration.post_at_source(instance, network_info)

    def post_live_migration_at_destination(self, context, instance,
                                           network_info,
                                           block_migration=False,
                                           block_device_info=None):
        self._live_migration.post_at_destination(instance)

    def rollback_live_migration_at_destination(self, context, instance,
                                               network_info,
                                               block_device_info,
                                               destroy_disks=True,
                                               migrate_data=None):
        self._live_migration.rollback_at_destination(
            instance, network_info, migrate_data)

    # -- resize and cold migration (resize.py) -----------------------------

    def migrate_disk_and_power_off(self, context, instance, dest, flavor,
                                   network_info, block_device_info=None,
                                   timeout=0, retry_interval=0):
        return self._resize.migrate_disk_and_power_off(
            context, instance, flavor, network_info, block_device_info,
            timeout, retry_interval)

    def finish_migration(self, context, migration, instance, disk_info,
                         network_info, image_meta, resize_instance,
                         allocations, block_device_info=None, power_on=True,
                         share_info=None):
        self._resize.finish_migration(
            context, migration, instance, disk_info, network_info, image_meta,
            resize_instance, block_device_info, power_on)

    def confirm_migration(self, context, migration, instance, network_info):
        self._resize.confirm_migration(migration, instance)

    def finish_revert_migration(self, context, instance, network_info,
                                migration, block_device_info=None,
                                power_on=True, share_info=None):
        self._resize.finish_revert_migration(
            context, instance, network_info, migration, block_device_info,
            power_on)

    # -- the image cache ---------------------------------------------------

    def manage_image_cache(self, context, all_instances):
        self._image_cache.update(context, all_instances)

    def cache_image(self, context, image_id):
        return self._cache.cache_image(context, image_id)

    # -- nova's optional calls: a crash dump; the rest not (yet) -----------
    # Refused with a fault naming nova_altdriver, the server as it was
    # (optional.py). What nova itself answers: doc/source/support-matrix.rst.

    def trigger_crash_dump(self, instance):
        self.host.get_guest(instance).inject_nmi()

    def get_mks_console(self, context, instance):
        raise optional.console_refused('MKS', 'VNC')

    def poll_rebooting_instances(self, timeout, instances):
        # A reboot is one synchronous call of the compute manager, which
        # retries it after a restart: nothing to chase (as in the in-tree
        # libvirt driver).
        pass
