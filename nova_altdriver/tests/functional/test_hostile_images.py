"""Images built to reach the host's files, at every place an image enters:
boot, rescue, kernel and ramdisk, unshelve, and pre-caching. Each is
refused with a clear fault, nothing of the host enters a disk chain, and
nothing is left behind.
"""

import json
import os
import subprocess

import libvirt
from nova import context as nova_context
from nova import objects

from nova_altdriver.tests import builders
from nova_altdriver.tests.functional import base

HOST_FILE = '/etc/shadow'


def backing_chain(path):
    info = subprocess.run(
        ['qemu-img', 'info', '-U', '--backing-chain', '--output=json', path],
        capture_output=True, text=True, check=True).stdout
    return [layer['filename'] for layer in json.loads(info)]


class HostileImageTest(base.TestCase):

    def setUp(self):
        super().setUp()
        self.compute = self.start_compute()
        self.flavor_id = self.small_flavor()
        self.good_image = self.upload_image(self.make_qcow2())

    def qemu_img(self, *args):
        subprocess.run(['qemu-img'] + list(args), check=True,
                       capture_output=True)

    def state_file(self, name, text=None, data=None):
        path = os.path.join(self._state_dir, name)
        with open(path, 'w' if text is not None else 'wb') as f:
            f.write(text if text is not None else data)
        return path

    def hostile_images(self):
        """[(case, Glance image id, what the fault must say)]"""
        backed = os.path.join(self._state_dir, 'backed.qcow2')
        self.qemu_img('create', '-f', 'qcow2', '-F', 'raw', '-b', HOST_FILE,
                      backed, '64M')
        data_file = self.make_qcow2('data-file.qcow2', '64M',
                                    'data_file=%s' % HOST_FILE)
        vmdk = self.state_file('extents.vmdk', text=(
            '# Disk DescriptorFile\nversion=1\nCID=fffffffe\n'
            'parentCID=ffffffff\ncreateType="monolithicFlat"\n'
            'RW 2048 FLAT "%s" 0\n' % HOST_FILE))
        truncated = self.make_qcow2('truncated.qcow2', '64M')
        subprocess.run(['qemu-io', '-f', 'qcow2', '-c',
                        'write -P 7 0 4M', truncated], check=True,
                       capture_output=True)
        with open(truncated, 'r+b') as f:
            f.truncate(os.path.getsize(truncated) // 3)
        raw = self.state_file('zeros.raw', data=b'\0' * 1024 * 1024)
        # a qcow2 whose disk, once converted to raw, is itself a qcow2
        # backed by a host file
        nested = os.path.join(self._state_dir, 'nested.qcow2')
        self.qemu_img('convert', '-f', 'raw', '-O', 'qcow2', backed, nested)
        return [
            ('qcow2 backed by a host file',
             self.upload_image(backed, 'qcow2'), 'safety check'),
            ('qcow2 with an external data file',
             self.upload_image(data_file, 'qcow2'), 'safety check'),
            ('vmdk whose extents name a host file',
             self.upload_image(vmdk, 'vmdk'), 'is unacceptable'),
            ('qcow2 bytes declared raw',
             self.upload_image(backed, 'raw'), 'is unacceptable'),
            ('raw bytes declared qcow2',
             self.upload_image(raw, 'qcow2'), 'is unacceptable'),
            ('truncated qcow2',
             self.upload_image(truncated, 'qcow2'), 'integrity check'),
            ('qcow2 holding a qcow2 backed by a host file',
             self.upload_image(nested, 'qcow2'), 'format is now qcow2'),
        ]

    def assertNotCached(self, case, image_id):
        name = builders.base_name(image_id)
        self.assertEqual([], [n for n in os.listdir(self.base_dir())
                              if n.startswith(name)], case)
        self.assertEqual([], [n for n in os.listdir(self.base_dir())
                              if n.endswith(('.tmp', '.part',
                                             '.converted'))], case)

    def assertNoHostFileInChains(self):
        """No disk of any instance reaches a file outside this host's
        instances path.
        """
        for name in os.listdir(self.instances_path):
            directory = os.path.join(self.instances_path, name)
            if not os.path.isdir(directory) or name in ('_base', 'locks'):
                continue
            for disk in os.listdir(directory):
                if disk.startswith('disk') and disk != 'disk.info':
                    for layer in backing_chain(
                            os.path.join(directory, disk)):
                        self.assertTrue(layer.startswith(
                            self.instances_path), layer)

    def test_boot(self):
        for case, image_id, reason in self.hostile_images():
            server = self._create_server(
                image_uuid=image_id, flavor_id=self.flavor_id,
                networks='none', expected_state='ERROR')
            self.assertIn(reason, server['fault']['message'], case)
            self.assertFalse(os.path.exists(self.instance_dir(server)), case)
            self.assertNotCached(case, image_id)
            self._delete_server(server)
        self.assertEqual([], self.hypervisor_of(self.compute).listAllDomains())

    def test_a_disk_too_big_for_the_flavor(self):
        image_id = self.upload_image(self.make_qcow2('big.qcow2', '2G'))
        server = self._create_server(
            image_uuid=image_id, flavor_id=self.flavor_id, networks='none',
            expected_state='ERROR')
        self.assertIn('Flavor\'s disk is too small',
                      server['fault']['message'])
        self.assertFalse(os.path.exists(self.instance_dir(server)))

    def test_rescue(self):
        server = self._create_server(image_uuid=self.good_image,
                                     flavor_id=self.flavor_id,
                                     networks='none')
        dom = self.hypervisor_of(self.compute).lookupByUUIDString(
            server['id'])
        for case, image_id, reason in self.hostile_images():
            self.api.post_server_action(server['id'], {
                'rescue': {'rescue_image_ref': image_id}})
            server = self._wait_for_state_change(server, 'ERROR')
            self.assertIn('cannot be rescued', server['fault']['message'],
                          case)
            self.assertEqual(['disk', 'disk.info'],
                             sorted(os.listdir(self.instance_dir(server))),
                             case)
            self.assertNotCached(case, image_id)
            # back with nova's ordinary actions
            self.admin_api.post_server_action(server['id'], {
                'os-resetState': {'state': 'active'}})
            self._reboot_server(server, hard=True)
            self.assertEqual(libvirt.VIR_DOMAIN_RUNNING, dom.state()[0])
        self.assertNoHostFileInChains()

    def test_an_image_first_seen_as_a_kernel_is_inspected_as_a_disk(self):
        backed = os.path.join(self._state_dir, 'backed.qcow2')
        self.qemu_img('create', '-f', 'qcow2', '-F', 'raw', '-b', HOST_FILE,
                      backed, '64M')
        kernel = self.upload_image(backed, 'aki')
        with_kernel = self.upload_image(self.make_qcow2(), 'qcow2',
                                        kernel_id=kernel)
        self._create_server(image_uuid=with_kernel,
                            flavor_id=self.flavor_id, networks='none')
        # QEMU loads a kernel as a file, never through its block layer:
        # kept apart from the disk bases.
        self.assertTrue(os.path.exists(os.path.join(
            self.base_dir(), builders.base_name(kernel) + '.boot')))

        server = self._create_server(image_uuid=kernel,
                                     flavor_id=self.flavor_id,
                                     networks='none', expected_state='ERROR')
        self.assertIn('safety check', server['fault']['message'])
        self.assertFalse(os.path.exists(os.path.join(
            self.base_dir(), builders.base_name(kernel))))
        other = self._create_server(image_uuid=self.good_image,
                                    flavor_id=self.flavor_id,
                                    networks='none')
        self.api.post_server_action(other['id'], {
            'rescue': {'rescue_image_ref': kernel}})
        self._wait_for_state_change(other, 'ERROR')
        self.assertNoHostFileInChains()

    def test_unshelve_of_a_replaced_shelve_image(self):
        self.flags(shelved_offload_time=0)
        server = self._create_server(image_uuid=self.good_image,
                                     flavor_id=self.flavor_id,
                                     networks='none')
        self._shelve_server(server)
        shelve_image = objects.Instance.get_by_uuid(
            nova_context.get_admin_context(),
            server['id']).system_metadata['shelved_image_id']
        backed = os.path.join(self._state_dir, 'backed.qcow2')
        self.qemu_img('create', '-f', 'qcow2', '-F', 'raw', '-b', HOST_FILE,
                      backed, '64M')
        with open(backed, 'rb') as f:
            self.image_data[shelve_image] = f.read()

        self.api.post_server_action(server['id'], {'unshelve': None})
        server = self._wait_for_unshelve_failure(server)
        self.assertNotCached('shelve image', shelve_image)
        self.assertFalse(os.path.exists(self.instance_dir(server)))
        self.assertEqual([], self.hypervisor_of(self.compute).listAllDomains())

    def _wait_for_unshelve_failure(self, server):
        self._wait_for_instance_action_event(
            server, 'unshelve', 'compute_unshelve_instance', 'Error')
        return self._wait_for_state_change(server, 'SHELVED_OFFLOADED')

    def test_pre_caching(self):
        aggregate = self._create_aggregate('cache-agg')
        self.admin_api.add_host_to_aggregate(aggregate, 'compute1')
        cases = self.hostile_images()
        self.admin_api.api_post('/os-aggregates/%s/images' % aggregate,
                                {'cache': [{'id': image_id}
                                           for _, image_id, _ in cases]},
                                check_response_status=[202])
        good = self.good_image
        self.admin_api.api_post('/os-aggregates/%s/images' % aggregate,
                                {'cache': [{'id': good}]},
                                check_response_status=[202])
        self._wait_for_assert(lambda: self.assertTrue(os.path.exists(
            os.path.join(self.base_dir(), builders.base_name(good)))))
        # (nova fetches several images at a time: the refusals may still
        # be on their way)
        for case, image_id, _reason in cases:
            self._wait_for_assert(
                lambda: self.assertNotCached(case, image_id))


class OddNamesAndDevicesTest(base.TestCase):

    def setUp(self):
        super().setUp()
        self.compute = self.start_compute()
        self.flavor_id = self.small_flavor()

    def test_a_name_made_of_markup_stays_a_name(self):
        name = '</nova:name><devices><disk/></devices> "&\' disk.rescue ü'
        image_id = self.upload_image(self.make_qcow2())
        server = self._create_server(name=name, image_uuid=image_id,
                                     flavor_id=self.flavor_id,
                                     networks='none')
        xml = self.domain_xml(self.compute, server)
        self.assertEqual(name, xml.findtext(
            'metadata/{http://openstack.org/xmlns/libvirt/nova/1.1}instance/'
            '{http://openstack.org/xmlns/libvirt/nova/1.1}name'))
        self.assertEqual(1, len(xml.findall('devices/disk')))
        self.api.post_server_action(server['id'], {'rescue': {}})
        self._wait_for_state_change(server, 'RESCUE')
        self._unrescue_server(server)
        self.assertEqual(1, len(self.domain_xml(
            self.compute, server).findall('devices/disk')))

    def test_buses_the_driver_has_no_devices_for(self):
        image_id = self.upload_image(self.make_qcow2(), hw_disk_bus='fdc')
        server = self._create_server(image_uuid=image_id,
                                     flavor_id=self.flavor_id,
                                     networks='none', expected_state='ERROR')
        self.assertIn('nova_altdriver has no device for disk 1 on bus',
                      server['fault']['message'])
        self.assertFalse(os.path.exists(self.instance_dir(server)))

        good = self.upload_image(self.make_qcow2())
        server = self._create_server(image_uuid=good,
                                     flavor_id=self.flavor_id,
                                     networks='none')
        rescue = self.upload_image(self.make_qcow2('rescue.qcow2'),
                                   hw_rescue_bus='uml')
        self.api.post_server_action(server['id'], {
            'rescue': {'rescue_image_ref': rescue}})
        server = self._wait_for_state_change(server, 'ERROR')
        self.assertIn('nova_altdriver has no device for disk 1 on bus',
                      server['fault']['message'])
        self.admin_api.post_server_action(server['id'], {
            'os-resetState': {'state': 'active'}})
        self._reboot_server(server, hard=True)
        self.assertEqual(['disk', 'disk.info'],
                         sorted(os.listdir(self.instance_dir(server))))
