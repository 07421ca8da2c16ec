"""Golden-file tests of the domain XML for representative servers.

Regenerate after an intended change with ALTDRIVER_REGEN_GOLDEN=1 and read
the diff before committing it.
"""

import os
import re

from lxml import etree
from nova import objects

from nova_altdriver import domain
from nova_altdriver.tests.unit import base
from nova_altdriver import vifs

GOLDEN = os.path.join(os.path.dirname(__file__), 'golden')
UUID = 'f0b9b3f6-9f7e-4f0f-8a54-2a0c2b1c0d11'
INST = '/var/lib/nova/instances/' + UUID


def _instance(memory_mb=512, vcpus=1, **flavor):
    flavor = objects.Flavor(name='m1.test', flavorid='42',
                            memory_mb=memory_mb, vcpus=vcpus,
                            root_gb=flavor.get('root_gb', 1),
                            ephemeral_gb=flavor.get('ephemeral_gb', 0),
                            swap=flavor.get('swap', 0), extra_specs={})
    return objects.Instance(uuid=UUID, id=1, display_name='golden',
                            user_id='user-1', project_id='project-1',
                            flavor=flavor)


def _image(**properties):
    return objects.ImageMeta.from_dict(
        {'id': '6b0a1e2c-3a6e-4a8a-9c2f-1b2c3d4e5f60',
         'disk_format': 'qcow2', 'properties': properties})


def _vif(vif_type, **details):
    from nova.network import model
    return model.VIF(
        id='5c1d0f2a-7e3b-4c1d-9a8b-0e1f2a3b4c5d', address='fa:16:3e:00:00:01',
        type=vif_type, devname='tap5c1d0f2a-7e', details=details,
        network=model.Network(id='1f6a1c2e-0b1d-4c8e-9f00-aa55aa55aa55',
                              bridge='br-int',
                              meta={'mtu': 1450}))


class GoldenXMLTest(base.TestCase):

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
