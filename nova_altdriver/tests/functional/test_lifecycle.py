"""Servers booted and deleted through nova's API on the libvirt test driver."""

import hashlib
import json
import os
import subprocess

from nova_altdriver.tests.functional import base


def backing_file(path):
    info = subprocess.run(['qemu-img', 'info', '--output=json', path],
                          capture_output=True, text=True, check=True).stdout
    return json.loads(info).get('backing-filename')


class SpawnDestroyTest(base.TestCase):

    def setUp(self):
        super().setUp()
        self.compute = self.start_compute()
        self.image_id = self.upload_image(self.make_qcow2())
        self.flavor_id = self._create_flavor(memory_mb=256, vcpu=2, disk=1,
                                             ephemeral=0)

    def assertNothingLeft(self, server):
        self.assertFalse(os.path.exists(self.instance_dir(server)))
        self.assertNotIn(server['id'],
                         [d.UUIDString() for d in
                          self.hypervisor_of(self.compute).listAllDomains()])

    def test_boot_and_delete(self):
        server = self._create_server(image_uuid=self.image_id,
                                     flavor_id=self.flavor_id,
                                     networks='none')
        self.assertEqual('ACTIVE', server['status'])

        xml = self.domain_xml(self.compute, server)
        self.assertEqual('qemu', xml.get('type'))
        self.assertEqual(server['OS-EXT-SRV-ATTR:instance_name'],
                         xml.findtext('name'))
        self.assertEqual(str(256 * 1024), xml.findtext('memory'))
        self.assertEqual('2', xml.findtext('vcpu'))
        disk = xml.find("devices/disk[@device='disk']")
        root = os.path.join(self.instance_dir(server), 'disk')
        self.assertEqual(root, disk.find('source').get('file'))
        self.assertEqual('vda', disk.find('target').get('dev'))
        self.assertEqual('qcow2', disk.find('driver').get('type'))
        # A copy-on-write overlay of the cached image, grown to the flavor.
        cached = os.path.join(self.base_dir(),
                              hashlib.sha1(self.image_id.encode()).hexdigest())
        self.assertEqual(cached, backing_file(root))
        self.assertTrue(os.path.exists(
            os.path.join(self.instance_dir(server), 'disk.info')))

        usage = self._get_provider_usages(
            self._get_provider_uuid_by_host('compute1'))
        self.assertEqual({'VCPU': 2, 'MEMORY_MB': 256, 'DISK_GB': 1}, usage)

        self._delete_server(server)
        self.assertNothingLeft(server)
        self.assertTrue(os.path.exists(cached))  # for the next boot

    def test_bad_images_fail_clearly_and_leave_nothing(self):
        data_file = self.make_qcow2('data-file.qcow2', '64M',
                                    'data_file=%s' % os.path.join(
                                        self._state_dir, 'external.raw'))
        backed = os.path.join(self._state_dir, 'backed.qcow2')
        subprocess.run(['qemu-img', 'create', '-q', '-f', 'qcow2', '-F',
                        'qcow2', '-b', self.make_qcow2(), backed],
                       check=True)
        empty = os.path.join(self._state_dir, 'empty')
        open(empty, 'w').close()
        # An unacceptable image is never cached; a valid one too big for
        # this flavor is, for other flavors.
        cases = [
            ('qcow2 declared raw', self.make_qcow2(), 'raw',
             'is unacceptable', False),
            ('backing file', backed, 'qcow2', 'safety check', False),
            ('external data file', data_file, 'qcow2', 'safety check',
             False),
            ('empty download', empty, 'qcow2', 'is unacceptable', False),
            ('bigger than the flavor', self.make_qcow2('big.qcow2', '2G'),
             'qcow2', 'Flavor\'s disk is too small', True),
        ]
        for name, path, disk_format, reason, cached in cases:
            image_id = self.upload_image(path, disk_format)
            server = self._create_server(
                image_uuid=image_id, flavor_id=self.flavor_id,
                networks='none', expected_state='ERROR')
            self.assertIn(reason, server['fault']['message'], name)
            self.assertNothingLeft(server)
            self.assertEqual(cached, os.path.exists(os.path.join(
                self.base_dir(),
                hashlib.sha1(image_id.encode()).hexdigest())), name)
