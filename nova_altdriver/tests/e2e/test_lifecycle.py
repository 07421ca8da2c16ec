"""Real guests booted and deleted through nova's API on QEMU."""

import hashlib
import os
import socket
import struct
import subprocess

import libvirt
from lxml import etree
from nova.console import serial
from nova import context as nova_context
from nova import objects
from nova import utils

from nova_altdriver.tests.e2e import base
from nova_altdriver.tests.e2e import markers


# quota:disk_read_bytes_sec of the guest whose reads are measured throttled
READ_LIMIT = 1048576


class BootTest(base.TestCase):

    def setUp(self):
        super().setUp()
        self.compute = self.start_compute()
        self.image_id = self.upload_guest_image()

    def test_boot_with_every_local_disk_then_delete(self):
        self.enable_serial_consoles()
        # QoS limits loose enough to leave the boot's pace as it is
        flavor = self.small_flavor(ephemeral=1, swap=64, extra_spec={
            'quota:disk_read_iops_sec': '5000',
            'quota:disk_write_bytes_sec': '104857600',
            'quota:cpu_shares': '2048', 'quota:cpu_quota': '200000',
            'quota:cpu_period': '100000'})
        server = self.boot(self.image_id, flavor, config_drive=True,
                           adminPass='altdriver-secret')

        console = self.wait_for_guest(server, 'ALTDRIVER-READY')
        self.assertIn('ALTDRIVER-SELF vda role=guest', console)
        self.assertIn('ALTDRIVER-BOOTCOUNT 1', console)
        # vdb: the ephemeral disk (nova's default format, vfat), vdc: swap,
        # the config drive with this server's metadata and admin password.
        self.assertRegex(console, r'ALTDRIVER-EXTRA vdb size=2097152 '
                                  r'fs=vfat')
        self.assertRegex(console, r'ALTDRIVER-EXTRA vdc size=131072 fs=swap')
        self.assertIn('ALTDRIVER-CONFIGDRIVE', console)
        self.assertIn('uuid=%s' % server['id'], console)
        self.assertIn('ALTDRIVER-ADMINPASS altdriver-secret', console)
        self.assertFlavorQos(server)
        # no limit on read bytes: the guest's own measure goes far past the
        # one the throttled guest below stays under (so that one can fail)
        self.assertDiskRate(console, limit=None)

        vnc = self.api.api_post(
            '/servers/%s/remote-consoles' % server['id'],
            {'remote_console': {'protocol': 'vnc', 'type': 'novnc'}}
        ).body['remote_console']
        self.assertIn('token', vnc['url'])
        # The port nova hands to its proxy serves the guest's screen.
        port = int(self.domain_xml(self.compute, server).find(
            "devices/graphics[@type='vnc']").get('port'))
        with socket.create_connection(('127.0.0.1', port), timeout=10) as s:
            self.assertTrue(s.recv(12).startswith(b'RFB '))

        # The serial console: the port nova hands to nova-serialproxy
        # carries the guest's ttyS0, which the console log (read through
        # the API above) still shows.
        serial_console = self.api.api_post(
            '/servers/%s/remote-consoles' % server['id'],
            {'remote_console': {'protocol': 'serial', 'type': 'serial'}}
        ).body['remote_console']
        self.assertIn('token', serial_console['url'])
        port = self.serial_port(self.compute, server)
        self.read_serial_port(port, 'ALTDRIVER-TICK')
        self.wait_for_guest(server, 'ALTDRIVER-TICK')

        self._delete_server(server)
        self.assertNotIn(('127.0.0.1', port), serial.ALLOCATED_PORTS)
        self.assertRaises(libvirt.libvirtError, self.conn.lookupByUUIDString,
                          server['id'])
        self.assertFalse(os.path.exists(self.instance_dir(server)))

    def assertFlavorQos(self, server):
        """The flavor's limits in the running guest: on every local disk,
        in QEMU's own throttling and in the kernel's cgroups.
        """
        live = self.domain_xml(self.compute, server)
        disks = live.findall('devices/disk')
        self.assertEqual(4, len(disks))  # root, ephemeral, swap, config
        for disk in disks:
            self.assertEqual(
                {'read_iops_sec': '5000', 'write_bytes_sec': '104857600'},
                {el.tag: el.text for el in disk.find('iotune')})
        dom = self.conn.lookupByUUIDString(server['id'])
        for disk in disks:
            throttle = dom.blockIoTune(disk.find('target').get('dev'), 0)
            self.assertEqual((5000, 104857600), (
                throttle['read_iops_sec'], throttle['write_bytes_sec']))
        self.assertEqual(
            {'cpu_shares': 2048, 'vcpu_quota': 200000,
             'vcpu_period': 100000},
            {name: value for name, value in dom.schedulerParameters().items()
             if name in ('cpu_shares', 'vcpu_quota', 'vcpu_period')})

    def assertDiskRate(self, console, limit):
        """The guest's timed read of its root disk (ALTDRIVER-DISKRATE, 4
        MiB with O_DIRECT at boot) went at most limit bytes/s; with limit
        None, at least four times READ_LIMIT.
        """
        rate = markers.latest(console).diskrates.get('vda')
        self.assertIsNotNone(rate, console[-3000:])
        ms = rate.ms + 10  # /proc/uptime's 10 ms steps: it may show less
        if limit is None:
            self.assertGreaterEqual(
                rate.bytes * 1000 / ms, 4 * READ_LIMIT,
                'unthrottled, the guest read only %d bytes in %d ms' % rate)
            return
        # QEMU lets a tenth of a second's worth through at once, and the
        # request that starts under it (the guest reads 64 KiB at a time);
        # 5 % for the guest's clock, calibrated under TCG on a busy host
        burst = limit // 10 + 65536
        self.assertLessEqual(
            (rate.bytes - burst) * 1000 / ms, limit * 1.05,
            'the guest read %d bytes in %d ms, past the limit of %d bytes/s'
            % (rate.bytes, rate.ms, limit))

    def test_an_ami_and_its_kernel_and_ramdisk_boot_directly(self):
        kernel = self.upload_image(
            os.path.join(base.GUEST_DIR, 'vmlinuz'), 'aki')
        ramdisk = self.upload_image(
            os.path.join(base.GUEST_DIR, 'initrd.img'), 'ari')
        # an AMI: the guest's disk as raw bytes
        raw = os.path.join(self._state_dir, 'guest.img')
        subprocess.run(['qemu-img', 'convert', '-O', 'raw', os.path.join(
            base.GUEST_DIR, 'disk.qcow2'), raw], check=True)
        image = self.upload_image(raw, 'ami', kernel_id=kernel,
                                  ramdisk_id=ramdisk)
        # The flavor's read limit, seen from inside: QEMU reads kernel and
        # ramdisk from their files, the boot itself does not crawl through
        # the limit, only the guest's timed read (about 4 s).
        flavor = self.small_flavor(extra_spec={
            'quota:disk_read_bytes_sec': str(READ_LIMIT)})
        server = self.boot(image, flavor)
        console = self.wait_for_guest(server, 'ALTDRIVER-READY')
        # Booted by QEMU itself, not by the image's boot loader.
        self.assertNotIn('BOOT_IMAGE=', console)
        self.assertIn('root=/dev/vda', console)
        self.assertIn('ALTDRIVER-SELF vda role=guest', console)
        self.assertDiskRate(console, limit=READ_LIMIT)
        iotune, = self.domain_xml(self.compute, server).xpath(
            "devices/disk[target/@dev='vda']/iotune")
        self.assertEqual({'read_bytes_sec': str(READ_LIMIT)},
                         {el.tag: el.text for el in iotune})

    def test_second_boot_reuses_the_cached_image(self):
        # (and SPICE instead of VNC: QEMU here has it)
        self.flags(enabled=False, group='vnc')
        self.flags(enabled=True, group='spice')
        flavor = self.small_flavor()
        first = self.boot(self.image_id, flavor)
        cached = os.path.join(self.base_dir(),
                              hashlib.sha1(self.image_id.encode()).hexdigest())
        inode = os.stat(cached).st_ino

        second = self.boot(self.image_id, flavor)

        self.assertEqual(inode, os.stat(cached).st_ino)
        for server in (first, second):
            self.wait_for_guest(server, 'ALTDRIVER-READY')

        spice = self.api.api_post(
            '/servers/%s/remote-consoles' % first['id'],
            {'remote_console': {'protocol': 'spice', 'type': 'spice-html5'}}
        ).body['remote_console']
        self.assertIn('token', spice['url'])
        port = int(self.domain_xml(self.compute, first).find(
            "devices/graphics[@type='spice']").get('port'))
        with socket.create_connection(('127.0.0.1', port), timeout=10) as s:
            # a SPICE link header of protocol version 1: the server answers
            # with its own header and a version mismatch
            s.sendall(b'REDQ' + struct.pack('<III', 1, 0, 0))
            self.assertEqual(b'REDQ', s.recv(4))


