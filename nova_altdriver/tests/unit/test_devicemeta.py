"""Device tags: nova's device metadata of a definition's addresses, and
those addresses as Guest reads them from a domain libvirt defined.
"""

import uuid

import libvirt
from nova import objects

from nova_altdriver import devicemeta
from nova_altdriver import guest as guest_mod
from nova_altdriver.tests.unit import base

VOLUME = 'a1b2c3d4-0000-4000-8000-000000000001'
OTHER_VOLUME = 'a1b2c3d4-0000-4000-8000-000000000002'

# where QEMU's libvirt driver would put them; the test driver keeps the
# addresses a definition gives and adds drive addresses itself
DOMAIN_XML = """<domain type='qemu'><name>tags</name><uuid>%s</uuid>
<memory unit='MiB'>128</memory><vcpu>1</vcpu>
<os><type arch='x86_64' machine='pc'>hvm</type></os><devices>
<disk type='file' device='disk'><source file='/i/disk'/>
 <target dev='vda' bus='virtio'/>
 <address type='pci' domain='0x0000' bus='0x00' slot='0x04'
  function='0x0'/></disk>
<disk type='network' device='disk'>
 <source protocol='rbd' name='volumes/volume-%s'/>
 <target dev='sdb' bus='scsi'/><serial>%s</serial></disk>
<disk type='file' device='cdrom'><source file='/i/disk.config'/>
 <target dev='hdd' bus='ide'/></disk>
<disk type='file' device='disk'><source file='/i/disk.local'/>
 <target dev='vdc' bus='virtio'/></disk>
<interface type='ethernet'><mac address='FA:16:3E:00:12:34'/>
 <model type='virtio'/>
 <address type='pci' domain='0x0000' bus='0x00' slot='0x03'
  function='0x0'/></interface>
<interface type='ethernet'><mac address='fa:16:3e:00:56:78'/>
 <model type='virtio'/></interface>
</devices></domain>"""

ADDRESSES = guest_mod.DeviceAddresses(
    nics={'fa:16:3e:00:12:34': guest_mod.DeviceAddress('pci',
                                                       '0000:00:03.0'),
          'fa:16:3e:00:56:78': None},
    disks={'vda': (None, guest_mod.DeviceAddress('pci', '0000:00:04.0')),
           'sdb': (VOLUME, guest_mod.DeviceAddress('scsi', '0:0:0:1')),
           'hdd': (None, guest_mod.DeviceAddress('ide', '1:1')),
           'vdc': (None, None)})


class GuestAddressesTest(base.TestCase):

    def test_where_a_defined_guest_finds_its_nics_and_disks(self):
        conn = libvirt.open(self.uri)
        self.addCleanup(conn.close)
        instance_uuid = str(uuid.uuid4())
        guest = guest_mod.Guest(conn.defineXML(
            DOMAIN_XML % (instance_uuid, VOLUME, VOLUME)))
        self.assertEqual(ADDRESSES, guest.device_addresses(inactive=True))
        guest.start()
        self.assertEqual(ADDRESSES, guest.device_addresses())

    def test_a_definition_without_devices(self):
        self.assertEqual(guest_mod.DeviceAddresses({}, {}),
                         guest_mod.device_addresses_of('<domain/>'))


def vif(mac, tag=None):
    return objects.VirtualInterface(address=mac, tag=tag)


def bdm(device_name, volume_id=None, tag=None):
    return objects.BlockDeviceMapping(device_name=device_name,
                                      volume_id=volume_id, tag=tag)


class MetadataTest(base.TestCase):

    def test_the_tagged_devices_with_their_buses_and_addresses(self):
        devices = devicemeta.metadata(
            ADDRESSES,
            [vif('fa:16:3e:00:12:34', 'public'),
             vif('fa:16:3e:00:56:78', 'private'),
             vif('fa:16:3e:00:99:99')],
            [bdm('/dev/vda', tag='root'), bdm('/dev/sdb', VOLUME, 'data'),
             bdm('/dev/vdc', tag='scratch'), bdm('/dev/vdd')]).devices
        nic, bare_nic, root, volume, scratch = devices
        self.assertEqual(('fa:16:3e:00:12:34', ['public']),
                         (nic.mac, nic.tags))
        self.assertIsInstance(nic.bus, objects.PCIDeviceBus)
        self.assertEqual('0000:00:03.0', nic.bus.address)
        # no address in the definition: no bus, as the in-tree driver
        self.assertEqual(['private'], bare_nic.tags)
        self.assertNotIn('bus', bare_nic)
        self.assertEqual((None, ['root'], '0000:00:04.0'),
                         (root.serial, root.tags, root.bus.address))
        self.assertIsInstance(volume.bus, objects.SCSIDeviceBus)
        self.assertEqual((VOLUME, ['data'], '0:0:0:1'),
                         (volume.serial, volume.tags, volume.bus.address))
        self.assertEqual(['scratch'], scratch.tags)
        self.assertNotIn('bus', scratch)

    def test_a_volume_by_its_id_whatever_its_device_is_named(self):
        volume, = devicemeta.metadata(
            ADDRESSES, [], [bdm('/dev/vdb', VOLUME, 'data')]).devices
        self.assertEqual('0:0:0:1', volume.bus.address)

    def test_a_bus_without_an_address(self):
        addresses = guest_mod.DeviceAddresses({}, {
            'hda': (None, guest_mod.DeviceAddress('ide', None))})
        disk, = devicemeta.metadata(addresses, [],
                                    [bdm('/dev/hda', tag='cd')]).devices
        self.assertIsInstance(disk.bus, objects.IDEDeviceBus)
        self.assertNotIn('address', disk.bus)

    def test_devices_the_guest_has_not_are_left_out(self):
        self.assertIsNone(devicemeta.metadata(
            ADDRESSES, [vif('fa:16:3e:00:00:01', 'gone')],
            [bdm('/dev/vdz', tag='gone'),
             bdm('/dev/sdb', OTHER_VOLUME, 'gone')]))

    def test_no_tags_no_metadata(self):
        self.assertIsNone(devicemeta.metadata(
            ADDRESSES, [vif('fa:16:3e:00:12:34')],
            [bdm('/dev/sdb', VOLUME)]))
