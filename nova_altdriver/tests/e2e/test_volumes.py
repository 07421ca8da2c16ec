"""Ceph RBD volumes on real QEMU and a real one-node Ceph
(tools/ceph/ceph.sh), through nova's API with its Cinder fixture answering
for Cinder: what the guest sees of its volumes, and what stays behind.
"""

import os
import subprocess
import time
import uuid

from nova.tests import fixtures as nova_fixtures

from nova_altdriver import host as host_mod
from nova_altdriver.tests import builders
from nova_altdriver.tests.e2e import base
from nova_altdriver.tests.e2e import markers

BOOT_VOLUME = nova_fixtures.CinderFixture.IMAGE_BACKED_VOL
CEPH_CONF = '/etc/ceph/ceph.conf'
KEYRING = '/etc/ceph/ceph.client.cinder.keyring'


def rbd_uri(volume_id):
    return 'rbd:volumes/volume-%s:id=cinder:conf=%s' % (volume_id, CEPH_CONF)


class VolumeTest(base.TestCase):

    def setUp(self):
        super().setUp()
        if not os.path.exists(KEYRING):
            problem = 'no Ceph here (tools/ceph/ceph.sh up makes one)'
            if os.environ.get('ALTDRIVER_E2E_REQUIRED'):
                self.fail(problem)
            self.skipTest(problem)
        self.cinder = self.useFixture(nova_fixtures.CinderFixture(self))
        self.cinder.VOLUME_CONNECTION_INFO = dict(
            self.cinder.VOLUME_CONNECTION_INFO)
        self.compute = self.start_compute()
        self.flavor = self._create_flavor(memory_mb=256, vcpu=1, disk=0,
                                          ephemeral=0)
        self.addCleanup(self.remove_own_secrets)  # whatever happens

    def make_volume(self, volume_id, from_guest_image=False):
        """An RBD image as Cinder would make it, and its connection info."""
        if from_guest_image:
            args = ['qemu-img', 'convert', '-f', 'qcow2', '-O', 'raw',
                    os.path.join(base.GUEST_DIR, 'disk.qcow2')]
        else:
            args = ['qemu-img', 'create', '-f', 'raw']
        subprocess.run(args + [rbd_uri(volume_id)] + (
            [] if from_guest_image else ['64M']), check=True,
            capture_output=True)
        self.addCleanup(subprocess.run, [
            'rbd', '--id', 'cinder', '-c', CEPH_CONF, 'rm',
            'volumes/volume-' + volume_id], capture_output=True)
        info = builders.rbd_connection_info(volume_id)
        info['data']['secret_uuid'] = builders.CEPH_SECRET_UUID
        self.cinder.VOLUME_CONNECTION_INFO[volume_id] = info

    def own_secrets(self):
        return [s for s in self.conn.listAllSecrets(0)
                if host_mod.SECRET_DESCRIPTION in s.XMLDesc()]

    def remove_own_secrets(self):
        for secret in self.own_secrets():
            secret.undefine()

    def assertNoSecretLeft(self):
        self.assertEqual([], [s.UUIDString() for s in self.own_secrets()])

    def boot_from_volume(self):
        return self.boot('', self.flavor, block_device_mapping_v2=[{
            'boot_index': 0, 'uuid': BOOT_VOLUME, 'source_type': 'volume',
            'destination_type': 'volume', 'delete_on_termination': False}])

    def test_a_volume_keeps_the_guests_data_from_server_to_server(self):
        self.make_volume(BOOT_VOLUME, from_guest_image=True)
        first = self.boot_from_volume()
        console = self.wait_for_guest(first, 'ALTDRIVER-HB 3')
        boot = markers.latest(console)
        self.assertEqual((1, 'guest'), (boot.bootcount, boot.role))
        self._delete_server(first)
        self.assertNoSecretLeft()  # no guest uses it any more

        second = self.boot_from_volume()
        console = self.wait_for_guest(second, 'ALTDRIVER-HB-FOUND')
        boot = markers.latest(console)
        self.assertEqual(2, boot.bootcount)
        self.assertGreaterEqual(boot.found, 3)
        self._delete_server(second)

    def running_guest_with_a_volume(self):
        """(server, volume id): a blank volume hot-attached to a running
        image-backed server, as its guest saw it.
        """
        server = self.boot(self.upload_guest_image(), self.flavor)
        self.wait_for_guest(server, 'ALTDRIVER-READY')
        volume_id = str(uuid.uuid4())
        self.make_volume(volume_id)
        self.api.post_server_volume(
            server['id'], {'volumeAttachment': {'volumeId': volume_id}})
        self.wait_for_disks(server, ['vda', 'vdb'])
        return server, volume_id

    def wait_for_disks(self, server, disks):
        """Until the guest's latest ALTDRIVER-DISKS line names disks."""
        self._wait_for_assert(lambda: self.assertEqual(
            disks, markers.latest(self.console(server)).disks),
            max_retries=self.STATE_WAIT_RETRIES)

    def test_hot_attach_extend_and_detach(self):
        server, volume_id = self.running_guest_with_a_volume()

        # Cinder extends it and tells nova (the fixture's volume: 1 GiB)
        self.api.api_post('/os-server-external-events', {'events': [{
            'name': 'volume-extended', 'server_uuid': server['id'],
            'tag': volume_id}]})
        dom = self.conn.lookupByUUIDString(server['id'])
        self._wait_for_assert(lambda: self.assertEqual(
            2 ** 30, dom.blockInfo('vdb')[0]))
        rbd_info = subprocess.run(
            ['qemu-img', 'info', rbd_uri(volume_id)], check=True,
            capture_output=True, text=True).stdout
        self.assertIn('virtual size: 1 GiB', rbd_info)

        self.api.delete_server_volume(server['id'], volume_id)
        self.wait_for_disks(server, ['vda'])
        self._wait_for_assert(lambda: self.assertEqual(
            [], list(self.cinder.volume_ids_for_instance(server['id']))))
        self.assertNotIn('vdb', dom.XMLDesc(0))
        self.assertNotIn('vdb', dom.XMLDesc(2))  # the definition too
        self.assertNoSecretLeft()
        # the guest ran on through it all
        self.assertEqual(1, len(markers.boots(self.console(server))))

    def test_the_mission_operations_of_a_volume_backed_server(self):
        self.make_volume(BOOT_VOLUME, from_guest_image=True)
        server = self.boot_from_volume()
        self.wait_for_guest(server, 'ALTDRIVER-HB 2')

        # stable device rescue (the only one of a volume-backed server):
        # the rescue guest finds the volume and writes to it
        rescue_image = self.upload_guest_image(
            'rescue.qcow2', hw_rescue_bus='virtio', hw_rescue_device='disk')
        self.api.post_server_action(server['id'], {
            'rescue': {'rescue_image_ref': rescue_image}})
        server = self._wait_for_state_change(server, 'RESCUE')
        console = self.wait_for_guest(server, 'ALTDRIVER-RESCUE-WROTE vda')
        self.assertEqual('rescue', markers.latest(console).role)
        self._unrescue_server(server)
        console = self.wait_for_guest(server, 'ALTDRIVER-READY bootcount=2')
        self.assertIn('ALTDRIVER-RESCUED rescued-by-rescue-image', console)
        beats = markers.latest(self.wait_for_guest(server, 'ALTDRIVER-HB'))

        # shelved (offloaded at once: nothing to snapshot) and back
        self.api.post_server_action(server['id'], {'shelve': None})
        server = self._wait_for_state_change(server, 'SHELVED_OFFLOADED')
        self.assertEqual([], self.conn.listAllDomains())
        self._unshelve_server(server)
        console = self.wait_for_guest(server, 'ALTDRIVER-READY bootcount=3')
        self.assertGreaterEqual(markers.latest(console).found or 0,
                                max(beats.beats or [0]))
        self._reboot_server(server, hard=True)
        self.wait_for_guest(server, 'ALTDRIVER-READY bootcount=4')
        self._delete_server(server)

    def test_evacuation_of_a_volume_backed_server(self):
        # The volume is the only storage both hosts share.
        uri2 = self.second_libvirt_host()
        self.make_volume(BOOT_VOLUME, from_guest_image=True)
        server = self.boot_from_volume()
        self.remove_domain_at_cleanup(server['id'], uri=uri2)
        self.wait_for_guest(server, 'ALTDRIVER-HB 2')

        self.compute.stop()  # its host dies, and the guest with it
        self.force_down('compute1')
        self.conn.lookupByUUIDString(server['id']).destroy()
        self.start_compute('compute2', uri=uri2, instances_path=os.path.join(
            self._state_dir, 'compute2-instances'))
        self._evacuate_server(server, expected_host='compute2')
        self._start_server(server)  # (nova keeps evacuated servers off)
        console = self.wait_for_guest(server, 'ALTDRIVER-READY bootcount=2')
        self.assertGreaterEqual(markers.latest(console).found, 2)

        # the failed host comes back: its stale guest goes, the volume is
        # the evacuated guest's
        self.compute = self.restart_compute_service(self.compute)
        self.assertEqual([], self.conn.listAllDomains())
        self.wait_for_guest(server, 'ALTDRIVER-HB %d' % (
            markers.latest(self.console(server)).beats[-1] + 2))

    def test_a_paused_guest_keeps_its_volume(self):
        server, volume_id = self.running_guest_with_a_volume()
        # a paused guest cannot answer an unplug
        self.api.post_server_action(server['id'], {'pause': None})
        server = self._wait_for_state_change(server, 'PAUSED')
        self.api.delete_server_volume(server['id'], volume_id)
        self._wait_for_assert(
            lambda: self._wait_for_instance_action_event(
                server, 'detach_volume', 'compute_detach_volume', 'Error'),
            max_retries=10)
        # still attached, in nova, in libvirt and in the guest
        self.assertEqual([volume_id], [
            a['volumeId'] for a in self.api.get_server_volumes(server['id'])])
        self.api.post_server_action(server['id'], {'unpause': None})
        server = self._wait_for_state_change(server, 'ACTIVE')
        time.sleep(3)  # (time for an unplug, had one been asked for)
        self.assertEqual(['vda', 'vdb'],
                         markers.latest(self.console(server)).disks)
        dom = self.conn.lookupByUUIDString(server['id'])
        for xml in (dom.XMLDesc(0), dom.XMLDesc(2)):  # live, persistent
            self.assertIn("dev='vdb'", xml)
        # running, it lets go
        self.api.delete_server_volume(server['id'], volume_id)
        self.wait_for_disks(server, ['vda'])