class NetworkTest(base.TestCase):

    def setUp(self):
        super().setUp()
        self.compute = self.start_compute()
        self.image_id = self.upload_guest_image()
        self.flavor = self.small_flavor()

    def host_side(self, tap):
        """Moves the guest's tap into a network namespace of this test: what
        crosses it stays on that wire.
        """
        ns = 'altdriver-%s' % tap[3:11]
        subprocess.run(['ip', 'netns', 'add', ns], check=True)
        self.addCleanup(subprocess.run, ['ip', 'netns', 'delete', ns])
        subprocess.run(['ip', 'link', 'set', tap, 'netns', ns], check=True)
        subprocess.run(['ip', 'netns', 'exec', ns, 'ip', 'link', 'set', tap,
                        'up'], check=True)
        return ns

    def assertAnswersPing(self, ns, tap, mac):
        """The guest answers on its IPv6 link-local address, derived from
        the port's MAC, through tap (in namespace ns).
        """
        ping = subprocess.run(
            ['ip', 'netns', 'exec', ns, 'ping', '-6', '-c', '3', '-w', '30',
             '%s%%%s' % (markers.link_local(mac), tap)],
            capture_output=True, text=True)
        self.assertEqual(0, ping.returncode, ping.stdout + ping.stderr)
        self.assertIn('3 received', ping.stdout)

    def wait_for_nics(self, server, macs):
        """Until the guest's latest ALTDRIVER-NICS line names macs."""
        self._wait_for_assert(lambda: self.assertEqual(
            macs, markers.latest(self.console(server)).nics),
            max_retries=self.STATE_WAIT_RETRIES)

    def nics(self, server, inactive=False):
        dom = self.conn.lookupByUUIDString(server['id'])
        return [el.get('address') for el in etree.fromstring(dom.XMLDesc(
            libvirt.VIR_DOMAIN_XML_INACTIVE if inactive else 0)).findall(
                'devices/interface/mac')]

    def device_metadata(self, server):
        return objects.Instance.get_by_uuid(
            nova_context.get_admin_context(), server['id'],
            expected_attrs=['device_metadata']).device_metadata

    def cached_ports(self, server):
        """The ports nova's network info of the server lists."""
        instance = objects.Instance.get_by_uuid(
            nova_context.get_admin_context(), server['id'])
        return [vif['id'] for vif in instance.get_network_info()]

    def test_the_host_side_reaches_the_guest_on_its_port(self):
        port = self.neutron_port('tap')
        server = self.boot(self.image_id, self.flavor,
                           networks=[{'port': port['id']}])
        console = self.wait_for_guest(server, 'ALTDRIVER-READY')
        self.assertIn('ALTDRIVER-NICS eth0=fa:16:3e:00:12:34', console)
        tap = 'tap' + port['id'][:11]
        self.assertAnswersPing(self.host_side(tap), tap, port['mac_address'])

    def test_tagged_devices_are_where_the_guest_finds_them(self):
        # (API 2.42: tags at boot) a tagged port and a tagged ephemeral disk
        port = self.neutron_port('tap')
        with utils.temporary_mutation(self.api, microversion='2.42'):
            server = self.boot(
                self.image_id, self.small_flavor(ephemeral=1),
                networks=[{'port': port['id'], 'tag': 'uplink'}],
                config_drive=True, block_device_mapping_v2=[
                    {'boot_index': 0, 'uuid': self.image_id,
                     'source_type': 'image', 'destination_type': 'local'},
                    {'boot_index': -1, 'source_type': 'blank',
                     'destination_type': 'local', 'volume_size': 1,
                     'tag': 'scratch'}])
        boot = markers.latest(self.wait_for_guest(server, 'ALTDRIVER-READY'))
        # The config drive's metadata says where each tagged device is; the
        # guest finds it there on its PCI bus.
        devices = {tuple(d['tags']): d for d in boot.metadata['devices']}
        self.assertEqual({('uplink',), ('scratch',)}, set(devices))
        nic, disk = devices[('uplink',)], devices[('scratch',)]
        self.assertEqual(('nic', port['mac_address'], 'pci'),
                         (nic['type'], nic['mac'], nic['bus']))
        self.assertEqual(boot.pci[port['mac_address']], nic['address'])
        self.assertEqual(('disk', 'pci'), (disk['type'], disk['bus']))
        self.assertEqual(boot.pci['vdb'], disk['address'])
        self.assertNotEqual(nic['address'], disk['address'])

    def test_a_port_attached_and_detached_while_the_guest_runs(self):
        first = self.neutron_port('tap')
        server = self.boot(self.image_id, self.flavor,
                           networks=[{'port': first['id']}])
        self.wait_for_guest(server, 'ALTDRIVER-READY')
        macs = [first['mac_address']]

        # tagged (API 2.49): nova's device metadata gives the address where
        # the guest finds the new NIC
        second = self.neutron_port('tap', mac='fa:16:3e:00:56:78')
        with utils.temporary_mutation(self.api, microversion='2.49'):
            self.api.attach_interface(server['id'], {'interfaceAttachment': {
                'port_id': second['id'], 'tag': 'hot'}})
        self.wait_for_nics(server, macs + [second['mac_address']])
        self._wait_for_assert(lambda: self.assertIn(
            second['mac_address'], markers.latest(self.console(server)).pci),
            max_retries=self.STATE_WAIT_RETRIES)
        tagged, = self.device_metadata(server).devices
        self.assertEqual((second['mac_address'], ['hot']),
                         (tagged.mac, tagged.tags))
        self.assertEqual(markers.latest(self.console(server)).pci[
            second['mac_address']], tagged.bus.address)
        tap = 'tap' + second['id'][:11]
        self.assertAnswersPing(self.host_side(tap), tap,
                               second['mac_address'])
        self.assertEqual(macs + [second['mac_address']],
                         self.nics(server, inactive=True))

        # it lasts: every definition is built from nova's ports, after a
        # hard reboot, in the rescue guest, after unrescue ...
        def boot_has_both(number):
            self._wait_for_assert(lambda: self.assertEqual(
                number, markers.latest(self.console(server)).number),
                max_retries=self.STATE_WAIT_RETRIES)
            self.wait_for_nics(server, macs + [second['mac_address']])
        self._reboot_server(server, hard=True)
        boot_has_both(2)
        self.api.post_server_action(server['id'], {'rescue': {
            'rescue_image_ref': self.image_id}})
        self._wait_for_state_change(server, 'RESCUE')
        boot_has_both(3)
        self.api.post_server_action(server['id'], {'unrescue': None})
        self._wait_for_state_change(server, 'ACTIVE')
        boot_has_both(4)
        # ... and unshelved from its snapshot (a new console), tag and all
        self.flags(shelved_offload_time=0)
        self._shelve_server(server)
        self._unshelve_server(server)
        boot_has_both(1)
        tagged, = self.device_metadata(server).devices
        self.assertEqual(['hot'], tagged.tags)

        # the guest lets it go: out of the guest, the definition and nova
        self.api.detach_interface(server['id'], second['id'])
        self.wait_for_nics(server, macs)
        self._wait_for_assert(lambda: self.assertEqual(
            [first['id']], self.cached_ports(server)),
            max_retries=self.STATE_WAIT_RETRIES)
        self.assertEqual(macs, self.nics(server))
        self.assertEqual(macs, self.nics(server, inactive=True))
        self.assertIsNone(self.device_metadata(server))  # its tag went too

        # a port Neutron deletes: nova has the guest let it go and forgets it
        self.neutron.delete_port(first['id'])
        self.admin_api.create_server_external_events([{
            'name': 'network-vif-deleted', 'server_uuid': server['id'],
            'tag': first['id']}])
        self.wait_for_nics(server, [])
        self._wait_for_assert(lambda: self.assertEqual(
            [], self.cached_ports(server)),
            max_retries=self.STATE_WAIT_RETRIES)
        self.assertEqual([], self.nics(server, inactive=True))
        self.assertEqual('ACTIVE', self.api.get_server(
            server['id'])['status'])

    def test_ports_never_reported_plugged_fail_the_boot_when_fatal(self):
        # A port still DOWN: the guest waits, paused, for neutron's
        # network-vif-plugged event, which never comes here.
        self.flags(vif_plugging_timeout=2, vif_plugging_is_fatal=True)
        port = self.neutron_port('tap', status='DOWN')
        server = self.boot(self.image_id, self.flavor,
                           networks=[{'port': port['id']}],
                           expected_state='ERROR')
        self.assertFalse(os.path.exists(self.instance_dir(server)))
        self.assertRaises(libvirt.libvirtError, self.conn.lookupByUUIDString,
                          server['id'])

    def test_ports_never_reported_plugged_are_tolerated_when_not_fatal(self):
        self.flags(vif_plugging_timeout=2, vif_plugging_is_fatal=False)
        port = self.neutron_port('tap', status='DOWN')
        server = self.boot(self.image_id, self.flavor,
                           networks=[{'port': port['id']}])
        self.wait_for_guest(server, 'ALTDRIVER-READY')
