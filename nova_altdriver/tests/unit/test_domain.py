"""Golden-file tests of the domain XML for representative servers.

Regenerate after an intended change with ALTDRIVER_REGEN_GOLDEN=1 and read
the diff before committing it.
"""

import os
import re

from lxml import etree
from nova.api.validation.extra_specs import validators
from nova import exception

from nova_altdriver import domain
from nova_altdriver import host as host_mod
from nova_altdriver.tests import builders
from nova_altdriver.tests.unit import base
from nova_altdriver import vifs
from nova_altdriver import volumes

GOLDEN = os.path.join(os.path.dirname(__file__), 'golden')
INST = '/var/lib/nova/instances/' + builders.INSTANCE_UUID
_instance = builders.instance
_image = builders.image_meta
_vif = builders.vif


class GoldenTestCase(base.TestCase):

    def assertGolden(self, name, xml):
        # Only the creation time and nova's version change between runs.
        xml = re.sub(r'<nova:creationTime>[^<]*<',
                     '<nova:creationTime>TIME<', xml)
        xml = re.sub(r'(<nova:package version=")[^"]*', r'\1VERSION', xml)
        xml = re.sub(r'(<entry name="version">)[^<]*', r'\1VERSION', xml)
        path = os.path.join(GOLDEN, name)
        if os.environ.get('ALTDRIVER_REGEN_GOLDEN'):
            with open(path, 'w') as f:
                f.write(xml)
        with open(path) as f:
            self.assertEqual(f.read(), xml)
        etree.fromstring(xml)  # well-formed


class GoldenXMLTest(GoldenTestCase):

    def test_the_ceph_secret_of_a_volume(self):
        self.assertGolden('ceph-secret.xml', host_mod.ceph_secret_xml(
            builders.CEPH_SECRET_UUID, 'cinder'))

    def test_plain_virtio_server_with_local_disks(self):
        self.flags(virt_type='kvm', group='altdriver')
        disks = [domain.Disk(INST + '/disk', 'qcow2', 'vda', 'virtio'),
                 domain.Disk(INST + '/disk.local', 'qcow2', 'vdb', 'virtio'),
                 domain.Disk(INST + '/disk.swap', 'qcow2', 'vdc', 'virtio'),
                 domain.Disk(INST + '/disk.config', 'raw', 'hda', 'ide',
                             device='cdrom')]
        instance = _instance(ephemeral_gb=1, swap=64)
        self.assertGolden('plain-kvm.xml', domain.build(
            instance, _image(), disks,
            [vifs.interface(_vif('ovs', port_filter=True), _image(),
                            instance.flavor)],
            console_log=INST + '/console.log'))

    def test_uefi_q35_scsi_agent_e1000(self):
        image = _image(hw_firmware_type='uefi', hw_machine_type='q35',
                       hw_disk_bus='scsi', hw_qemu_guest_agent=True,
                       hw_vif_model='e1000')
        disks = [domain.Disk(INST + '/disk', 'raw', 'sda', 'scsi')]
        instance = _instance(memory_mb=2048, vcpus=4)
        self.assertGolden('uefi-q35-scsi.xml', domain.build(
            instance, image, disks,
            [vifs.interface(_vif('tap'), image, instance.flavor)],
            console_log=INST + '/console.log'))

    def test_kernel_and_ramdisk_boot(self):
        image = _image(os_command_line='console=ttyS0 root=/dev/vda')
        disks = [domain.Disk(INST + '/disk', 'qcow2', 'vda', 'virtio')]
        self.assertGolden('direct-kernel.xml', domain.build(
            _instance(), image, disks, [],
            console_log=INST + '/console.log',
            kernel='/var/lib/nova/instances/_base/k',
            ramdisk='/var/lib/nova/instances/_base/r'))

    def test_volume_backed_server_with_a_local_swap_and_a_volume(self):
        boot = volumes.volume_disk(builders.rbd_connection_info(
            'a1b2c3d4-0000-4000-8000-000000000001'), 'vda', 'virtio')
        data = volumes.volume_disk(builders.rbd_connection_info(
            'a1b2c3d4-0000-4000-8000-000000000002', multiattach=True,
            access_mode='ro'), 'sdb', 'scsi')
        disks = [boot, domain.Disk(INST + '/disk.swap', 'qcow2', 'vdb',
                                   'virtio'), data]
        self.assertGolden('volume-backed.xml', domain.build(
            _instance(swap=64), _image(), disks,
            console_log=INST + '/console.log'))

    def test_tcp_serial_ports_the_first_one_logged(self):
        disks = [domain.Disk(INST + '/disk', 'qcow2', 'vda', 'virtio')]
        self.assertGolden('serial-tcp.xml', domain.build(
            _instance(), _image(), disks, console_log=INST + '/console.log',
            serial_ports=[('192.0.2.5', 10300), ('192.0.2.5', 10301)]))

    def test_spice_alone_with_its_agent(self):
        self.flags(enabled=False, group='vnc')
        self.flags(enabled=True, server_listen='192.0.2.5',
                   image_compression='auto_glz', streaming_mode='filter',
                   playback_compression=True, require_secure=True,
                   group='spice')
        disks = [domain.Disk(INST + '/disk', 'qcow2', 'vda', 'virtio')]
        self.assertGolden('spice.xml', domain.build(
            _instance(), _image(), disks, console_log=INST + '/console.log'))

    def test_cpu_mode(self):
        disks = [domain.Disk(INST + '/disk', 'qcow2', 'vda', 'virtio')]
        self.flags(virt_type='qemu', group='altdriver')
        xml = etree.fromstring(domain.build(_instance(), _image(), disks))
        self.assertIsNone(xml.find('cpu'))
        self.flags(cpu_mode='host-passthrough', group='altdriver')
        xml = etree.fromstring(domain.build(_instance(), _image(), disks))
        self.assertEqual('host-passthrough', xml.find('cpu').get('mode'))

    def test_rescue_style_boot_order(self):
        disks = [domain.Disk(INST + '/disk', 'qcow2', 'vda', 'virtio'),
                 domain.Disk(INST + '/disk.rescue', 'qcow2', 'sda', 'usb',
                             boot_order=1)]
        xml = etree.fromstring(domain.build(_instance(), _image(), disks))
        rescue = xml.find("devices/disk/target[@dev='sda']/..")
        self.assertEqual('1', rescue.find('boot').get('order'))


