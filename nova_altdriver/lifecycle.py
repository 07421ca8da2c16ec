"""A guest's life on this host: spawn, destroy, and its consoles.

Spawn builds the instance's disks (disks.py), its domain XML (domain.py)
and plugs its network (vifs.py), defines the domain, describes its devices
(devicemeta.py) and only then makes the config drive, which carries that
description, waits for neutron to report the ports plugged, and starts it.
When anything fails it removes exactly what it made: disks that were there
before (an evacuation onto shared storage) stay.
An evacuation to this host that nova-compute did not finish leaves a guest
nova places elsewhere: it goes when nova-compute starts again.
"""

import os

from nova.console import serial
from nova.console import type as ctype
from nova import exception
from nova.network import model as network_model
from nova import objects
from nova import utils
from oslo_log import log as logging
from oslo_utils import excutils

import nova.conf
import nova.privsep.path
from nova_altdriver import devicemeta
from nova_altdriver import disks as disks_mod
from nova_altdriver import domain
from nova_altdriver import guest as guest_mod
from nova_altdriver import resize
from nova_altdriver import vifs

CONF = nova.conf.CONF
LOG = logging.getLogger(__name__)

# The tail of console.log get_console_output returns, as the in-tree driver.
MAX_CONSOLE_BYTES = 100 * 1024


def _vif_events(network_info):
    """Neutron events to wait for: ports not yet up will report when they
    are (ports already up send nothing).
    """
    return [('network-vif-plugged', vif['id']) for vif in network_info
            if vif.get('active', True) is False and
            vif['vnic_type'] != network_model.VNIC_TYPE_REMOTE_MANAGED]


def _tail(path, num):
    """The last num bytes of a file ('' when there is none). virtlogd
    writes console logs readable by root only: a nova-compute that does
    not run as root reads them through nova's privsep daemon.
    """
    try:
        with open(path, 'rb') as f:
            f.seek(max(0, os.fstat(f.fileno()).st_size - num))
            return f.read()
    except FileNotFoundError:
        return b''
    except PermissionError:
        return nova.privsep.path.last_bytes(path, num)[0]


def release_serial_ports(ports):
    """Gives a guest's TCP serial ports [(address, port)] back to nova's
    pool (nova.console.serial, this process's memory).
    """
    for host, port in ports:
        serial.release_port(host=host, port=port)


@utils.synchronized(serial.SERIAL_LOCK)
def claim_serial_ports(ports):
    """Marks ports [(address, port)] taken in nova's pool, which starts
    empty with every nova-compute: the port of a guest defined but not
    running is free to bind, and would otherwise be handed to another
    guest before this one starts again.
    """
    serial.ALLOCATED_PORTS.update(ports)


