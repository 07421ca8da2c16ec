"""Ceph RBD volumes on real QEMU and a real one-node Ceph
(tools/ceph/ceph.sh), through nova's API with its Cinder fixture answering
for Cinder: what the guest sees of its volumes, and what stays behind.
"""

import json
import os
import subprocess
import threading
import time
import uuid

import fixtures
import libvirt
from lxml import etree
from nova.tests import fixtures as nova_fixtures

from nova_altdriver import host as host_mod
from nova_altdriver.tests import builders
from nova_altdriver.tests.e2e import base
from nova_altdriver.tests.e2e import markers

BOOT_VOLUME = nova_fixtures.CinderFixture.IMAGE_BACKED_VOL
CEPH_CONF = '/etc/ceph/ceph.conf'
KEYRING = '/etc/ceph/ceph.client.cinder.keyring'


def boot_from(volume_id):
    """The block device mapping of a server booted from volume_id, which
    stays when the server goes.
    """
    return [{'boot_index': 0, 'uuid': volume_id, 'source_type': 'volume',
             'destination_type': 'volume', 'delete_on_termination': False}]


BOOT_FROM_VOLUME = boot_from(BOOT_VOLUME)


def rbd_uri(volume_id):
    return 'rbd:volumes/volume-%s:id=cinder:conf=%s' % (volume_id, CEPH_CONF)


def rbd(*args, check=True):
    return subprocess.run(['rbd', '--id', 'cinder', '-c', CEPH_CONF] +
                          list(args), check=check, capture_output=True,
                          text=True)


def volume_size(volume_id):
    info = subprocess.run(
        ['qemu-img', 'info', '--output=json', rbd_uri(volume_id)],
        check=True, capture_output=True, text=True).stdout
    return json.loads(info)['virtual-size']


class CephVolumes(object):
    """For an e2e test case (also the volume benchmark): nova's Cinder
    fixture answering for RBD volumes the test makes on this machine's Ceph.
    """

    def use_ceph_volumes(self):
        if not os.path.exists(KEYRING):
            problem = 'no Ceph here (tools/ceph/ceph.sh up makes one)'
            if os.environ.get('ALTDRIVER_E2E_REQUIRED'):
                self.fail(problem)
            self.skipTest(problem)
        self.cinder = self.useFixture(nova_fixtures.CinderFixture(self))
        self.cinder.VOLUME_CONNECTION_INFO = dict(
            self.cinder.VOLUME_CONNECTION_INFO)
        self.addCleanup(self.remove_own_secrets)  # whatever happens
        self.keep_an_operators_secret()
        # the images go last, once no QEMU of the test holds one open
        self.rbd_images = []
        self.addCleanup(lambda: [rbd('rm', name, check=False)
                                 for name in self.rbd_images])

    def make_volume(self, volume_id, from_guest_image=False, size='64M',
                    multiattach=False):
        """An RBD image as Cinder would make it, and its connection info."""
        rbd('rm', 'volumes/volume-' + volume_id, check=False)  # a run's rest
        if from_guest_image:
            args = ['qemu-img', 'convert', '-f', 'qcow2', '-O', 'raw',
                    os.path.join(base.GUEST_DIR, 'disk.qcow2')]
        else:
            args = ['qemu-img', 'create', '-f', 'raw']
        subprocess.run(args + [rbd_uri(volume_id)] + (
            [] if from_guest_image else [size]), check=True,
            capture_output=True)
        self.rbd_images.append('volumes/volume-' + volume_id)
        if multiattach:  # as Cinder's RBD driver makes them
            rbd('feature', 'disable', 'volumes/volume-' + volume_id,
                'fast-diff', 'object-map', 'exclusive-lock')
        info = builders.rbd_connection_info(volume_id)
        info['data']['secret_uuid'] = builders.CEPH_SECRET_UUID
        self.cinder.VOLUME_CONNECTION_INFO[volume_id] = info

    def keep_an_operators_secret(self):
        """A secret of the operator's own for the cinder user, under
        another UUID, as devstack's ceph plugin defines for the in-tree
        driver: it holds the usage name 'client.cinder secret', which
        libvirt allows once.
        """
        try:
            self.conn.secretLookupByUsage(
                libvirt.VIR_SECRET_USAGE_TYPE_CEPH, 'client.cinder secret')
            return  # the host has one already
        except libvirt.libvirtError as e:
            if e.get_error_code() != libvirt.VIR_ERR_NO_SECRET:
                raise
        secret = self.conn.secretDefineXML(
            "<secret ephemeral='no' private='yes'><usage type='ceph'>"
            "<name>client.cinder secret</name></usage></secret>")
        self.addCleanup(secret.undefine)

    def own_secrets(self):
        return [s for s in self.conn.listAllSecrets(0)
                if etree.fromstring(s.XMLDesc()).findtext('description') ==
                host_mod.SECRET_DESCRIPTION]

    def remove_own_secrets(self):
        for secret in self.own_secrets():
            secret.undefine()

    def assertNoSecretLeft(self):
        self.assertEqual([], [s.UUIDString() for s in self.own_secrets()])

    def wait_for_disks(self, server, disks):
        """Until the guest's latest ALTDRIVER-DISKS line names disks."""
        self._wait_for_assert(lambda: self.assertEqual(
            disks, markers.latest(self.console(server)).disks),
            max_retries=self.STATE_WAIT_RETRIES)