QOS = {'quota:disk_read_iops_sec': '500',
       'quota:disk_write_iops_sec': '250',
       'quota:disk_total_bytes_sec': '10485760',
       'quota:vif_inbound_average': '1024',
       'quota:vif_inbound_peak': '2048',
       'quota:vif_inbound_burst': '512',
       'quota:vif_outbound_average': '768',
       'quota:cpu_shares': '2048',
       'quota:cpu_quota': '50000',
       'quota:cpu_period': '100000'}


class QosTest(GoldenTestCase):
    """The flavor's quota:* extra specs, and a volume's QoS specs."""

    VOLUME = 'a1b2c3d4-0000-4000-8000-000000000001'
    LOCAL = [domain.Disk(INST + '/disk', 'qcow2', 'vda', 'virtio'),
             domain.Disk(INST + '/disk.local', 'qcow2', 'vdb', 'virtio'),
             domain.Disk(INST + '/disk.swap', 'qcow2', 'vdc', 'virtio'),
             domain.Disk(INST + '/disk.config', 'raw', 'hda', 'ide',
                         device='cdrom')]

    def xml(self, extra_specs, disks=LOCAL, vif_types=()):
        instance = _instance(extra_specs=extra_specs)
        return domain.build(
            instance, _image(), disks,
            [vifs.interface(_vif(vif_type), _image(), instance.flavor)
             for vif_type in vif_types],
            console_log=INST + '/console.log')

    def volume(self, qos_specs):
        return volumes.volume_disk(builders.rbd_connection_info(
            self.VOLUME, qos_specs=qos_specs), 'vdd', 'virtio')

    @staticmethod
    def limits(el):
        return [(limit.tag, limit.text) for limit in el.iterfind('*')]

    def test_a_flavor_with_every_family(self):
        self.assertGolden('qos.xml', self.xml(
            QOS, self.LOCAL + [self.volume({'total_iops_sec': '100'})],
            vif_types=('ovs', 'tap')))

    def test_every_local_disk_takes_the_flavor_s_disk_limits(self):
        xml = etree.fromstring(self.xml(QOS))
        expected = [('read_iops_sec', '500'), ('write_iops_sec', '250'),
                    ('total_bytes_sec', '10485760')]
        for disk in xml.iterfind('devices/disk'):
            self.assertEqual(expected, self.limits(disk.find('iotune')))

    def test_a_volume_keeps_its_own_limits_only(self):
        xml = etree.fromstring(self.xml(QOS, [
            self.volume({'read_bytes_sec': '1000'}), self.volume(None)]))
        with_qos, without = xml.iterfind('devices/disk')
        self.assertEqual([('read_bytes_sec', '1000')],
                         self.limits(with_qos.find('iotune')))
        self.assertIsNone(without.find('iotune'))

    def test_only_the_disk_specs_nova_validates(self):
        # (a volume's QoS specs may set these; nova's API refuses them in
        # a flavor, and the in-tree driver ignores them there)
        xml = etree.fromstring(self.xml({
            'quota:disk_read_bytes_sec_max': '1000',
            'quota:disk_size_iops_sec': '4096',
            'quota:disk_io_limit': '10'}))
        self.assertIsNone(xml.find('devices/disk/iotune'))

    def test_cputune_only_as_the_flavor_says(self):
        xml = etree.fromstring(self.xml({}))
        self.assertIsNone(xml.find('cputune'))  # no default shares
        xml = etree.fromstring(self.xml({'quota:cpu_period': '20000'}))
        self.assertEqual([('period', '20000')],
                         self.limits(xml.find('cputune')))

    def test_bandwidth_of_ovs_ports_not_of_tap_ports(self):
        xml = etree.fromstring(self.xml(QOS, vif_types=('ovs', 'tap')))
        ovs, tap = xml.iterfind('devices/interface')
        self.assertEqual(
            [('inbound', {'average': '1024', 'peak': '2048',
                          'burst': '512'}),
             ('outbound', {'average': '768'})],
            [(el.tag, dict(el.attrib)) for el in ovs.find('bandwidth')])
        self.assertIsNone(tap.find('bandwidth'))

    def test_a_direction_only_with_its_average(self):
        xml = etree.fromstring(self.xml({
            'quota:vif_inbound_peak': '2048',
            'quota:vif_outbound_average': '768',
            'quota:vif_outbound_burst': '64'}, vif_types=('ovs',)))
        self.assertEqual(
            [('outbound', {'average': '768', 'burst': '64'})],
            [(el.tag, dict(el.attrib)) for el in
             xml.find('devices/interface/bandwidth')])
        xml = etree.fromstring(self.xml({'quota:vif_inbound_peak': '2048'},
                                        vif_types=('ovs',)))
        self.assertIsNone(xml.find('devices/interface/bandwidth'))

    def test_an_inbound_average_alone_is_also_the_peak(self):
        # libvirt gives OVS an average as a guarantee, a peak as the cap
        xml = etree.fromstring(self.xml({
            'quota:vif_inbound_average': '512',
            'quota:vif_outbound_average': '768'}, vif_types=('ovs',)))
        self.assertEqual(
            [('inbound', {'average': '512', 'peak': '512'}),
             ('outbound', {'average': '768'})],
            [(el.tag, dict(el.attrib)) for el in
             xml.find('devices/interface/bandwidth')])

    def test_the_edges_nova_s_validators_allow_reach_libvirt(self):
        # 0 (each spec's minimum: "no limit" to libvirt), a negative CPU
        # quota (no limit either) and a value past any host's: libvirt
        # judges them, as with the in-tree driver.
        huge = str(2 ** 64)
        edges = {'quota:disk_%s_%s_sec' % (stat, metric): value
                 for stat, metric, value in (
                     ('read', 'bytes', '0'), ('read', 'iops', huge),
                     ('write', 'bytes', huge), ('write', 'iops', '0'),
                     ('total', 'bytes', '0'), ('total', 'iops', '0'))}
        edges.update({'quota:vif_%s_%s' % (direction, name): value
                      for direction, value in (('inbound', '0'),
                                               ('outbound', huge))
                      for name in ('average', 'peak', 'burst')})
        edges.update({'quota:cpu_shares': '0', 'quota:cpu_period': '0',
                      'quota:cpu_quota': '-1'})
        validators.load_validators()
        for name, value in edges.items():
            validators.validate(name, value)  # nova's API takes them
        xml = etree.fromstring(self.xml(edges, vif_types=('ovs',)))
        self.assertEqual(
            [('read_bytes_sec', '0'), ('read_iops_sec', huge),
             ('write_bytes_sec', huge), ('write_iops_sec', '0'),
             ('total_bytes_sec', '0'), ('total_iops_sec', '0')],
            self.limits(xml.find('devices/disk/iotune')))
        self.assertEqual(
            [('inbound', {'average': '0', 'peak': '0', 'burst': '0'}),
             ('outbound', {'average': huge, 'peak': huge, 'burst': huge})],
            [(el.tag, dict(el.attrib)) for el in
             xml.find('devices/interface/bandwidth')])
        self.assertEqual([('shares', '0'), ('quota', '-1'), ('period', '0')],
                         self.limits(xml.find('cputune')))


