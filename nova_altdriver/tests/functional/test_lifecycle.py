"""Servers booted and deleted through nova's API on the libvirt test driver."""

import hashlib
import os
import shutil
import subprocess
import uuid

from nova import context as nova_context
from nova import exception
from nova.network import model as network_model
from nova import objects
from nova import utils

from nova_altdriver.tests import builders
from nova_altdriver.tests.functional import base


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
        self.assertEqual(cached, builders.backing_file(root))
        self.assertTrue(os.path.exists(
            os.path.join(self.instance_dir(server), 'disk.info')))

        usage = self._get_provider_usages(
            self._get_provider_uuid_by_host('compute1'))
        self.assertEqual({'VCPU': 2, 'MEMORY_MB': 256, 'DISK_GB': 1}, usage)

        self._delete_server(server)
        self.assertNothingLeft(server)
        self.assertTrue(os.path.exists(cached))  # for the next boot

    def test_raw_root_disk_is_a_full_copy(self):
        self.flags(use_cow_images=False)
        server = self._create_server(image_uuid=self.image_id,
                                     flavor_id=self.flavor_id,
                                     networks='none')
        disk = self.domain_xml(self.compute, server).find(
            "devices/disk[@device='disk']")
        self.assertEqual('raw', disk.find('driver').get('type'))
        root = disk.find('source').get('file')
        self.assertIsNone(builders.backing_file(root))
        self.assertEqual(2 ** 30, os.path.getsize(root))  # the flavor's 1 GiB

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


class ImageKindsTest(base.TestCase):
    """Amazon-style images and signed ones, which the in-tree driver takes
    too.
    """

    def setUp(self):
        super().setUp()
        # the scheduler asks Placement for the image type's trait
        self.flags(query_placement_for_image_type_support=True,
                   group='scheduler')
        self.compute = self.start_compute()
        self.flavor_id = self.small_flavor()

    def small_file(self, name, size=1 << 20):
        path = os.path.join(self._state_dir, name)
        with open(path, 'wb') as f:
            f.truncate(size)
        return path

    def test_an_ami_boots_its_kernel_and_its_snapshot_keeps_them(self):
        rp = self._get_provider_uuid_by_host('compute1')
        self.assertIn('COMPUTE_IMAGE_TYPE_AMI', self._get_provider_traits(rp))
        kernel = self.upload_image(self.small_file('kernel'), 'aki')
        ramdisk = self.upload_image(self.small_file('ramdisk'), 'ari')
        ami = self.upload_image(self.small_file('disk.img', 32 << 20), 'ami',
                                kernel_id=kernel, ramdisk_id=ramdisk)
        server = self._create_server(image_uuid=ami, flavor_id=self.flavor_id,
                                     networks='none')

        xml = self.domain_xml(self.compute, server)
        self.assertTrue(xml.findtext('os/kernel').endswith('.boot'))
        self.assertTrue(xml.findtext('os/initrd').endswith('.boot'))
        # the AMI is a raw disk: the root disk an overlay of its copy
        root = os.path.join(self.instance_dir(server), 'disk')
        self.assertEqual(os.path.join(self.base_dir(), builders.base_name(
            ami)), builders.backing_file(root))

        # (stopped: the test driver takes no live snapshot)
        self._stop_server(server)
        image = self.create_snapshot(server)
        # as in-tree: the source's container, the copy's own disk format
        # (Glance's v2 API takes the mix), the kernel and ramdisk to boot it
        self.assertEqual(('ami', 'qcow2'), (image['container_format'],
                                            image['disk_format']))
        self.assertEqual((kernel, ramdisk), (
            image['properties']['kernel_id'],
            image['properties']['ramdisk_id']))

    def test_trusted_certificates_reach_every_download(self):
        downloads = {}
        download = self.glance.download

        def recording(context, image_id, trusted_certs=None, **kwargs):
            downloads[image_id] = trusted_certs and trusted_certs.ids
            return download(context, image_id, trusted_certs=trusted_certs,
                            **kwargs)
        self.glance.download = recording
        kernel = self.upload_image(self.small_file('kernel'), 'aki')
        image = self.upload_image(self.make_qcow2(), kernel_id=kernel)
        certs = ['cert-one', 'cert-two']
        body = self._build_server(image_uuid=image, flavor_id=self.flavor_id,
                                  networks='none')
        body['trusted_image_certificates'] = certs
        with utils.temporary_mutation(self.api, microversion='2.63'):
            server = self.api.post_server({'server': body})
        self._wait_for_state_change(server, 'ACTIVE')
        # nova's Glance client verifies each download's signature with them
        self.assertEqual({image: certs, kernel: certs}, downloads)


