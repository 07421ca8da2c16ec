"""Rebuild and evacuate through nova's API: two compute hosts in one
process, each on a private test-driver hypervisor, sharing an instances
path or not."""

import hashlib
import os
import subprocess

import fixtures

from nova_altdriver import lifecycle
from nova_altdriver.tests import builders
from nova_altdriver.tests.functional import base


def digest(path):
    with open(path, 'rb') as f:
        return hashlib.sha256(f.read()).hexdigest()


class RebuildTest(base.TestCase):

    def setUp(self):
        super().setUp()
        self.compute = self.start_compute()
        self.image_a = self.upload_image(self.make_qcow2('a.qcow2'))
        self.image_b = self.upload_image(self.make_qcow2('b.qcow2'))
        flavor = self.small_flavor()
        self.server = self._create_server(image_uuid=self.image_a,
                                          flavor_id=flavor, networks='none')
        self.root = os.path.join(self.instance_dir(self.server), 'disk')

    def test_rebuild_replaces_the_root_disk_and_keeps_the_identity(self):
        name = self.domain_xml(self.compute, self.server).findtext('name')
        self._rebuild_server(self.server, self.image_b)
        self.assertEqual(
            os.path.join(self.base_dir(), builders.base_name(self.image_b)),
            builders.backing_file(self.root))
        xml = self.domain_xml(self.compute, self.server)
        self.assertEqual(name, xml.findtext('name'))
        self.assertEqual(self.server['id'], xml.findtext('uuid'))

    def test_rebuild_of_a_stopped_server_ends_stopped(self):
        self._stop_server(self.server)
        self._rebuild_server(self.server, self.image_b,
                             expected_state='SHUTOFF')
        self.assertFalse(self.hypervisor_of(self.compute).lookupByUUIDString(
            self.server['id']).isActive())

    def test_preserve_ephemeral_is_refused_clearly(self):
        self.api.post_server_action(self.server['id'], {'rebuild': {
            'imageRef': self.image_b, 'preserve_ephemeral': True}})
        server = self._wait_for_state_change(self.server, 'ERROR')
        self.assertIn('preserving ephemeral', server['fault']['message'])


class EvacuateTest(base.TestCase):

    def setUp(self):
        super().setUp()
        self.image_id = self.upload_image(self.make_qcow2())
        self.flavor = self.small_flavor()

    def boot_on_compute1(self, instances_path):
        self.compute1 = self.start_compute('compute1',
                                           instances_path=instances_path)
        server = self._create_server(image_uuid=self.image_id,
                                     flavor_id=self.flavor, networks='none')
        root = os.path.join(instances_path, server['id'], 'disk')
        # What the guest wrote: an evacuation that recreated the disk
        # would lose it.
        subprocess.run(['qemu-io', '-f', 'qcow2', '-c',
                        'write -P 0x44 0 64k', root],
                       check=True, capture_output=True)
        return server, root

    def fail_compute1(self):
        self.stop_compute(self.compute1)
        self.force_down('compute1')

    def bring_back_compute1(self, server):
        """The dead host returns, its hypervisor still holding the guest:
        nova removes the evacuated guest there.
        """
        self.compute1 = self.restart_compute_service(self.compute1)
        self.assertEqual([], self.hypervisor_of(self.compute1)
                         .listAllDomains())

    def test_evacuate_on_shared_storage_keeps_the_disk(self):
        server, root = self.boot_on_compute1(self.instances_path)
        before = digest(root)
        self.fail_compute1()
        compute2 = self.start_compute('compute2',
                                      instances_path=self.instances_path)

        self._evacuate_server(server, expected_host='compute2')

        self.assertEqual(before, digest(root))
        self.assertFalse(self.hypervisor_of(compute2).lookupByUUIDString(
            server['id']).isActive())  # evacuated stopped (2.95)
        self._start_server(server)
        self.bring_back_compute1(server)
        self.assertEqual(before, digest(root))  # still there, untouched

    def test_evacuate_without_shared_storage_rebuilds_from_the_image(self):
        path1 = self.useFixture(fixtures.TempDir()).path
        path2 = self.useFixture(fixtures.TempDir()).path
        server, root1 = self.boot_on_compute1(path1)
        self.fail_compute1()
        self.start_compute('compute2', instances_path=path2)

        self._evacuate_server(server, expected_host='compute2')

        root2 = os.path.join(path2, server['id'], 'disk')
        self.assertEqual(
            os.path.join(path2, '_base', builders.base_name(self.image_id)),
            builders.backing_file(root2))
        self.bring_back_compute1(server)
        # compute1's own copy goes; compute2's stays.
        self.assertFalse(os.path.exists(root1))
        self.assertTrue(os.path.exists(root2))

    def test_a_failed_evacuation_leaves_the_shared_disk_intact(self):
        server, root = self.boot_on_compute1(self.instances_path)
        before = digest(root)
        self.fail_compute1()
        self.start_compute('compute2', instances_path=self.instances_path)

        with fixtures.MockPatch(
                'nova_altdriver.lifecycle.Lifecycle.create',
                side_effect=RuntimeError('the destination failed')):
            self._evacuate_server(server, expected_state='ERROR',
                                  expected_migration_status='failed')

        self.assertEqual(before, digest(root))

    def test_evacuating_again_after_the_destination_died_in_it(self):
        """nova-compute on the destination died with the guest started and
        before nova recorded the move (none of the spawn's own clean-up
        ran): nova still places the server on the failed host. Started
        again, the destination removes its copy, and the operator's
        evacuation again brings the server up there, its disk intact.
        """
        server, root = self.boot_on_compute1(self.instances_path)
        before = digest(root)
        self.fail_compute1()
        compute2 = self.start_compute('compute2',
                                      instances_path=self.instances_path)
        create = lifecycle.Lifecycle.create

        def create_then_die(self, *args, **kwargs):
            create(self, *args, **kwargs)
            raise RuntimeError('nova-compute died here')

        with fixtures.MonkeyPatch(
                'nova_altdriver.lifecycle.Lifecycle.create',
                create_then_die), fixtures.MockPatchObject(
                lifecycle.Lifecycle, 'remove_domain'):
            self._evacuate_server(server, expected_state='ERROR',
                                  expected_migration_status='failed')
        self.assertTrue(self.hypervisor_of(compute2).lookupByUUIDString(
            server['id']).isActive())  # a second QEMU on the disk, unowned

        compute2 = self.restart_compute_service(compute2)
        self.assertEqual([], self.hypervisor_of(compute2).listAllDomains())

        self._evacuate_server(server, expected_host='compute2',
                              expected_state='ACTIVE')
        self.assertTrue(self.hypervisor_of(compute2).lookupByUUIDString(
            server['id']).isActive())
        self.assertEqual(before, digest(root))