class RescueDisksTest(GoldenTestCase):
    """The rescue domain's disks: legacy and stable device rescue."""

    ROOT = domain.Disk(INST + '/disk', 'qcow2', 'vda', 'virtio')
    RESCUE = INST + '/disk.rescue'

    def rescue_xml(self, disks):
        return domain.build(_instance(), _image(), disks,
                            console_log=INST + '/console.log')

    def test_legacy_with_a_vfat_config_drive(self):
        # (the config drive on the disk bus: vdb, where the root disk goes)
        config_drive = [domain.Disk(INST + '/disk.config.rescue', 'raw',
                                    'vdb', 'virtio')]
        self.assertGolden('rescue-legacy-vfat.xml', self.rescue_xml(
            domain.rescue_disks(self.RESCUE, self.ROOT, [], config_drive,
                                {})))

    def test_legacy_on_the_rescue_image_s_bus(self):
        disks = domain.rescue_disks(self.RESCUE, self.ROOT, [], [],
                                    {'hw_disk_bus': 'scsi'})
        self.assertEqual([('sda', 'scsi'), ('vda', 'virtio')],
                         [(d.dev, d.bus) for d in disks])

    def test_stable_keeps_every_original_device(self):
        others = [domain.Disk(INST + '/disk.local', 'qcow2', 'vdb', 'virtio'),
                  domain.Disk(INST + '/disk.swap', 'qcow2', 'vdc', 'virtio')]
        config_drive = [domain.Disk(INST + '/disk.config.rescue', 'raw',
                                    'hda', 'ide', device='cdrom')]
        self.assertGolden('rescue-stable.xml', self.rescue_xml(
            domain.rescue_disks(self.RESCUE, self.ROOT, others, config_drive,
                                {'hw_rescue_device': 'disk'})))

    def test_stable_on_another_bus_as_a_cdrom(self):
        disks = domain.rescue_disks(
            self.RESCUE, self.ROOT, [], [],
            {'hw_rescue_bus': 'usb', 'hw_rescue_device': 'cdrom'})
        self.assertEqual(
            [self.ROOT, domain.Disk(self.RESCUE, 'qcow2', 'sda', 'usb',
                                    device='cdrom', boot_order=1)], disks)


