"""Resize between two libvirt daemons of this machine on real QEMU, the
instances paths not shared: the disks travel through the source's
libvirtd. Proven from inside the test guest: what it wrote before the move
is there after it, it sees the new flavor's disks and memory, and a revert
gives it back its disk exactly as it was.
"""

import os
import uuid

from oslo_utils import units

from nova_altdriver.tests.e2e import markers
from nova_altdriver.tests.e2e import test_live_migration
from nova_altdriver.tests.e2e import test_volumes

SECTOR = 512


class ResizeTest(test_volumes.CephVolumes,
                 test_live_migration.LiveMigrationTestCase):

    def setUp(self):
        super().setUp()
        self.flavor = self._create_flavor(memory_mb=256, vcpu=1, disk=1,
                                          ephemeral=1, swap=16)
        self.bigger = self._create_flavor(memory_mb=320, vcpu=1, disk=2,
                                          ephemeral=2, swap=32)
        self.start_hosts(shared=False)

    def resize_to_compute2(self, server):
        """Resizes the running server; (its last heartbeat on compute1,
        the guest's first boot on compute2, as it told).
        """
        source_log = self.console_log(server, 0)
        last = markers.latest(self.read(source_log)).beats[-1]
        self.api.post_server_action(server['id'], {
            'resize': {'flavorRef': self.bigger}})
        server = self._wait_for_state_change(server, 'VERIFY_RESIZE')
        self.assertEqual('compute2', server['OS-EXT-SRV-ATTR:host'])
        # (the old console is set aside with the disks; the guest's last
        # heartbeats there are the ones its disk kept)
        before = markers.latest(self.read(os.path.join(
            self.paths[0], server['id'] + '_resize', 'console.log')))
        self.assertGreaterEqual(before.beats[-1], last)
        return before.beats[-1], self.wait_for_boot(
            self.console_log(server, 1), 1)

    def wait_for_boot(self, path, number):
        """Boot number of the guest whose console is path, once it found
        its heartbeat.
        """
        def found():
            boots = markers.boots(self.read(path))
            self.assertGreaterEqual(len(boots), number)
            self.assertIsNotNone(boots[number - 1].found)
            return boots[number - 1]
        return self._wait_for_assert(found,
                                     max_retries=self.STATE_WAIT_RETRIES * 2)

    def assertSizes(self, boot, flavor_id, volume_sectors=None):
        flavor = self.admin_api.get_flavor(flavor_id)
        expected = {'vda': flavor['disk'] * units.Gi // SECTOR,
                    'vdb': flavor['OS-FLV-EXT-DATA:ephemeral'] *
                    units.Gi // SECTOR,
                    'vdc': flavor['swap'] * units.Mi // SECTOR}
        if volume_sectors:
            expected['vdd'] = volume_sectors
        self.assertEqual(expected, {disk: size for disk, size in
                                    boot.sizes.items()
                                    if disk.startswith('vd')})
        return boot.sizes['memory']

    def test_resize_to_another_host_keeps_the_data_and_the_volume(self):
        self.use_ceph_volumes()
        server = self.boot_on_compute1(config_drive=True)
        volume_id = str(uuid.uuid4())
        self.make_volume(volume_id)
        self.api.post_server_volume(
            server['id'], {'volumeAttachment': {'volumeId': volume_id}})
        self.wait_for_disks(server, ['sr0', 'vda', 'vdb', 'vdc', 'vdd'])
        first = markers.latest(self.read(self.console_log(server, 0)))

        last, boot = self.resize_to_compute2(server)
        # the disk's data came along: every heartbeat the guest announced
        # (and maybe the one it wrote as it was powered off)
        self.assertIn(boot.found, (last, last + 1))
        self.assertEqual(2, boot.bootcount)
        self.assertIn('ALTDRIVER-CONFIGDRIVE sr0', self.read(
            self.console_log(server, 1)))
        memory = self.assertSizes(boot, self.bigger, 64 * units.Mi // SECTOR)
        self.assertGreater(memory, self.assertSizes(first, self.flavor))

        server = self._confirm_resize(server)
        self.assertRunsOn(server, 1)
        # nothing left at the source
        self.assertEqual([], [n for n in os.listdir(self.paths[0])
                              if n.startswith(server['id'])])
        self.assertEqual([], self.conns[0].listAllSecrets(0))
        self.assertEqual([volume_id], [
            v['id'] for v in self.api.get_server(server['id'])[
                'os-extended-volumes:volumes_attached']])

    def test_revert_gives_back_the_disk_as_it_was(self):
        server = self.boot_on_compute1()
        first = markers.latest(self.read(self.console_log(server, 0)))
        last, boot = self.resize_to_compute2(server)
        dest_log = self.console_log(server, 1)
        self.wait_for_beat(dest_log, last + 3)  # written on compute2 only

        server = self._revert_resize(server)
        self.assertRunsOn(server, 0)
        back = self.wait_for_boot(self.console_log(server, 0), 2)
        # the disk as compute1 left it: neither compute2's boot nor its
        # heartbeats are on it
        self.assertEqual(boot.found, back.found)
        self.assertEqual(2, back.bootcount)
        self.assertEqual(self.assertSizes(first, self.flavor),
                         self.assertSizes(back, self.flavor))
        self.assertEqual([], [n for n in os.listdir(self.paths[1])
                              if n.startswith(server['id'])])
        self.assertFalse(os.path.exists(os.path.join(
            self.paths[0], server['id'] + '_resize')))
