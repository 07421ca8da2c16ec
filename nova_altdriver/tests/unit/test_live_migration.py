"""Live migration's decisions: what moves how, the destination's
definition, which disks NBD copies, the libvirt flags.
"""

import os

import fixtures
import libvirt
from lxml import etree
from nova import exception
from nova import objects

from nova_altdriver import domain
from nova_altdriver import driver
from nova_altdriver import guest
from nova_altdriver import live_migration
from nova_altdriver.tests import builders
from nova_altdriver.tests import serial_consoles
from nova_altdriver.tests.unit import base

SOURCE_XML = """<domain type='qemu'>
  <name>instance-00000001</name>
  <os><type>hvm</type>
    <kernel>/src/instances/_base/kernel</kernel></os>
  <devices>
    <disk type='file' device='disk'>
      <source file='/src/instances/uuid/disk'/>
      <backingStore type='file'>
        <source file='/src/instances/_base/abc'/>
      </backingStore>
      <target dev='vda' bus='virtio'/>
    </disk>
    <disk type='network' device='disk'>
      <source protocol='rbd' name='volumes/volume-1'/>
      <target dev='vdb' bus='virtio'/>
    </disk>
    <serial type='pty'>
      <log file='/src/instances/uuid/console.log' append='on'/>
    </serial>
    <interface type='ethernet'><target dev='/src/instances-not'/>
    </interface>
  </devices>
</domain>"""


class StorageDecisionTest(base.TestCase):

    def test_shared_path_without_block_migration(self):
        self.assertEqual((False, True), live_migration.storage_decision(
            True, True, None))
        self.assertEqual((False, True), live_migration.storage_decision(
            True, True, False))

    def test_local_disks_without_a_shared_path_are_copied(self):
        self.assertEqual((True, False), live_migration.storage_decision(
            False, True, None))
        self.assertEqual((True, False), live_migration.storage_decision(
            False, True, True))

    def test_volumes_only_need_no_shared_path(self):
        self.assertEqual((False, True), live_migration.storage_decision(
            False, False, None))

    def test_block_migration_onto_shared_disks_is_refused(self):
        self.assertRaises(exception.InvalidLocalStorage,
                          live_migration.storage_decision, True, True, True)
        self.assertRaises(exception.InvalidLocalStorage,
                          live_migration.storage_decision, False, False,
                          True)

    def test_local_disks_without_block_migration_are_refused(self):
        error = self.assertRaises(exception.InvalidSharedStorage,
                                  live_migration.storage_decision,
                                  False, True, False)
        self.assertIn('with block migration', str(error))


class RewritePathsTest(base.TestCase):

    def rewritten(self, source, dest):
        return etree.fromstring(live_migration.rewrite_paths(
            SOURCE_XML, source, dest))

    def test_every_file_under_the_source_root_moves(self):
        doc = self.rewritten('/src/instances', '/dst/inst')
        self.assertEqual(
            ['/dst/inst/uuid/disk', '/dst/inst/_base/abc'],
            doc.xpath('devices/disk/source/@file|'
                      'devices/disk/backingStore/source/@file'))
        self.assertEqual('/dst/inst/uuid/console.log',
                         doc.find('devices/serial/log').get('file'))
        self.assertEqual('/dst/inst/_base/kernel', doc.findtext('os/kernel'))

    def test_only_paths_inside_the_root(self):
        doc = self.rewritten('/src/instances/', '/dst/inst')
        # a name that merely begins like the root stays
        self.assertEqual('/src/instances-not', doc.find(
            'devices/interface/target').get('dev'))
        self.assertEqual('volumes/volume-1', doc.find(
            "devices/disk[@type='network']/source").get('name'))

    def test_the_same_root_keeps_the_definition(self):
        self.assertEqual(SOURCE_XML, live_migration.rewrite_paths(
            SOURCE_XML, '/src/instances', '/src/instances/'))