class SerialPortCountTest(base.TestCase):

    def test_nova_s_rules_up_to_what_qemu_gives(self):
        flavor = _instance().flavor
        self.assertEqual(1, domain.serial_port_count(flavor, _image()))
        self.assertEqual(2, domain.serial_port_count(
            flavor, _image(hw_serial_port_count=2)))
        flavor.extra_specs = {'hw:serial_port_count': '3'}
        self.assertEqual(3, domain.serial_port_count(flavor, _image()))
        error = self.assertRaises(exception.InvalidInput,
                                  domain.serial_port_count, flavor,
                                  _image(hw_serial_port_count=4))
        self.assertIn('Forbidden to exceed flavor value', str(error))
        flavor.extra_specs = {}
        error = self.assertRaises(exception.InvalidInput,
                                  domain.serial_port_count, flavor,
                                  _image(hw_serial_port_count=4))
        self.assertIn('at most 3 serial ports', str(error))


class LastFreeDeviceNameTest(base.TestCase):

    def test_from_the_end(self):
        self.assertEqual('sdz', domain.last_free_device_name('scsi', set()))
        self.assertEqual('sdy', domain.last_free_device_name('scsi', {'sdz'}))
        self.assertEqual('hdd', domain.last_free_device_name('ide', {'hda'}))

    def test_none_left(self):
        used = {'hda', 'hdb', 'hdc', 'hdd'}
        self.assertRaises(exception.InvalidInput,
                          domain.last_free_device_name, 'ide', used)
