"""Device tags (API 2.42): the tags of a server's ports and volumes, with
where the guest finds each device, in nova's device metadata and in the
config drive's meta_data.json.

libvirt's test driver gives disks on an IDE or SCSI bus their drive
addresses but places nothing on the PCI bus (QEMU's driver does: the e2e
tier sees PCI addresses): a NIC's entry here has no address, as in-tree.
"""

import json
import os
import subprocess
import uuid

from nova import context as nova_context
from nova import objects
from nova.tests import fixtures as nova_fixtures
from nova.tests.functional.api import client
from nova import utils

from nova_altdriver.tests import builders
from nova_altdriver.tests.functional import base

MAC = 'fa:16:3e:00:12:34'


def meta_data_json(iso):
    """meta_data.json of a config drive (ISO 9660, read with isoinfo)."""
    return json.loads(subprocess.run(
        ['isoinfo', '-i', iso, '-R', '-x', '/openstack/latest/meta_data.json'],
        capture_output=True, check=True).stdout)


class DeviceTagsTest(base.TestCase):

    def setUp(self):
        super().setUp()
        self.cinder = self.useFixture(nova_fixtures.CinderFixture(self))
        self.volume_id = str(uuid.uuid4())
        info = builders.rbd_connection_info(self.volume_id)
        info['data']['auth_enabled'] = False  # (no secrets in the test driver)
        self.cinder.VOLUME_CONNECTION_INFO = dict(
            self.cinder.VOLUME_CONNECTION_INFO, **{self.volume_id: info})
        self.compute = self.start_compute()
        # on a SCSI bus: the test driver gives its disks drive addresses
        self.image_id = self.upload_image(self.make_qcow2(),
                                          hw_disk_bus='scsi')
        self.flavor_id = self.small_flavor()
        self.port = self.neutron_port(mac=MAC)

    def boot(self, nic_tag=None, volume_tag=None):
        server = self._build_server(image_uuid=self.image_id,
                                    flavor_id=self.flavor_id,
                                    networks=[dict(port=self.port['id'],
                                                   **({'tag': nic_tag}
                                                      if nic_tag else {}))])
        server['config_drive'] = True
        server['block_device_mapping_v2'] = [
            {'boot_index': 0, 'uuid': self.image_id, 'source_type': 'image',
             'destination_type': 'local'},
            dict({'boot_index': -1, 'uuid': self.volume_id,
                  'source_type': 'volume', 'destination_type': 'volume'},
                 **({'tag': volume_tag} if volume_tag else {}))]
        with utils.temporary_mutation(self.api, microversion='2.42'):
            return self._wait_for_state_change(
                self.api.post_server({'server': server}), 'ACTIVE')

    def device_metadata(self, server):
        return objects.Instance.get_by_uuid(
            nova_context.get_admin_context(), server['id'],
            expected_attrs=['device_metadata']).device_metadata

    def config_drive(self, server):
        return meta_data_json(os.path.join(self.instance_dir(server),
                                           'disk.config'))

    def volume_drive_address(self, server):
        """The volume's drive address in the domain XML, as nova writes
        SCSI addresses (controller:bus:target:unit).
        """
        address, = self.domain_xml(self.compute, server).xpath(
            'devices/disk[serial=$id]/address', id=self.volume_id)
        return ':'.join(address.get(name) for name in
                        ('controller', 'bus', 'target', 'unit'))

    def test_tags_with_where_the_guest_finds_the_devices(self):
        server = self.boot(nic_tag='public', volume_tag='data')
        self.assertEqual('ACTIVE', server['status'])
        nic, = self.domain_xml(self.compute, server).xpath(
            'devices/interface[mac/@address=$mac]', mac=MAC)
        # what libvirt placed the NIC at (the test driver: nowhere)
        self.assertIsNone(nic.find('address'))
        scsi = self.volume_drive_address(server)
        self.assertEqual('0:0:0:1', scsi)

        nic_md, disk_md = self.device_metadata(server).devices
        self.assertIsInstance(nic_md, objects.NetworkInterfaceMetadata)
        self.assertEqual((MAC, ['public']), (nic_md.mac, nic_md.tags))
        self.assertNotIn('bus', nic_md)
        self.assertIsInstance(disk_md, objects.DiskMetadata)
        self.assertEqual((self.volume_id, ['data']),
                         (disk_md.serial, disk_md.tags))
        self.assertIsInstance(disk_md.bus, objects.SCSIDeviceBus)
        self.assertEqual(scsi, disk_md.bus.address)

        # the config drive was made once the guest was defined: it has them
        self.assertEqual([
            {'type': 'nic', 'bus': 'none', 'address': 'none', 'mac': MAC,
             'tags': ['public'], 'vf_trusted': False},
            {'type': 'disk', 'bus': 'scsi', 'address': scsi,
             'serial': self.volume_id, 'tags': ['data']},
        ], self.config_drive(server)['devices'])

        # made again from nova's data (a hard reboot): the same
        self._reboot_server(server, hard=True)
        self.assertEqual(['public', 'data'], [
            d.tags[0] for d in self.device_metadata(server).devices])

    def test_a_server_without_tags_has_no_device_metadata(self):
        server = self.boot()
        self.assertIsNone(self.device_metadata(server))
        self.assertEqual([], self.config_drive(server)['devices'])

    def test_only_the_tagged_devices(self):
        server = self.boot(volume_tag='data')
        devices = self.device_metadata(server).devices
        self.assertEqual([(self.volume_id, ['data'])],
                         [(d.serial, d.tags) for d in devices])

    def test_a_tagged_attach_reaches_libvirt(self):
        # nova lets a tagged attach through to the driver now (2.49); the
        # test driver has no hot plug: the attach fails there, the server
        # and its metadata as they were (e2e attaches for real)
        server = self.boot(nic_tag='public')
        other = self.neutron_port(mac='fa:16:3e:00:56:78')
        with utils.temporary_mutation(self.api, microversion='2.49'):
            ex = self.assertRaises(
                client.OpenStackApiException, self.api.attach_interface,
                server['id'], {'interfaceAttachment': {
                    'port_id': other['id'], 'tag': 'data'}})
        self.assertEqual(500, ex.response.status_code)
        self.assertIn('Failed to attach network adapter', ex.response.text)
        self.assertEqual([(MAC, ['public'])], [
            (d.mac, d.tags) for d in self.device_metadata(server).devices])

    def test_rescue_describes_the_rescue_guest_and_unrescue_the_original(self):
        server = self.boot(nic_tag='public', volume_tag='data')
        self.api.post_server_action(server['id'], {'rescue': {}})
        server = self._wait_for_state_change(server, 'RESCUE')
        # a legacy rescue: the NIC, not the volume
        self.assertEqual([MAC], [
            d.mac for d in self.device_metadata(server).devices])
        self.assertEqual([(MAC, ['public'])], [
            (d['mac'], d['tags']) for d in meta_data_json(os.path.join(
                self.instance_dir(server), 'disk.config.rescue'))['devices']])
        self._unrescue_server(server)
        self.assertEqual(['public', 'data'], [
            d.tags[0] for d in self.device_metadata(server).devices])
