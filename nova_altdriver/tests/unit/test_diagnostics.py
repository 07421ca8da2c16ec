import datetime

from lxml import etree
from nova import exception
from oslo_utils import fixture as utils_fixture

from nova_altdriver import domain
from nova_altdriver import driver
from nova_altdriver.tests import builders
from nova_altdriver.tests.unit import base
from nova_altdriver import vifs

LAUNCHED = datetime.datetime(2026, 3, 1, 12, 0, 0)
TAP = builders.vif('tap')
# an Open vSwitch port whose device libvirt names (live migration's
# definitions leave the name to the destination)
OVS = builders.vif('ovs', port_filter=False)
OVS.update(id='0b9d3c4e-1f2a-4b5c-8d7e-6f5a4b3c2d1e',
           address='fa:16:3e:00:00:02', devname=None)
DISK_KEYS = ('_read_req', '_read', '_write_req', '_write', '_errors')
NIC_KEYS = ('_rx', '_rx_packets', '_rx_errors', '_rx_drop',
            '_tx', '_tx_packets', '_tx_errors', '_tx_drop')


class DiagnosticsTest(base.TestCase):
    """Both forms of a server's diagnostics, from a guest of libvirt's
    test driver: one vCPU, 512 MiB, a root disk and a config drive, a tap
    port and a port whose device libvirt names.
    """

    def setUp(self):
        super().setUp()
        self.useFixture(utils_fixture.TimeFixture(
            LAUNCHED + datetime.timedelta(seconds=42)))
        self.driver = driver.AltDriver(virtapi=None)
        self.addCleanup(self.driver.cleanup_host, 'compute1')
        self.instance = builders.instance(memory_mb=512, vcpus=1)
        self.instance.update({'config_drive': 'True', 'system_metadata': {},
                              'image_ref': builders.IMAGE_UUID,
                              'launched_at': LAUNCHED})
        image_meta = builders.image_meta()
        xml = domain.build(
            self.instance, image_meta,
            [domain.Disk('/i/disk', 'qcow2', 'vda', 'virtio'),
             domain.Disk('/i/disk.config', 'raw', 'sda', 'sata',
                         device='cdrom')],
            [vifs.interface(vif, image_meta, self.instance.flavor)
             for vif in (TAP, OVS)])
        self.dom = self.driver.host.get_connection().defineXML(xml)
        self.dom.create()

    def ovs_device(self):
        """The name libvirt gave the OVS port's device."""
        return etree.fromstring(self.dom.XMLDesc(0)).xpath(
            'string(devices/interface[mac/@address=$mac]/target/@dev)',
            mac=OVS['address'])

    def test_legacy_has_the_in_tree_keys(self):
        result = self.driver.get_diagnostics(self.instance)
        expected = ({'cpu0_time', 'memory'} |
                    {'vda' + key for key in DISK_KEYS} |
                    {'sda' + key for key in DISK_KEYS} |
                    {TAP['devname'] + key for key in NIC_KEYS} |
                    {self.ovs_device() + key for key in NIC_KEYS} |
                    {'memory-' + key for key in self.dom.memoryStats()})
        self.assertEqual(sorted(expected), sorted(result))
        self.assertIn('memory-rss', result)
        self.assertEqual(512 * 1024, result['memory'])  # KiB
        self.assertEqual(512 * 1024, result['memory-actual'])
        self.assertGreater(result['cpu0_time'], 0)
        self.assertGreater(result['vda_read'], 0)
        self.assertGreater(result[TAP['devname'] + '_rx'], 0)

    def test_standard(self):
        result = self.driver.get_instance_diagnostics(self.instance)
        self.assertEqual(
            {'state': 'running', 'driver': 'libvirt', 'hypervisor': 'qemu',
             'hypervisor_os': 'linux', 'config_drive': True, 'uptime': 42,
             'num_cpus': 1, 'num_disks': 2, 'num_nics': 2},
            {key: getattr(result, key) for key in (
                'state', 'driver', 'hypervisor', 'hypervisor_os',
                'config_drive', 'uptime', 'num_cpus', 'num_disks',
                'num_nics')})
        # MiB, as nova's API documents
        self.assertEqual((512, 512), (result.memory_details.maximum,
                                      result.memory_details.used))
        cpu = result.cpu_details[0]
        self.assertEqual(0, cpu.id)
        self.assertGreater(cpu.time, 0)
        self.assertIsNone(cpu.utilisation)
        vda, _config_drive = result.disk_details
        self.assertEqual(self.dom.blockStats('vda')[4], vda.errors_count)
        self.assertGreater(vda.read_bytes, 0)
        self.assertGreater(vda.write_requests, 0)
        tap, ovs = result.nic_details
        self.assertEqual(TAP['address'], tap.mac_address)
        self.assertGreater(tap.rx_octets, 0)
        self.assertGreater(tap.tx_packets, 0)
        self.assertEqual(OVS['address'], ovs.mac_address)
        self.assertGreater(ovs.rx_octets, 0)

    def test_the_hypervisor_is_the_guests_own(self):
        # a kvm host's guests say kvm (the test driver takes any type)
        self.flags(virt_type='kvm', group='altdriver')
        self.dom.destroy()
        self.dom.undefine()
        xml = domain.build(self.instance, builders.image_meta(), [])
        self.driver.host.get_connection().defineXML(xml).create()
        self.assertEqual('kvm', self.driver.get_instance_diagnostics(
            self.instance).hypervisor)

    def test_a_guest_stopped_meanwhile_shows_what_libvirt_still_knows(self):
        # nova asked while it ran; no counters now, as in the in-tree driver
        # (and the OVS port has no device any more)
        self.dom.destroy()
        self.assertEqual({'memory': 512 * 1024},
                         self.driver.get_diagnostics(self.instance))
        result = self.driver.get_instance_diagnostics(self.instance)
        self.assertEqual('shutdown', result.state)
        self.assertEqual((0, 0), (result.num_cpus, result.num_disks))
        self.assertEqual([TAP['address'], OVS['address']],
                         [nic.mac_address for nic in result.nic_details])
        self.assertEqual([None, None], [
            nic.rx_octets for nic in result.nic_details])

    def test_a_guest_gone_is_instance_not_found(self):
        self.dom.destroy()
        self.dom.undefine()
        for call in (self.driver.get_diagnostics,
                     self.driver.get_instance_diagnostics):
            self.assertRaises(exception.InstanceNotFound, call,
                              self.instance)