class VolumeTest(CephVolumes, base.TestCase):

    def setUp(self):
        super().setUp()
        self.use_ceph_volumes()
        self.compute = self.start_compute()
        self.flavor = self._create_flavor(memory_mb=256, vcpu=1, disk=0,
                                          ephemeral=0)

    def boot_from_volume(self):
        return self.boot('', self.flavor,
                         block_device_mapping_v2=BOOT_FROM_VOLUME)

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
        self.wait_for_guest(server, 'ALTDRIVER-READY bootcount=3')
        # (the guest says HB-FOUND after READY: a loaded host shows the gap)
        self._wait_for_assert(lambda: self.assertGreaterEqual(
            markers.latest(self.console(server)).found or 0,
            max(beats.beats or [0])), max_retries=60, sleep=1)
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

    def running_guest_with_a_volume_to_swap(self):
        """(server, its domain): a running guest whose vdb is the fixture's
        volume of a Cinder migration (a copy of the guest's disk), which
        Cinder may swap (nova's swap policy is for the service role).
        """
        self.policy.set_rules({
            'os_compute_api:os-volumes-attachments:swap': '@'},
            overwrite=False)
        self.make_volume(self.cinder.SWAP_OLD_VOL, from_guest_image=True)
        server = self.boot(self.upload_guest_image(), self.flavor)
        self.wait_for_guest(server, 'ALTDRIVER-READY')
        self.api.post_server_volume(server['id'], {
            'volumeAttachment': {'volumeId': self.cinder.SWAP_OLD_VOL}})
        self.wait_for_guest(server, 'ALTDRIVER-OTHER vdb marker=base-image')
        return server, self.conn.lookupByUUIDString(server['id'])

    def test_a_volume_swapped_under_a_running_guest(self):
        # Cinder migrating an attached volume
        old, new = self.cinder.SWAP_OLD_VOL, self.cinder.SWAP_NEW_VOL
        server, dom = self.running_guest_with_a_volume_to_swap()

        # a target QEMU cannot copy onto (too small): the guest stays on
        # its volume, the server ACTIVE
        too_small = str(uuid.uuid4())
        self.make_volume(too_small, size='16M')
        self.api.put_server_volume(server['id'], old, too_small)
        self._wait_for_instance_action_event(
            server, 'swap_volume', 'compute_swap_volume', 'Error')
        self.assertEqual('ACTIVE', self.api.get_server(server['id'])[
            'status'])
        self.assertEqual([old], [a['volumeId'] for a in
                                 self.api.get_server_volumes(server['id'])])
        for xml in (dom.XMLDesc(0), dom.XMLDesc(2)):  # live, persistent
            self.assertIn('volume-' + old, xml)
            self.assertNotIn('volume-' + too_small, xml)

        # copied, then pivoted: the guest runs on, on the new volume
        self.make_volume(new, size=str(volume_size(old)))
        self.api.put_server_volume(server['id'], old, new)
        self._wait_for_assert(lambda: self.assertEqual([new], [
            a['volumeId'] for a in self.api.get_server_volumes(
                server['id'])]), max_retries=self.STATE_WAIT_RETRIES)
        for xml in (dom.XMLDesc(0), dom.XMLDesc(2)):
            self.assertIn('volume-' + new, xml)
            self.assertNotIn('volume-' + old, xml)
        subprocess.run(['qemu-img', 'compare', rbd_uri(old), rbd_uri(new)],
                       check=True, capture_output=True)
        rbd('rm', 'volumes/volume-' + old)  # QEMU has let go of it
        self.assertEqual(1, len(markers.boots(self.console(server))))
        self.assertEqual(['vda', 'vdb'],
                         markers.latest(self.console(server)).disks)
        # what the guest finds there now comes from the new volume only
        self._reboot_server(server, hard=True)
        console = self.wait_for_guest(server, 'ALTDRIVER-READY bootcount=2')
        self.assertIn('ALTDRIVER-OTHER vdb marker=base-image',
                      console.split('ALTDRIVER-READY bootcount=1')[1])
        self.api.delete_server_volume(server['id'], new)
        self.wait_for_disks(server, ['vda'])
        self._delete_server(server)
        self.assertNoSecretLeft()

    def test_two_servers_share_a_multiattach_volume(self):
        # (a host cache that would be wrong for a shared disk)
        self.flags(disk_cache_mode='writeback', group='altdriver')
        self.api.microversion = '2.60'
        volume_id = self.cinder.MULTIATTACH_VOL
        self.make_volume(volume_id, from_guest_image=True, multiattach=True)
        image = self.upload_guest_image()
        servers = [self.boot(image, self.flavor) for _ in range(2)]
        for server in servers:
            self.wait_for_guest(server, 'ALTDRIVER-READY')
            self.api.post_server_volume(
                server['id'], {'volumeAttachment': {'volumeId': volume_id}})
        # both guests read it at once, neither host caching it
        for server in servers:
            self.wait_for_guest(server,
                                'ALTDRIVER-OTHER vdb marker=base-image')
            vdb, = etree.fromstring(self.conn.lookupByUUIDString(
                server['id']).XMLDesc(0)).xpath(
                    "devices/disk[target/@dev='vdb']")
            self.assertIsNotNone(vdb.find('shareable'))
            self.assertEqual('none', vdb.find('driver').get('cache'))

        # one lets it go; the other keeps it, and the secret it needs
        self.api.delete_server_volume(servers[0]['id'], volume_id)
        self.wait_for_disks(servers[0], ['vda'])
        self.assertEqual([volume_id], [
            a['volumeId'] for a in self.api.get_server_volumes(
                servers[1]['id'])])
        self.assertEqual(['vda', 'vdb'],
                         markers.latest(self.console(servers[1])).disks)
        self.assertEqual(1, len(self.own_secrets()))
        self._delete_server(servers[1])
        self.assertNoSecretLeft()
        self._delete_server(servers[0])

    def test_rebuild_of_a_volume_backed_server_reimages_its_volume(self):
        # API 2.93: Cinder writes the new image onto the boot volume and
        # tells nova (here a thread does what Cinder's volume service does)
        self.make_volume(BOOT_VOLUME, from_guest_image=True)
        server = self.boot_from_volume()
        console = self.wait_for_guest(server, 'ALTDRIVER-HB 2')
        self.assertEqual('base-image', markers.latest(console).marker)
        variant = self.guest_variant_file('--marker', 'reimaged')
        new_image = self.upload_image(variant, 'qcow2')

        def cinder_reimages(context, volume_id, image_id, **kwargs):
            def reimage():
                subprocess.run(['qemu-img', 'convert', '-n', '-f', 'qcow2',
                                '-O', 'raw', variant, rbd_uri(volume_id)],
                               check=True, capture_output=True)
                self.api.api_post('/os-server-external-events', {
                    'events': [{'name': 'volume-reimaged',
                                'server_uuid': server['id'],
                                'tag': volume_id}]})
            threading.Thread(target=reimage).start()
        self.useFixture(fixtures.MockPatch(
            'nova.volume.cinder.API.reimage_volume',
            side_effect=cinder_reimages, autospec=False))

        self.api.microversion = '2.93'
        self.api.post_server_action(server['id'], {
            'rebuild': {'imageRef': new_image}})
        server = self._wait_for_state_change(server, 'REBUILD')
        server = self._wait_for_state_change(server, 'ACTIVE')
        # the guest boots what the volume holds now: the new image, afresh
        console = self.wait_for_guest(server, 'ALTDRIVER-READY bootcount=1',
                                      timeout=180)
        boot = markers.latest(console)
        self.assertEqual(('reimaged', 1), (boot.marker, boot.bootcount))
        self._delete_server(server)
        self.assertNoSecretLeft()

    def test_a_quiesced_snapshot_of_a_volume_backed_server(self):
        # the volume's image asks for quiescing (os_require_quiesce) and for
        # the agent, which the guest runs: nova-api has the guest frozen
        # around the volume's snapshot, and thawed after it (a cast); the
        # server runs on. (The fixture's volumes lack the description
        # Cinder's have.)
        get = self.cinder.fake_get
        self.useFixture(fixtures.MockPatch(
            'nova.volume.cinder.API.get', autospec=False,
            side_effect=lambda *args, **kwargs: dict(
                get(*args, **kwargs), display_description='')))
        volume_id = self.cinder.IMAGE_BACKED_VOL_QUIESCE
        self.make_volume(volume_id, from_guest_image=True)
        server = self.boot('', self.flavor,
                           block_device_mapping_v2=boot_from(volume_id))
        self.wait_for_guest(server, 'ALTDRIVER-HB 2')
        self.assertEqual('started',
                         markers.latest(self.console(server)).agent)
        image_id = self.api.post_server_action(
            server['id'], {'createImage': {'name': 'snap'}})['image_id']
        self.assertEqual('active', self.glance.show(None, image_id)['status'])
        console = self.wait_for_guest(server, 'ALTDRIVER-FSFREEZE thaw')
        self.assertEqual(['freeze', 'thaw'],
                         markers.latest(console).fsfreeze)
        server = self._wait_for_server_parameter(server, {
            'status': 'ACTIVE', 'OS-EXT-STS:task_state': None})
        beats = markers.latest(self.console(server)).beats[-1]
        self.wait_for_guest(server, 'ALTDRIVER-HB %d' % (beats + 1))
        self.assertEqual(1, len(markers.boots(self.console(server))))

    def test_a_swap_nova_compute_died_in_is_undone_at_its_start(self):
        old, new = self.cinder.SWAP_OLD_VOL, self.cinder.SWAP_NEW_VOL
        server, dom = self.running_guest_with_a_volume_to_swap()
        self.make_volume(new, size=str(volume_size(old)))

        # nova-compute dies while QEMU copies (and runs no clean-up)
        with fixtures.MockPatch(
                'nova_altdriver.guest.Guest.pivot_when_ready',
                side_effect=SystemExit('nova-compute killed')):
            self.api.put_server_volume(server['id'], old, new)
            self._wait_for_assert(lambda: self.assertTrue(
                dom.blockJobInfo('vdb', 0)))
        self.compute = self.restart_compute_service(self.compute)

        # the guest is on its old volume, as nova has it; QEMU let go of
        # the new one, which Cinder can delete
        self.assertEqual({}, dom.blockJobInfo('vdb', 0))
        for xml in (dom.XMLDesc(0), dom.XMLDesc(2)):
            self.assertIn('volume-' + old, xml)
            self.assertNotIn('volume-' + new, xml)
        self.assertEqual([old], [a['volumeId'] for a in
                                 self.api.get_server_volumes(server['id'])])
        rbd('rm', 'volumes/volume-' + new)
        beats = markers.latest(self.console(server)).beats[-1]
        self.wait_for_guest(server, 'ALTDRIVER-HB %d' % (beats + 1))
        self.assertEqual(1, len(markers.boots(self.console(server))))
