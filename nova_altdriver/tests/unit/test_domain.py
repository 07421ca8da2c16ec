"""Golden-file tests of the domain XML for representative servers.

Regenerate after an intended change with ALTDRIVER_REGEN_GOLDEN=1 and read
the diff before committing it.
"""

import os
import re

from lxml import etree
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
        self.assertGolden('plain-kvm.xml', domain.build(
            _instance(ephemeral_gb=1, swap=64), _image(), disks,
            [vifs.interface(_vif('ovs', port_filter=True), _image())],
            console_log=INST + '/console.log'))

    def test_uefi_q35_scsi_agent_e1000(self):
        image = _image(hw_firmware_type='uefi', hw_machine_type='q35',
                       hw_disk_bus='scsi', hw_qemu_guest_agent=True,
                       hw_vif_model='e1000')
        disks = [domain.Disk(INST + '/disk', 'raw', 'sda', 'scsi')]
        self.assertGolden('uefi-q35-scsi.xml', domain.build(
            _instance(memory_mb=2048, vcpus=4), image, disks,
            [vifs.interface(_vif('tap'), image)],
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


class LastFreeDeviceNameTest(base.TestCase):

    def test_from_the_end(self):
        self.assertEqual('sdz', domain.last_free_device_name('scsi', set()))
        self.assertEqual('sdy', domain.last_free_device_name('scsi', {'sdz'}))
        self.assertEqual('hdd', domain.last_free_device_name('ide', {'hda'}))

    def test_none_left(self):
        used = {'hda', 'hdb', 'hdc', 'hdd'}
        self.assertRaises(exception.InvalidInput,
                          domain.last_free_device_name, 'ide', used)