class Lifecycle(object):

    def __init__(self, host, virtapi, snapshot, cache, volumes):
        self._host = host
        self._volumes = volumes
        self._cache = cache
        self._layout = cache.layout
        self._virtapi = virtapi
        self._snapshot = snapshot

    def _domain_xml(self, context, instance, image_meta, network_info,
                    block_device_info, admin_password=None,
                    injected_files=None):
        """(InstanceDisks, domain XML) of instance, disks made as needed;
        the writes an interrupted snapshot holds go into the disk first,
        and disks a resize's destination has still to bring come first.
        """
        self._snapshot.settle(instance)
        resize.bring_disks(self._cache, instance)
        boot_volume, volumes = self._volumes.disks(instance,
                                                   block_device_info)
        disks, layout, kernel, ramdisk = disks_mod.all_disks(
            self._cache, context, instance, image_meta, block_device_info,
            volumes, boot_volume, admin_password, network_info,
            injected_files)
        try:
            xml = self.build_xml(instance, image_meta, layout, network_info,
                                 kernel, ramdisk)
        except Exception:
            with excutils.save_and_reraise_exception():
                disks.remove_created()
        return disks, xml

    def build_xml(self, instance, image_meta, disks, network_info,
                  kernel=None, ramdisk=None):
        """The domain XML of instance with these disks (any layout: boot,
        rescue), its ports and its logged serial console. A flavor that
        tunes the CPU is refused where the kernel cannot (as the in-tree
        driver does: libvirt would only fail the start).
        """
        if (domain.cputune(instance.flavor) and
                not self._host.has_cpu_controller()):
            raise exception.UnsupportedHostCPUControlPolicy()
        return domain.build(
            instance, image_meta, disks,
            [vifs.interface(vif, image_meta, instance.flavor)
             for vif in network_info],
            console_log=self._layout.console_log(instance),
            kernel=kernel, ramdisk=ramdisk,
            serial_ports=self._serial_ports(instance, image_meta))

    def _serial_ports(self, instance, image_meta):
        """The TCP serial ports [(address, port)] of instance's next
        definition: none while serial consoles are off (a pty then). The
        ports of the guest's current definition stay its own (a hard
        reboot, a rescue: the console's address does not change), more
        come from nova's pool.
        """
        if not CONF.serial_console.enabled:
            return []
        count = domain.serial_port_count(instance.flavor, image_meta)
        address = CONF.serial_console.proxyclient_address
        guest = self._host.find_guest(instance.uuid)
        kept = [(host, port) for host, port in
                (guest.serial_ports() if guest else [])
                if host == address][:count]
        return kept + [(address, serial.acquire_port(address))
                       for _ in range(count - len(kept))]

    def spawn(self, context, instance, image_meta, injected_files,
              admin_password, network_info, block_device_info, power_on):
        self.create_from_nova_data(
            context, instance, image_meta, network_info, block_device_info,
            power_on=power_on, admin_password=admin_password,
            injected_files=injected_files, remove_on_failure=True)
        LOG.info('Guest created%s', '' if power_on else ' (not started)',
                 instance=instance)

    def create_from_nova_data(self, context, instance, image_meta,
                              network_info, block_device_info, *,
                              power_on=True, wait_for_vifs=True,
                              admin_password=None, injected_files=None,
                              remove_on_failure=False):
        """Lays out instance's disks, builds its domain from nova's data
        and creates it (create) with its devices described and its config
        drive made in between (describe_devices): the one way from nova's
        data to a guest, as a definition whose devices nobody describes
        has no config drive, and its guest does not start.
        remove_on_failure: a failure to create removes what it made (the
        domain, its serial ports, the plugged ports, the disks it
        created), as a spawn does; otherwise all stays for the caller's
        answer to it (a hard reboot brings what is missing).
        """
        network_info = network_info or []
        disks, xml = self._domain_xml(
            context, instance, image_meta, network_info, block_device_info,
            admin_password, injected_files)
        try:
            self.create(instance, xml, network_info, power_on,
                        wait_for_vifs=wait_for_vifs,
                        before_start=self.describe_devices(context, instance,
                                                           disks))
        except Exception:
            if not remove_on_failure:
                raise
            with excutils.save_and_reraise_exception():
                LOG.error('Creating the guest failed; removing what it made',
                          instance=instance)
                self.remove_domain(instance)
                # (those of a domain never defined)
                release_serial_ports(guest_mod.serial_ports_of(xml))
                vifs.unplug(instance, network_info)
                disks.remove_created()

    @staticmethod
    def describe_devices(context, instance, disks=None):
        """step(guest), what comes between a guest's definition and its
        start (as in nova's in-tree driver): instance's device metadata
        (tags) from the definition, whose device addresses libvirt has
        just given, then the config drive that disks (InstanceDisks) laid
        out, which carries that metadata. Every definition built from
        nova's data goes through it (create_from_nova_data): any of them
        may make the config drive.
        """
        def step(guest):
            devicemeta.refresh(context, instance, guest, inactive=True)
            if disks is not None:
                disks.make_config_drive()
        return step

    def create(self, instance, xml, network_info, power_on=True,
               wait_for_vifs=True, before_start=None):
        """Plugs the network, defines the domain and starts it, waiting
        for neutron's vif-plugged events with the guest's vCPUs paused
        (ports already plugged, as on a reboot, send none).
        before_start(guest) runs once the domain is defined (usually
        describe_devices).
        """
        timeout = CONF.vif_plugging_timeout
        events = (_vif_events(network_info)
                  if power_on and timeout and wait_for_vifs else [])
        guest = None
        try:
            with self._virtapi.wait_for_instance_event(
                    instance, events, timeout=timeout,
                    error_callback=self._vif_plug_failed):
                vifs.plug(instance, network_info)
                guest = self._host.define(xml)
                if before_start is not None:
                    before_start(guest)
                if power_on:
                    guest.start(paused=bool(events))
        except exception.InstanceEventTimeout:
            if CONF.vif_plugging_is_fatal:
                raise exception.VirtualInterfaceCreateException()
            LOG.warning('Ports not reported plugged in time; starting '
                        'anyway (vif_plugging_is_fatal = False)',
                        instance=instance)
        if events:
            guest.resume()
        return guest

    @staticmethod
    def _vif_plug_failed(event_name, instance):
        LOG.error('Neutron reported failure on event %s', event_name,
                  instance=instance)
        if CONF.vif_plugging_is_fatal:
            raise exception.VirtualInterfaceCreateException()

    def remove_unfinished_evacuations(self, context, host):
        """Stops and undefines the guests an evacuation to this host left
        when nova-compute died in it: nova places the server on another
        host and never looks at this copy again, which left running would
        be a second QEMU on the server's disks.

        Only where the server's newest move is that evacuation (a guest
        evacuated away is nova's to clean up); the disks stay (on a shared
        instances path they are the server's own).
        """
        by_uuid = {g.uuid: g for g in self._host.list_guests()}
        if not by_uuid:
            return
        strangers = objects.InstanceList.get_by_filters(
            context, {'uuid': list(by_uuid)}, expected_attrs=[])
        for instance in strangers:
            if instance.host in (None, host):
                continue
            moves = objects.MigrationList.get_by_filters(
                context, {'instance_uuid': instance.uuid})
            newest = max(moves, key=lambda m: m.id, default=None)
            if (newest is None or newest.migration_type != 'evacuation' or
                    newest.dest_compute != host):
                continue
            LOG.warning('Removing the guest of an evacuation to this host '
                        'that did not finish (migration %s, %s); the server '
                        'is on host %s', newest.uuid, newest.status,
                        instance.host, instance=instance)
            try:
                by_uuid[instance.uuid].hard_stop()
                by_uuid[instance.uuid].undefine()
            except Exception:  # nova-compute starts; the next start retries
                LOG.exception('Could not remove the guest of an unfinished '
                              'evacuation', instance=instance)

    def remove_domain(self, instance):
        """Stops and undefines instance's guest, if there is one, and
        releases its serial ports.
        """
        guest = self._host.find_guest(instance.uuid)
        if guest is None:
            return
        try:
            # read first: a transient guest's definition goes with its QEMU
            ports = guest.serial_ports()
        except exception.InstanceNotFound:
            return  # removed meanwhile
        guest.hard_stop()
        guest.undefine()
        release_serial_ports(ports)

    def claim_serial_ports_of_guests(self):
        """Claims the serial ports of every guest on this host (when
        nova-compute starts; only then are ports handed out).
        """
        if not CONF.serial_console.enabled:
            return
        ports = []
        for guest in self._host.list_guests():
            try:
                ports += guest.serial_ports()
            except exception.InstanceNotFound:
                pass  # removed meanwhile: nothing to claim
        claim_serial_ports(ports)

    def destroy(self, instance, network_info, destroy_disks=True):
        self.remove_domain(instance)
        self._volumes.release_secrets()
        self.cleanup(instance, network_info, destroy_disks)

    def cleanup(self, instance, network_info, destroy_disks=True,
                destroy_vifs=True):
        if destroy_vifs:
            vifs.unplug(instance, network_info or [])
        if destroy_disks:
            self._snapshot.forget(instance)
            disks_mod.remove_instance_dir(self._layout, instance)

    # -- consoles ---------------------------------------------------------

    def console_output(self, instance):
        """The last MAX_CONSOLE_BYTES of the serial console, reaching back
        into the file virtlogd rotated away when the current one is short.
        """
        self._host.get_guest(instance)  # InstanceNotFound, as nova expects
        path = self._layout.console_log(instance)
        output = _tail(path, MAX_CONSOLE_BYTES)
        if len(output) < MAX_CONSOLE_BYTES:
            output = _tail(path + '.0',
                           MAX_CONSOLE_BYTES - len(output)) + output
        return output

    def serial_console(self, instance):
        """The first TCP serial port, the guest's ttyS0 (nova's manager
        refuses the console itself while [serial_console] is disabled).
        Its address is the one QEMU listens on: proxyclient_address when
        the guest was defined.
        """
        ports = self._host.get_guest(instance).serial_ports()
        if not ports:
            raise exception.ConsoleTypeUnavailable(
                message='The server has no serial console: it was started '
                        'before serial consoles were enabled on its host; '
                        'a hard reboot gives it one')
        host, port = ports[0]
        return ctype.ConsoleSerial(host=host, port=port)

    def spice_console(self, instance):
        ports = self._host.get_guest(instance).spice_ports()
        if ports is None or ports == (None, None):
            raise exception.ConsoleTypeUnavailable(console_type='spice')
        return ctype.ConsoleSpice(
            host=CONF.spice.server_proxyclient_address, port=ports[0],
            tlsPort=ports[1])

    def vnc_console(self, instance):
        port = self._host.get_guest(instance).vnc_port()
        if port is None:
            raise exception.ConsoleTypeUnavailable(console_type='vnc')
        return ctype.ConsoleVNC(host=CONF.vnc.server_proxyclient_address,
                                port=port)
