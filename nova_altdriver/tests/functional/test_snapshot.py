"""Snapshot and shelve through nova's API on the libvirt test driver (which
cannot snapshot running guests: that path runs on real QEMU, e2e tier)."""

import os
import subprocess

from nova import context as nova_context
from nova import objects

from nova_altdriver.tests import builders
from nova_altdriver.tests.functional import base


class SnapshotShelveTest(base.TestCase):

    def setUp(self):
        super().setUp()
        self.compute = self.start_compute()
        self.image_id = self.upload_image(self.make_qcow2(),
                                          os_type='linux')
        self.flavor_id = self.small_flavor()
        self.server = self._create_server(image_uuid=self.image_id,
                                          flavor_id=self.flavor_id,
                                          networks='none')

    def test_snapshot_of_a_stopped_server(self):
        self._stop_server(self.server)
        image = self.create_snapshot(self.server)
        self.assertEqual('qcow2', image['disk_format'])
        self.assertEqual('bare', image['container_format'])
        props = image['properties']
        self.assertEqual('snapshot', props['image_location'])
        self.assertEqual('available', props['image_state'])
        self.assertEqual(self.server['tenant_id'], props['owner_id'])
        self.assertEqual('linux', props['os_type'])
        # A standalone image: its bytes hold no backing file reference.
        data = self.image_data[image['id']]
        self.assertTrue(data.startswith(b'QFI\xfb'))
        self.assertNotIn(b'_base', data[:4096])
        self.assertEqual([], os.listdir(os.path.join(self.instances_path,
                                                     'snapshots')))
        # ... that boots.
        self._create_server(image_uuid=image['id'], flavor_id=self.flavor_id,
                            networks='none')

    def test_raw_snapshots_on_request(self):
        self.flags(snapshot_image_format='raw', group='altdriver')
        self._stop_server(self.server)
        image = self.create_snapshot(self.server)
        self.assertEqual('raw', image['disk_format'])
        data = self.image_data[image['id']]
        self.assertEqual(2 ** 30, len(data))  # the flavor's 1 GiB disk
        self.assertFalse(data.startswith(b'QFI\xfb'))

    def test_snapshot_of_a_suspended_server_keeps_it_suspended(self):
        self._suspend_server(self.server)
        self.create_snapshot(self.server)
        self.assertEqual('SUSPENDED', self._show_server(self.server)['status'])
        self.assertTrue(self.hypervisor_of(self.compute).lookupByUUIDString(
            self.server['id']).hasManagedSaveImage())

    def test_quiesce_required_without_an_agent_fails_clearly(self):
        image_id = self.upload_image(self.make_qcow2('q.qcow2'),
                                     os_require_quiesce=True)
        server = self._create_server(image_uuid=image_id,
                                     flavor_id=self.flavor_id,
                                     networks='none')
        image_id = self.api.post_server_action(
            server['id'], {'createImage': {'name': 'q'}})['image_id']
        # The failed snapshot's image is discarded, the server runs on.
        self._wait_for_assert(
            lambda: self.assertNotIn(image_id, self.glance.images))
        self._wait_for_server_parameter(
            server, {'status': 'ACTIVE', 'OS-EXT-STS:task_state': None})
        fault = objects.InstanceFault.get_latest_for_instance(
            nova_context.get_admin_context(), server['id'])
        self.assertEqual('QEMU guest agent is not enabled', fault.message)

    def test_shelve_offload_and_unshelve(self):
        self.flags(shelved_offload_time=0)
        self._shelve_server(self.server)   # SHELVED_OFFLOADED
        self.assertFalse(os.path.exists(self.instance_dir(self.server)))
        self.assertEqual([], self.hypervisor_of(self.compute).listAllDomains())

        self._unshelve_server(self.server)
        root = os.path.join(self.instance_dir(self.server), 'disk')
        # Rebased onto the original image, not the deleted shelve image.
        self.assertEqual(
            os.path.join(self.base_dir(), builders.base_name(self.image_id)),
            builders.backing_file(root))

    def test_shelve_without_offload_then_unshelve(self):
        self.flags(shelved_offload_time=-1)
        self._shelve_server(self.server, expected_state='SHELVED')
        self.assertTrue(os.path.exists(self.instance_dir(self.server)))
        self._unshelve_server(self.server)

    def test_shelve_a_paused_server(self):
        self.flags(shelved_offload_time=0)
        self.api.post_server_action(self.server['id'], {'pause': None})
        self._wait_for_state_change(self.server, 'PAUSED')
        self._shelve_server(self.server)
        self._unshelve_server(self.server)

    def test_unshelve_on_another_host(self):
        self.flags(shelved_offload_time=0)
        self._shelve_server(self.server)
        self.compute.stop()
        self.force_down('compute1')
        other = self.start_compute('compute2')
        server = self._unshelve_server(self.server)
        self.assertEqual('compute2', server['OS-EXT-SRV-ATTR:host'])
        self.assertIsNotNone(self.hypervisor_of(other).lookupByUUIDString(
            self.server['id']))

    def test_hard_reboot_after_an_unshelve_nova_compute_did_not_end(self):
        # nova-compute died during the unshelve's spawn, before the disk
        # was whole: on restart nova marks the server ERROR on this host,
        # its image the shelve image (saved by the resource claim), which
        # alone holds the guest's data.
        self.flags(shelved_offload_time=0)
        root = os.path.join(self.instance_dir(self.server), 'disk')
        subprocess.run(['qemu-io', '-f', 'qcow2', '-c', 'write -P 9 0 64k',
                        root], check=True, capture_output=True)
        self._shelve_server(self.server)
        ctxt = nova_context.get_admin_context()
        instance = objects.Instance.get_by_uuid(ctxt, self.server['id'])
        instance.image_ref = instance.system_metadata['shelved_image_id']
        instance.vm_state, instance.task_state = 'error', None
        instance.host = instance.node = 'compute1'
        instance.compute_id = objects.ComputeNode.get_by_nodename(
            ctxt, 'compute1').id
        instance.save()

        self.admin_api.post_server_action(self.server['id'], {
            'os-resetState': {'state': 'active'}})
        self._reboot_server(self.server, hard=True)
        read = subprocess.run(['qemu-io', '-f', 'qcow2', '-c',
                               'read -P 9 0 64k', root],
                              capture_output=True, text=True)
        self.assertNotIn('Pattern verification failed', read.stdout)
        self.assertEqual(   # not left on the shelve image
            os.path.join(self.base_dir(), builders.base_name(self.image_id)),
            builders.backing_file(root))