class CopiedDiskTest(base.TestCase):

    def test_local_writable_files_only(self):
        root = domain.Disk('/i/disk', 'qcow2', 'vda', 'virtio')
        self.assertTrue(live_migration.copied_disk(root))
        rbd = domain.Rbd('volumes/v', (), None, None)
        for disk in (
                domain.Disk(None, 'raw', 'vdb', 'virtio', rbd=rbd),
                domain.Disk('/i/disk.config', 'raw', 'hda', 'ide',
                            device='cdrom'),
                domain.Disk('/i/ro', 'raw', 'vdc', 'virtio', readonly=True),
                domain.Disk('/i/sh', 'raw', 'vdd', 'virtio',
                            shareable=True)):
            self.assertFalse(live_migration.copied_disk(disk), disk)


class FiguresTest(base.TestCase):

    def test_completion_timeout_counts_each_part_as_two_gib_at_least(self):
        self.assertEqual(2, live_migration.data_gib(256, []))
        self.assertEqual(4 + 2 + 10, live_migration.data_gib(
            4096, [1 << 20, 10 << 30]))

    def test_the_filesystem_of_a_path(self):
        self.assertEqual('proc', live_migration.filesystem_type('/proc/1'))
        self.assertIsNotNone(live_migration.filesystem_type(self.tmp))
        self.assertNotIn(live_migration.filesystem_type(self.tmp),
                         ('proc', None))


class FlagsTest(base.TestCase):

    BASE = (libvirt.VIR_MIGRATE_LIVE | libvirt.VIR_MIGRATE_PEER2PEER |
            libvirt.VIR_MIGRATE_UNDEFINE_SOURCE |
            libvirt.VIR_MIGRATE_PERSIST_DEST)

    def test_shared_disks(self):
        self.assertEqual(self.BASE, guest.migration_flags(False, False,
                                                          False))

    def test_block_migration_copies_incrementally(self):
        self.assertEqual(self.BASE | libvirt.VIR_MIGRATE_NON_SHARED_INC,
                         guest.migration_flags(True, False, False))

    def test_unsafe_and_post_copy_only_when_asked(self):
        self.assertEqual(
            self.BASE | libvirt.VIR_MIGRATE_UNSAFE |
            libvirt.VIR_MIGRATE_POSTCOPY,
            guest.migration_flags(False, True, True))


class RootProbeTest(base.TestCase):

    def test_seen_by_a_host_sharing_the_path_only(self):
        probe = self.layout.place_root_probe()
        self.assertEqual(self.layout.root, os.path.dirname(probe))
        self.assertTrue(self.layout.root_probe_visible(probe))
        other = type(self.layout)(self.useFixture(
            fixtures.TempDir()).path)
        self.assertFalse(other.root_probe_visible(probe))
        self.layout.remove_root_probe(probe)
        self.assertFalse(os.path.exists(probe))

    def test_other_files_are_no_probes(self):
        self.assertRaises(exception.NovaException,
                          self.layout.root_probe_visible, '/etc/passwd')
        self.assertRaises(exception.NovaException,
                          self.layout.remove_root_probe,
                          os.path.join(self.layout.root, 'disk'))


class FreeInterfaceNamesTest(base.TestCase):
    """Two compute hosts of one machine share one kernel: the guest's OVS
    port cannot have the same device name on both.
    """

    XML = """<domain type='qemu'><devices>
      <interface type='bridge'>
        <source bridge='br-int'/>
        <virtualport type='openvswitch'>
          <parameters interfaceid='port-1'/>
        </virtualport>
        <mac address='fa:16:3e:00:00:01'/>
        <target dev='tapport-1'/>
      </interface>
      <interface type='ethernet'>
        <mac address='fa:16:3e:00:00:02'/>
        <target dev='tapport-2'/>
      </interface>
    </devices></domain>"""

    def setUp(self):
        super().setUp()
        self.doc = etree.fromstring(
            live_migration.free_interface_names(self.XML))

    def test_ovs_ports_are_named_by_the_destination(self):
        ovs = self.doc.find("devices/interface[@type='bridge']")
        self.assertIsNone(ovs.find('target'))
        # what binds the port stays
        self.assertEqual('port-1', ovs.find(
            'virtualport/parameters').get('interfaceid'))
        self.assertEqual('fa:16:3e:00:00:01', ovs.find('mac').get('address'))

    def test_other_interfaces_keep_their_names(self):
        self.assertEqual('tapport-2', self.doc.find(
            "devices/interface[@type='ethernet']/target").get('dev'))