class NetworkAndRecoveryTest(base.TestCase):

    def setUp(self):
        super().setUp()
        self.compute = self.start_compute()
        self.image_id = self.upload_image(self.make_qcow2())
        self.flavor_id = self.small_flavor()
        self.ctxt = nova_context.get_admin_context()

    def test_boot_with_a_tap_port(self):
        port = self.neutron_port('tap')
        server = self._create_server(image_uuid=self.image_id,
                                     flavor_id=self.flavor_id,
                                     networks=[{'port': port['id']}])
        interface = self.domain_xml(self.compute, server).find(
            'devices/interface')
        self.assertEqual('ethernet', interface.get('type'))
        self.assertEqual('fa:16:3e:00:12:34',
                         interface.find('mac').get('address'))
        self.assertEqual('tap' + port['id'][:11],
                         interface.find('target').get('dev'))
        self._delete_server(server)

    def test_unsupported_port_fails_and_leaves_nothing(self):
        port = self.neutron_port('vrouter')
        server = self._create_server(image_uuid=self.image_id,
                                     flavor_id=self.flavor_id,
                                     networks=[{'port': port['id']}],
                                     expected_state='ERROR')
        self.assertFalse(os.path.exists(self.instance_dir(server)))
        self.assertEqual([], self.hypervisor_of(self.compute).listAllDomains())

    def _server_without_domain(self):
        """A server whose disks exist but whose domain vanished (a host
        sharing the instances path, or a failure between two steps).
        """
        server = self._create_server(image_uuid=self.image_id,
                                     flavor_id=self.flavor_id,
                                     networks='none')
        dom = self.hypervisor_of(self.compute).lookupByUUIDString(
            server['id'])
        dom.destroy()
        dom.undefine()
        return objects.Instance.get_by_uuid(self.ctxt, server['id'])

    def _failing_spawn(self, instance):
        bad_vif = network_model.VIF(
            id=str(uuid.uuid4()), type='vrouter', address='fa:16:3e:0:0:1',
            network=network_model.Network(id=str(uuid.uuid4())))
        self.assertRaises(
            exception.VirtualInterfaceCreateException,
            self.driver_of(self.compute).spawn, self.ctxt, instance,
            instance.image_meta, [], None, {},
            network_model.NetworkInfo([bad_vif]))

    def test_failed_spawn_keeps_disks_it_did_not_create(self):
        instance = self._server_without_domain()
        root = os.path.join(self.instance_dir({'id': instance.uuid}), 'disk')
        # The guest's data: a spawn that recreated the disk would lose it.
        subprocess.run(['qemu-io', '-f', 'qcow2', '-c',
                        'write -P 0x41 0 64k', root],
                       check=True, capture_output=True)
        with open(root, 'rb') as f:
            before = hashlib.sha256(f.read()).hexdigest()

        self._failing_spawn(instance)

        with open(root, 'rb') as f:
            self.assertEqual(before, hashlib.sha256(f.read()).hexdigest())

    def test_failed_spawn_removes_what_it_created(self):
        instance = self._server_without_domain()
        instance_dir = self.instance_dir({'id': instance.uuid})
        shutil.rmtree(instance_dir)

        self._failing_spawn(instance)

        self.assertFalse(os.path.exists(instance_dir))

    def test_spawn_without_power_on_defines_a_stopped_guest(self):
        instance = self._server_without_domain()
        self.driver_of(self.compute).spawn(
            self.ctxt, instance, instance.image_meta, [], None, {},
            power_on=False)
        dom = self.hypervisor_of(self.compute).lookupByUUIDString(
            instance.uuid)
        self.assertFalse(dom.isActive())
        self.assertTrue(dom.isPersistent())


class ImageCacheTest(base.TestCase):

    def setUp(self):
        super().setUp()
        self.compute = self.start_compute()
        self.flavor_id = self.small_flavor()
        self.ctxt = nova_context.get_admin_context()
        self.flags(remove_unused_original_minimum_age_seconds=0,
                   group='image_cache')

    def cached(self, image_id):
        return os.path.exists(os.path.join(
            self.base_dir(), hashlib.sha1(image_id.encode()).hexdigest()))

    def test_unused_images_leave_the_cache(self):
        used = self.upload_image(self.make_qcow2('used.qcow2'))
        unused = self.upload_image(self.make_qcow2('unused.qcow2'))
        server = self._create_server(image_uuid=used,
                                     flavor_id=self.flavor_id,
                                     networks='none')
        self._delete_server(self._create_server(
            image_uuid=unused, flavor_id=self.flavor_id, networks='none'))
        self.assertTrue(self.cached(unused))

        self.compute.manager._run_image_cache_manager_pass(self.ctxt)

        self.assertTrue(self.cached(used))
        self.assertFalse(self.cached(unused))
        self._delete_server(server)

    def test_images_are_precached_on_request(self):
        image_id = self.upload_image(self.make_qcow2())
        aggregate = self._create_aggregate('cache-agg')
        self.admin_api.add_host_to_aggregate(aggregate, 'compute1')
        self.admin_api.api_post('/os-aggregates/%s/images' % aggregate,
                                {'cache': [{'id': image_id}]},
                                check_response_status=[202])
        self._wait_for_assert(lambda: self.assertTrue(self.cached(image_id)))
