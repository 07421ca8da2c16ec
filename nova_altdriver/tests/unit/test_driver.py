import os
import subprocess
import uuid

import fixtures
import libvirt
from lxml import etree
from nova.compute import power_state
from nova.compute import provider_tree
from nova.console import type as ctype
from nova import exception
from nova import objects
import os_resource_classes as orc
from oslo_serialization import jsonutils
from oslo_utils import units

from nova_altdriver import domain
from nova_altdriver import driver
from nova_altdriver import guest as guest_mod
from nova_altdriver import host as host_mod
from nova_altdriver import lifecycle
from nova_altdriver.tests import builders
from nova_altdriver.tests import libvirt_test_driver
from nova_altdriver.tests import serial_consoles
from nova_altdriver.tests.unit import base


class DriverTest(base.TestCase):

    def setUp(self):
        super().setUp()
        self.driver = driver.AltDriver(virtapi=None)
        self.addCleanup(self.driver.cleanup_host, 'compute1')
        self.conn = self.driver.host.get_connection()

    def define(self, vcpus=1, start=False):
        self.last_id = getattr(self, 'last_id', 0) + 1
        instance = objects.Instance(uuid=str(uuid.uuid4()), id=self.last_id)
        dom = self.conn.defineXML(libvirt_test_driver.domain_xml(
            instance.uuid, instance.name, vcpus=vcpus))
        if start:
            dom.create()
        return instance, dom

    def test_guests_are_listed_by_name_and_uuid(self):
        instance, _ = self.define()
        self.assertEqual([instance.name], self.driver.list_instances())
        self.assertEqual([instance.uuid], self.driver.list_instance_uuids())
        self.assertTrue(self.driver.instance_exists(instance))
        other = objects.Instance(uuid=str(uuid.uuid4()))
        self.assertFalse(self.driver.instance_exists(other))

    def test_get_info_follows_the_domain_state(self):
        instance, dom = self.define()
        self.assertEqual(power_state.SHUTDOWN,
                         self.driver.get_info(instance).state)
        dom.create()
        self.assertEqual(power_state.RUNNING,
                         self.driver.get_info(instance).state)
        dom.suspend()
        self.assertEqual(power_state.PAUSED,
                         self.driver.get_info(instance).state)

    def test_get_info_of_a_saved_and_of_a_stopped_guest(self):
        instance, dom = self.define(start=True)
        dom.managedSave(0)
        self.assertEqual(power_state.SUSPENDED,
                         self.driver.get_info(instance).state)
        dom.create()  # restores the saved memory
        dom.destroy()
        asked = []
        has_image = libvirt.virDomain.hasManagedSaveImage
        self.useFixture(fixtures.MonkeyPatch(
            'libvirt.virDomain.hasManagedSaveImage',
            lambda self, flags: asked.append(1) or has_image(self, flags)))
        self.assertEqual(power_state.SHUTDOWN,
                         self.driver.get_info(instance).state)
        # stopped in this daemon's life: no saved-memory question
        self.assertEqual([], asked)

    def test_get_info_asks_a_guest_never_started_for_saved_memory_once(self):
        instance, dom = self.define()  # shut off, reason "unknown"
        asked = []
        has_image = libvirt.virDomain.hasManagedSaveImage
        self.useFixture(fixtures.MonkeyPatch(
            'libvirt.virDomain.hasManagedSaveImage',
            lambda self, flags: asked.append(1) or has_image(self, flags)))
        for _ in range(3):
            self.assertEqual(power_state.SHUTDOWN,
                             self.driver.get_info(instance).state)
        self.assertEqual(1, len(asked))
        # a managed save makes the reason "saved": asked every time
        dom.create()
        dom.managedSave(0)
        for _ in range(2):
            self.assertEqual(power_state.SUSPENDED,
                             self.driver.get_info(instance).state)
        self.assertEqual(3, len(asked))

    def test_get_info_of_an_unknown_instance(self):
        self.assertRaises(exception.InstanceNotFound, self.driver.get_info,
                          objects.Instance(uuid=str(uuid.uuid4())))

    def test_resources_match_the_hypervisor(self):
        self.define(vcpus=2, start=True)
        self.define(vcpus=3)  # defined but off: uses no vCPU
        nodename = self.driver.get_available_nodes()[0]
        res = self.driver.get_available_resource(nodename)
        st = os.statvfs(self.tmp)
        self.assertEqual(6, res['vcpus'])
        self.assertEqual(2, res['vcpus_used'])
        self.assertEqual(12288, res['memory_mb'])
        self.assertEqual(st.f_frsize * st.f_blocks // 2 ** 30,
                         res['local_gb'])
        self.assertEqual(nodename, res['hypervisor_hostname'])
        self.assertEqual('TEST', res['hypervisor_type'])
        self.assertIsInstance(res['hypervisor_version'], int)
        self.assertIn('topology', jsonutils.loads(res['cpu_info']))
        self.assertIn(('i686', 'test', 'hvm'), res['supported_instances'])

    def test_node_name_is_stable_and_configurable(self):
        first = self.driver.get_available_nodes()
        self.assertEqual(first, self.driver.get_available_nodes(refresh=True))
        self.flags(hypervisor_hostname='node-a', group='altdriver')
        self.assertEqual(['node-a'],
                         driver.AltDriver(None).get_available_nodes())

    def test_inventory_uses_nova_ratios_and_reservations(self):
        self.flags(cpu_allocation_ratio=16.0, reserved_host_memory_mb=1024,
                   reserved_host_disk_mb=2048, reserved_host_cpus=1)
        tree = provider_tree.ProviderTree()
        tree.new_root('node', uuid.uuid4())
        self.driver.update_provider_tree(tree, 'node')
        inv = tree.data('node').inventory
        self.assertEqual({'total': 6, 'reserved': 1, 'min_unit': 1,
                          'max_unit': 6, 'step_size': 1,
                          'allocation_ratio': 16.0}, inv[orc.VCPU])
        self.assertEqual(12288, inv[orc.MEMORY_MB]['total'])
        self.assertEqual(1024, inv[orc.MEMORY_MB]['reserved'])
        self.assertEqual(1.0, inv[orc.MEMORY_MB]['allocation_ratio'])
        self.assertEqual(2, inv[orc.DISK_GB]['reserved'])

    def test_the_image_cache_is_reserved_when_the_operator_asks(self):
        # (as the in-tree driver: the blocks its files hold, in whole GiB)
        base_dir = self.driver._layout.base_dir
        os.makedirs(base_dir, exist_ok=True)
        with open(os.path.join(base_dir, 'cached'), 'wb') as f:
            f.write(b'\1' * 3 * 2 ** 20)
        self.flags(reserved_host_disk_mb=2048)

        def reserved():
            tree = provider_tree.ProviderTree()
            tree.new_root('node', uuid.uuid4())
            self.driver.update_provider_tree(tree, 'node')
            return tree.data('node').inventory[orc.DISK_GB]['reserved']
        self.assertEqual(2, reserved())
        self.flags(reserve_disk_resource_for_image_cache=True,
                   group='workarounds')
        self.assertEqual(3, reserved())

    def test_host_figures(self):
        self.assertIn('load average', self.driver.get_host_uptime())
        stats = self.driver.get_host_cpu_stats()
        self.assertEqual(2400, stats['frequency'])
        self.assertIn('idle', stats)
        self.flags(my_ip='192.0.2.7')
        self.assertEqual('192.0.2.7', self.driver.get_host_ip_addr())


