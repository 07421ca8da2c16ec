"""Volume-backed servers through nova's API and its Cinder fixture, on the
libvirt test driver (which has no device hot-plug: attaching to a running
guest is proven on real QEMU and Ceph, in the e2e tier).
"""

import os

import fixtures
from nova.tests import fixtures as nova_fixtures

from nova_altdriver.tests import builders
from nova_altdriver.tests.functional import base

BOOT_VOLUME = nova_fixtures.CinderFixture.IMAGE_BACKED_VOL
ISCSI_VOLUME = nova_fixtures.CinderFixture.ISCSI_BACKED_VOL
# its image asks for quiescing (hw_qemu_guest_agent, os_require_quiesce)
QUIESCE_VOLUME = nova_fixtures.CinderFixture.IMAGE_BACKED_VOL_QUIESCE


class VolumeBackedTest(base.TestCase):

    def setUp(self):
        super().setUp()
        self.cinder = self.useFixture(nova_fixtures.CinderFixture(self))
        self.cinder.VOLUME_CONNECTION_INFO = dict(
            self.cinder.VOLUME_CONNECTION_INFO)
        for volume_id in (BOOT_VOLUME, QUIESCE_VOLUME):
            info = builders.rbd_connection_info(
                volume_id, qos_specs={'total_iops_sec': '300'})
            # (the test driver keeps no secrets: a cephx user is e2e's)
            info['data']['auth_enabled'] = False
            self.cinder.VOLUME_CONNECTION_INFO[volume_id] = info
        self.compute = self.start_compute()
        self.flavor_id = self._create_flavor(memory_mb=256, vcpu=1, disk=0,
                                             ephemeral=0, swap=64)

    def boot_from(self, volume_id):
        server = self._build_server(image_uuid='', flavor_id=self.flavor_id,
                                    networks='none')
        server['block_device_mapping_v2'] = [{
            'boot_index': 0, 'uuid': volume_id, 'source_type': 'volume',
            'destination_type': 'volume'}]
        return server

    def disks(self, server):
        return [(d.find('target').get('dev'), d.get('type'),
                 d.xpath('string(source/@name)') or os.path.basename(
                     d.xpath('string(source/@file)')))
                for d in self.domain_xml(self.compute, server).findall(
                    'devices/disk')]

    def volume_iops_limit(self, server):
        """The IOPS limit of the server's volume: its QoS specs'."""
        return self.domain_xml(self.compute, server).findtext(
            "devices/disk[@type='network']/iotune/total_iops_sec")

    def test_boot_from_an_rbd_volume(self):
        server = self._wait_for_state_change(
            self.api.post_server({'server': self.boot_from(BOOT_VOLUME)}),
            'ACTIVE')
        booted = [('vda', 'network', 'volumes/volume-' + BOOT_VOLUME),
                  ('vdb', 'file', 'disk.swap')]
        self.assertEqual(booted, self.disks(server))
        self.assertEqual('300', self.volume_iops_limit(server))
        self.assertEqual('/dev/vda',
                         server['OS-EXT-SRV-ATTR:root_device_name'])
        self.assertFalse(os.path.exists(
            os.path.join(self.instance_dir(server), 'disk')))
        # made again from nova's data, the volume stays the root disk
        self._reboot_server(server, hard=True)
        self.assertEqual(booted, self.disks(server))
        self.assertEqual('300', self.volume_iops_limit(server))
        self._stop_server(server)
        self._start_server(server)
        self.assertEqual(booted, self.disks(server))
        self._delete_server(server)
        self.assertEqual(
            [], list(self.cinder.volume_ids_for_instance(server['id'])))

    def test_a_server_without_local_disks(self):
        self.flavor_id = self._create_flavor(memory_mb=256, vcpu=1, disk=0,
                                             ephemeral=0, swap=0)
        server = self._wait_for_state_change(
            self.api.post_server({'server': self.boot_from(BOOT_VOLUME)}),
            'ACTIVE')
        self.assertEqual(
            [('vda', 'network', 'volumes/volume-' + BOOT_VOLUME)],
            self.disks(server))
        self._delete_server(server)
        self.assertFalse(os.path.exists(self.instance_dir(server)))

    def test_a_volume_of_another_kind_is_refused_with_a_clear_fault(self):
        server = self._wait_for_state_change(
            self.api.post_server({'server': self.boot_from(ISCSI_VOLUME)}),
            'ERROR')
        self.assertIn('Ceph RBD volumes only, not iscsi volumes',
                      server['fault']['message'])
        self.assertEqual([], self.hypervisor_of(self.compute).listAllDomains())

    def test_stable_rescue_of_a_volume_backed_server(self):
        server = self._wait_for_state_change(
            self.api.post_server({'server': self.boot_from(BOOT_VOLUME)}),
            'ACTIVE')
        booted = self.disks(server)
        rescue_image = self.upload_image(
            self.make_qcow2('rescue.qcow2'), hw_rescue_device='disk',
            hw_rescue_bus='virtio')
        self.api.post_server_action(server['id'], {
            'rescue': {'rescue_image_ref': rescue_image}})
        server = self._wait_for_state_change(server, 'RESCUE')
        # every original device as it was, the rescue disk added and
        # booted first
        self.assertEqual(booted + [('vdc', 'file', 'disk.rescue')],
                         self.disks(server))
        self.assertEqual(['1'], self.domain_xml(self.compute, server).xpath(
            "devices/disk[target/@dev='vdc']/boot/@order"))
        self._unrescue_server(server)
        self.assertEqual(booted, self.disks(server))

    def test_snapshot_of_a_volume_backed_server_quiesced(self):
        # (libvirt's test driver has an agent that freezes and thaws; the
        # fixture's volumes lack the description Cinder's have)
        get = self.cinder.fake_get
        self.useFixture(fixtures.MockPatch(
            'nova.volume.cinder.API.get', autospec=False,
            side_effect=lambda *args, **kwargs: dict(
                get(*args, **kwargs), display_description='')))
        server = self._wait_for_state_change(
            self.api.post_server({'server': self.boot_from(QUIESCE_VOLUME)}),
            'ACTIVE')
        self.assertEqual(1, len(self.domain_xml(self.compute, server).xpath(
            "devices/channel/target[@name='org.qemu.guest_agent.0']")))
        image_id = self.api.post_server_action(
            server['id'], {'createImage': {'name': 'snap'}})['image_id']
        image = self.glance.show(None, image_id)
        self.assertEqual('active', image['status'])
        # the boot volume as a Cinder snapshot (and the flavor's swap)
        self.assertEqual([('blank', -1), ('snapshot', 0)], sorted([
            (m['source_type'], m['boot_index']) for m in image[
                'properties']['block_device_mapping']]))
        server = self._wait_for_state_change(server, 'ACTIVE')
        self.assertIsNone(server['OS-EXT-STS:task_state'])