class SerialPortsTest(base.TestCase):
    """The guest's TCP serial ports listen on ports the destination took
    from its own pool; the source's go back to its pool.
    """

    XML = """<domain type='qemu'><devices>
      <serial type='tcp'>
        <source mode='bind' host='127.0.0.1' service='10300'/>
        <log file='/i/console.log' append='on'/>
        <target port='0'/>
      </serial>
      <serial type='tcp'>
        <source mode='bind' host='127.0.0.1' service='10301'/>
        <target port='1'/>
      </serial>
      <console type='tcp'>
        <source mode='bind' host='127.0.0.1' service='10300'/>
        <target type='serial' port='0'/>
      </console>
    </devices></domain>"""

    def setUp(self):
        super().setUp()
        self.pool = self.useFixture(
            serial_consoles.SerialConsoles(self)).pool
        self.driver = driver.AltDriver(virtapi=None)
        self.addCleanup(self.driver.cleanup_host, 'compute1')
        self.instance = builders.instance()
        self.instance.update({'system_metadata': {}, 'image_ref': None,
                              'host': None})

    def define(self):
        self.driver.host.define(self.driver._lifecycle.build_xml(
            self.instance, builders.image_meta(), [], []))

    def test_the_destination_s_ports_in_the_moved_definition(self):
        doc = etree.fromstring(live_migration.move_serial_ports(
            self.XML, '192.0.2.9', [10400]))
        self.assertEqual([('192.0.2.9', 10400), ('192.0.2.9', 10301)],
                         guest.serial_ports_of(etree.tostring(doc)))
        self.assertEqual('/i/console.log',
                         doc.find('devices/serial/log').get('file'))
        self.assertEqual(('192.0.2.9', '10400'), (
            doc.find('devices/console/source').get('host'),
            doc.find('devices/console/source').get('service')))

    def check_source(self, serial_listen_addr):
        data = objects.LibvirtLiveMigrateData(
            filename=self.layout.place_root_probe(),
            serial_listen_addr=serial_listen_addr)
        return self.driver.check_can_live_migrate_source(
            None, self.instance, data)

    def test_a_destination_without_serial_consoles_is_refused(self):
        self.define()
        error = self.assertRaises(exception.MigrationPreCheckError,
                                  self.check_source, None)
        self.assertIn('[serial_console] disabled', str(error))
        self.assertEqual('127.0.0.1',
                         self.check_source('127.0.0.1').serial_listen_addr)

    def test_a_pty_guest_takes_no_port_at_the_destination(self):
        self.flags(enabled=False, group='serial_console')
        self.define()
        data = self.check_source('127.0.0.1')
        self.assertIsNone(data.serial_listen_addr)
        data.is_shared_instance_path = True
        data = self.driver.pre_live_migration(None, self.instance, None, [],
                                              None, data)
        self.assertEqual([], data.serial_listen_ports)

    def test_the_destination_takes_ports_and_gives_them_back(self):
        data = self.driver.check_can_live_migrate_destination(
            None, self.instance, None, None)
        self.assertEqual('127.0.0.1', data.serial_listen_addr)
        data.is_shared_instance_path = True
        data = self.driver.pre_live_migration(None, self.instance, None, [],
                                              None, data)
        self.assertEqual([10300], data.serial_listen_ports)
        self.assertEqual({('127.0.0.1', 10300)}, self.pool)
        self.driver.rollback_live_migration_at_destination(
            None, self.instance, [], None, migrate_data=data)
        self.assertEqual(set(), self.pool)