def qemu_img(*args):
    subprocess.run(['qemu-img'] + list(args), check=True,
                   capture_output=True)


def in_tree_overcommit(path, fmt):
    """One disk's over-commit as nova's in-tree driver takes it: qemu-img's
    virtual size less its disk size for qcow2 (never below 0), the file's
    size less its blocks for anything else.
    """
    if fmt != 'qcow2':
        st = os.stat(path)
        return st.st_size - st.st_blocks * 512
    info = jsonutils.loads(subprocess.run(
        ['qemu-img', 'info', '--output=json', path], check=True,
        capture_output=True, text=True).stdout)
    return max(0, info['virtual-size'] - info['actual-size'])


class DiskAvailableLeastTest(base.TestCase):
    """disk_available_least: the free space of the instances path less what
    the guests' local disks can still grow by, the in-tree driver's figure.
    """

    FREE = 10 * units.Gi

    def setUp(self):
        super().setUp()
        self.driver = driver.AltDriver(virtapi=None)
        self.addCleanup(self.driver.cleanup_host, 'compute1')
        self.conn = self.driver.host.get_connection()
        # a fixed free space: other tests write on the same filesystem
        self.useFixture(fixtures.MonkeyPatch(
            'nova_altdriver.resources.disk_figures',
            lambda path: (100 * units.Gi, 0, self.FREE)))
        base = os.path.join(self.tmp, 'base')
        qemu_img('create', '-f', 'qcow2', base, '64M')
        # 1 GiB the guest sees, a few clusters of metadata on the host
        self.overlay = self.file('overlay', 'qcow2', '-F', 'qcow2', '-b',
                                 base, size='1G')
        self.raw = self.file('sparse', 'raw', size='2G')

    def file(self, name, fmt, *options, size):
        path = os.path.join(self.tmp, name)
        qemu_img('create', '-f', fmt, *options, path, size)
        return path

    def define(self, *disks, start=False):
        """A guest with disks (domain.Disk), running with start."""
        xml = etree.fromstring(libvirt_test_driver.domain_xml(
            str(uuid.uuid4()), 'instance-%s' % uuid.uuid4().hex[:8]))
        devices = etree.SubElement(xml, 'devices')
        for disk in disks:
            devices.append(domain.disk_element(disk))
        dom = self.conn.defineXML(etree.tostring(xml, encoding='unicode'))
        if start:
            dom.create()

    def least(self):
        nodename = self.driver.get_available_nodes()[0]
        return self.driver.get_available_resource(
            nodename)['disk_available_least']

    def expected(self, *disks):
        """What the in-tree driver reports, as nova stores it (int())."""
        overcommit = sum(in_tree_overcommit(path, fmt)
                         for path, fmt in disks)
        return int((self.FREE - overcommit) / units.Gi)

    def test_a_qcow2_overlay_counts_its_virtual_size_less_its_blocks(self):
        self.define(domain.Disk(self.overlay, 'qcow2', 'vda', 'virtio'))
        self.assertGreater(in_tree_overcommit(self.overlay, 'qcow2'),
                           units.Gi // 2)
        self.assertEqual(self.expected((self.overlay, 'qcow2')),
                         self.least())
        self.assertEqual(9, self.least())

    def test_a_raw_sparse_file_counts_its_size_less_its_blocks(self):
        self.define(domain.Disk(self.raw, 'raw', 'vdb', 'virtio'),
                    start=True)  # the live definition counts
        self.assertEqual(self.expected((self.raw, 'raw')), self.least())
        self.assertEqual(8, self.least())

    def test_the_format_is_the_definitions_not_the_contents(self):
        # a raw disk whose guest wrote a 1 TiB qcow2 header into it
        written = self.file('written', 'qcow2', size='1T')
        self.define(domain.Disk(self.overlay, 'qcow2', 'vda', 'virtio'),
                    domain.Disk(written, 'raw', 'vdb', 'virtio'))
        self.assertEqual(self.expected((self.overlay, 'qcow2'),
                                       (written, 'raw')), self.least())
        self.assertEqual(9, self.least())

    def test_a_volume_is_not_counted(self):
        volume = domain.Disk(None, 'raw', 'vdb', 'virtio',
                             serial='vol-1', rbd=domain.Rbd('volumes/vol-1'),
                             alias='ua-vol-1')
        self.define(domain.Disk(self.overlay, 'qcow2', 'vda', 'virtio'),
                    volume)
        self.assertEqual(self.expected((self.overlay, 'qcow2')),
                         self.least())

    def test_a_guest_whose_disk_went_away_is_left_out(self):
        gone = self.file('gone', 'qcow2', size='4G')
        os.unlink(gone)
        # the in-tree driver leaves the whole guest out, its other disks too
        self.define(domain.Disk(self.overlay, 'qcow2', 'vda', 'virtio'),
                    domain.Disk(gone, 'qcow2', 'vdb', 'virtio'))
        self.define(domain.Disk(self.raw, 'raw', 'vda', 'virtio'))
        self.assertEqual(self.expected((self.raw, 'raw')), self.least())

    def test_more_growth_than_free_space_is_below_zero_truncated(self):
        self.FREE = units.Gi
        self.define(domain.Disk(self.overlay, 'qcow2', 'vda', 'virtio'),
                    domain.Disk(self.raw, 'raw', 'vdb', 'virtio'))
        # (1 GiB - nearly 3 GiB) / 1 GiB: -1.99..., stored as -1
        self.assertEqual(-1, self.least())
        self.assertEqual(self.expected((self.overlay, 'qcow2'),
                                       (self.raw, 'raw')), self.least())


class InitHostTest(base.TestCase):

    def test_init_host_creates_the_instances_path(self):
        path = os.path.join(self.tmp, 'instances')
        self.flags(instances_path=path)
        drv = driver.AltDriver(None)
        drv.init_host('compute1')
        drv.cleanup_host('compute1')
        self.assertTrue(os.path.isdir(path))

    def test_kvm_is_refused_where_libvirt_cannot_run_it(self):
        self.flags(virt_type='kvm', group='altdriver')
        drv = driver.AltDriver(None)
        self.addCleanup(drv.cleanup_host, 'compute1')
        error = self.assertRaises(exception.InternalError, drv.init_host,
                                  'compute1')
        self.assertIn('virt_type = qemu', str(error))

    def test_old_libvirt_is_refused(self):
        drv = driver.AltDriver(None)
        self.addCleanup(drv.cleanup_host, 'compute1')
        self.patch(host_mod, 'MIN_LIBVIRT_VERSION', (99, 0, 0))
        error = self.assertRaises(exception.InternalError, drv.init_host,
                                  'compute1')
        self.assertIn('libvirt >= 99.0.0', str(error))

    def test_eventlet_mode_is_refused_with_a_clear_message(self):
        drv = driver.AltDriver(None)
        self.addCleanup(drv.cleanup_host, 'compute1')
        self.useFixture(fixtures.MockPatch(
            'nova.utils.concurrency_mode_threading', return_value=False))
        error = self.assertRaises(exception.InternalError, drv.init_host,
                                  'compute1')
        self.assertIn('concurrency_backend = threading', str(error))


class ConsoleOutputTest(base.TestCase):

    def setUp(self):
        super().setUp()
        self.driver = driver.AltDriver(virtapi=None)
        self.addCleanup(self.driver.cleanup_host, 'compute1')
        self.instance = objects.Instance(uuid=str(uuid.uuid4()), id=1)
        self.driver.host.get_connection().defineXML(
            libvirt_test_driver.domain_xml(self.instance.uuid, 'instance-1'))
        self.log = os.path.join(self.tmp, self.instance.uuid, 'console.log')
        os.makedirs(os.path.dirname(self.log))
        self.patch(lifecycle, 'MAX_CONSOLE_BYTES', 10)

    def write(self, path, text):
        with open(path, 'w') as f:
            f.write(text)

    def test_the_tail_reaches_into_the_rotated_file(self):
        self.write(self.log + '.0', 'older-line\n')
        self.write(self.log, 'new\n')
        self.assertEqual(b'-line\nnew\n',
                         self.driver.get_console_output(None, self.instance))
        self.write(self.log, 'a long new line\n')
        self.assertEqual(b' new line\n',
                         self.driver.get_console_output(None, self.instance))

    def test_no_console_yet(self):
        self.assertEqual(b'',
                         self.driver.get_console_output(None, self.instance))

    def test_read_through_privsep_when_not_root(self):
        # virtlogd writes the log 0600 root; nova-compute may not be root
        # (as root here, the refusal cannot happen for real)
        self.write(self.log, 'x')
        real_open = open

        def refusing_open(path, *args, **kwargs):
            if path == self.log:
                raise PermissionError(13, 'Permission denied')
            return real_open(path, *args, **kwargs)

        self.useFixture(fixtures.MonkeyPatch('builtins.open', refusing_open))
        self.useFixture(fixtures.MockPatch(
            'nova.privsep.path.last_bytes', return_value=(b'privileged', 0)))
        self.assertEqual(b'privileged',
                         self.driver.get_console_output(None, self.instance))


class SerialConsoleTest(base.TestCase):

    def setUp(self):
        super().setUp()
        self.pool = self.useFixture(
            serial_consoles.SerialConsoles(self)).pool
        self.driver = driver.AltDriver(virtapi=None)
        self.addCleanup(self.driver.cleanup_host, 'compute1')
        self.lifecycle = self.driver._lifecycle
        self.instance = builders.instance()
        self.disks = [domain.Disk(os.path.join(self.tmp, 'disk'), 'qcow2',
                                  'vda', 'virtio')]

    def define(self, image_meta=None):
        """Defines the domain Lifecycle.build_xml makes now."""
        xml = self.lifecycle.build_xml(
            self.instance, image_meta or builders.image_meta(), self.disks,
            [])
        self.driver.host.define(xml)
        return xml

    def test_the_console_is_the_first_tcp_port(self):
        self.define(builders.image_meta(hw_serial_port_count=2))
        console = self.driver.get_serial_console(None, self.instance)
        self.assertIsInstance(console, ctype.ConsoleSerial)
        self.assertEqual(('127.0.0.1', 10300), (console.host, console.port))
        self.assertEqual({('127.0.0.1', 10300), ('127.0.0.1', 10301)},
                         self.pool)

    def test_a_guest_defined_while_disabled_has_none(self):
        self.flags(enabled=False, group='serial_console')
        self.define()
        error = self.assertRaises(exception.ConsoleTypeUnavailable,
                                  self.driver.get_serial_console, None,
                                  self.instance)
        self.assertIn('hard reboot', str(error))
        self.assertEqual(set(), self.pool)

    def test_an_unknown_guest(self):
        self.assertRaises(exception.InstanceNotFound,
                          self.driver.get_serial_console, None,
                          self.instance)

    def test_a_new_definition_keeps_the_guest_s_ports(self):
        self.define()
        self.pool.add(('127.0.0.1', 10300))  # as if taken elsewhere too
        # a hard reboot, a rescue: the console stays where it was
        xml = self.define()
        self.assertEqual([('127.0.0.1', 10300)],
                         guest_mod.serial_ports_of(xml))
        # one more port asked for: taken from the pool
        xml = self.define(builders.image_meta(hw_serial_port_count=2))
        self.assertEqual([('127.0.0.1', 10300), ('127.0.0.1', 10301)],
                         guest_mod.serial_ports_of(xml))

    def test_removing_the_guest_releases_its_ports(self):
        self.define()
        self.assertEqual({('127.0.0.1', 10300)}, self.pool)
        self.lifecycle.remove_domain(self.instance)
        self.assertEqual(set(), self.pool)

    def test_a_restarted_compute_claims_its_guests_ports(self):
        self.define()
        self.pool.clear()  # a new nova-compute process
        self.lifecycle.claim_serial_ports_of_guests()
        self.assertEqual({('127.0.0.1', 10300)}, self.pool)
        # a guest removed meanwhile is none to claim
        self.pool.clear()
        self.useFixture(fixtures.MockPatchObject(
            guest_mod.Guest, 'serial_ports',
            side_effect=exception.InstanceNotFound(instance_id='gone')))
        self.lifecycle.claim_serial_ports_of_guests()
        self.assertEqual(set(), self.pool)
        # (on a connection of its own: the test driver's guests are not
        # there)
        claim = self.useFixture(fixtures.MockPatchObject(
            self.lifecycle, 'claim_serial_ports_of_guests')).mock
        self.driver.init_host('compute1')
        claim.assert_called_once_with()


class SpiceConsoleTest(base.TestCase):

    def setUp(self):
        super().setUp()
        self.flags(enabled=True, server_proxyclient_address='192.0.2.5',
                   group='spice')
        self.driver = driver.AltDriver(virtapi=None)
        self.addCleanup(self.driver.cleanup_host, 'compute1')
        self.instance = builders.instance()

    def define(self, graphics_ports):
        """Defines the guest with the ports libvirt gave its SPICE server
        (the test driver runs no QEMU to give any).
        """
        xml = domain.build(self.instance, builders.image_meta(), [])
        self.driver.host.define(xml.replace(
            '<graphics type="spice" autoport="yes"',
            '<graphics type="spice" autoport="no" ' + graphics_ports))

    def test_the_ports_of_the_guest_s_spice_server(self):
        self.define('port="5901" tlsPort="5902"')
        console = self.driver.get_spice_console(None, self.instance)
        self.assertIsInstance(console, ctype.ConsoleSpice)
        self.assertEqual(('192.0.2.5', 5901, 5902),
                         (console.host, console.port, console.tlsPort))
        self.define('port="5901"')  # no TLS configured in libvirt
        self.assertIsNone(
            self.driver.get_spice_console(None, self.instance).tlsPort)

    def test_a_guest_without_a_spice_server_or_its_ports(self):
        self.define('')
        self.assertRaises(exception.ConsoleTypeUnavailable,
                          self.driver.get_spice_console, None, self.instance)
        self.flags(enabled=False, group='spice')
        self.driver.host.define(domain.build(
            self.instance, builders.image_meta(), []))
        self.assertRaises(exception.ConsoleTypeUnavailable,
                          self.driver.get_spice_console, None, self.instance)


class PluggingDomain(object):
    """A running domain that takes the devices attached to it, at the PCI
    address QEMU would give the first (libvirt's test driver attaches
    none).
    """

    def __init__(self):
        self.devices = etree.Element('devices')

    def UUIDString(self):
        return builders.INSTANCE_UUID

    def isActive(self):
        return True

    def attachDeviceFlags(self, xml, flags):
        device = etree.fromstring(xml)
        etree.SubElement(device, 'address', type='pci', domain='0x0000',
                         bus='0x00', slot='0x07', function='0x0')
        self.devices.append(device)

    def XMLDesc(self, flags):
        return '<domain>%s</domain>' % etree.tostring(
            self.devices, encoding='unicode')


class TaggedAttachTest(base.TestCase):
    """An attach describes the device for the metadata service (nova's
    records of the instance's ports and volumes are its database's).
    """

    def setUp(self):
        super().setUp()
        self.driver = driver.AltDriver(virtapi=None)
        self.addCleanup(self.driver.cleanup_host, 'compute1')
        self.guest = guest_mod.Guest(PluggingDomain())
        self.useFixture(fixtures.MockPatchObject(
            self.driver.host, 'get_guest', return_value=self.guest))
        self.vif = builders.vif('tap')
        self.vifs = self.useFixture(fixtures.MockPatchObject(
            objects.VirtualInterfaceList, 'get_by_instance_uuid',
            return_value=[objects.VirtualInterface(
                address=self.vif['address'], tag='data')])).mock
        self.useFixture(fixtures.MockPatchObject(
            objects.BlockDeviceMappingList, 'get_by_instance_uuid',
            return_value=[]))
        self.save = self.useFixture(fixtures.MockPatchObject(
            objects.Instance, 'save')).mock
        self.instance = builders.instance()

    def test_a_tagged_interface_at_its_address(self):
        self.driver.attach_interface(None, self.instance,
                                     builders.image_meta(), self.vif)
        nic, = self.instance.device_metadata.devices
        self.assertEqual((self.vif['address'], ['data'], '0000:00:07.0'),
                         (nic.mac, nic.tags, nic.bus.address))
        self.save.assert_called_once_with()

    def test_an_attach_it_cannot_describe_is_undone(self):
        self.vifs.side_effect = exception.NovaException('database gone')
        detach = self.useFixture(fixtures.MockPatchObject(
            self.driver._interfaces, 'detach')).mock
        self.assertRaises(exception.NovaException,
                          self.driver.attach_interface, None, self.instance,
                          builders.image_meta(), self.vif)
        detach.assert_called_once_with(self.instance, self.vif)
        self.save.assert_not_called()
