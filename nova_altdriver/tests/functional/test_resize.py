"""Resize and cold migration through nova's API, over libvirt's test
driver: on one host, and between two hosts sharing the instances path (the
move between hosts that do not: the e2e tier, through a real libvirtd).
What the user checks: the server's status, flavor and host, the guest's
memory and disk sizes, the allocations, and what is left on disk.
"""

import filecmp
import json
import os
import subprocess

import fixtures
from nova.compute import instance_actions
from oslo_concurrency import processutils
from oslo_utils import units

from nova_altdriver.tests.functional import test_unsupported


class ResizeTestCase(test_unsupported.UnsupportedTestCase):

    def setUp(self):
        super().setUp()
        self.bigger = self._create_flavor(memory_mb=512, vcpu=2, disk=2,
                                          ephemeral=2, swap=32)
        self.flavor_id = self.small_flavor(ephemeral=1, swap=16)

    def resize_dir(self, server):
        return self.instance_dir(server) + '_resize'

    def virtual_size(self, server, name):
        out = subprocess.run(
            ['qemu-img', 'info', '--output=json', '-U',
             os.path.join(self.instance_dir(server), name)],
            check=True, capture_output=True, text=True).stdout
        return json.loads(out)['virtual-size']

    def memory_mib(self, compute, server):
        return int(self.domain_xml(compute, server).findtext(
            'memory')) // 1024

    def assertFlavor(self, server, flavor_id, compute):
        """The flavor nova shows, its allocations, the guest's memory."""
        flavor = self.admin_api.get_flavor(flavor_id)
        shown = self.api.get_server(server['id'])['flavor']
        self.assertEqual((flavor['ram'], flavor['vcpus'], flavor['disk']),
                         (shown['ram'], shown['vcpus'], shown['disk']))
        rp = self._get_provider_uuid_by_host(compute.host)
        self.assertEqual({rp: {
            'VCPU': flavor['vcpus'], 'MEMORY_MB': flavor['ram'],
            'DISK_GB': (flavor['disk'] + flavor['OS-FLV-EXT-DATA:ephemeral'] +
                        (1 if flavor['swap'] else 0))}},
            {rp: alloc['resources'] for rp, alloc in
             self._get_allocations_by_server_uuid(server['id']).items()})
        self.assertEqual(flavor['ram'], self.memory_mib(compute, server))


class SameHostResizeTest(ResizeTestCase):

    def setUp(self):
        super().setUp()
        self.flags(allow_resize_to_same_host=True)
        self.compute = self.start_compute()
        self.server = self.boot()

    def resize(self, flavor_id=None, expected='VERIFY_RESIZE'):
        self.api.post_server_action(self.server['id'], {
            'resize': {'flavorRef': flavor_id or self.bigger}})
        return self._wait_for_state_change(self.server, expected)

    def test_confirm_keeps_the_bigger_guest_and_removes_the_old_disks(self):
        self.resize()
        self.assertTrue(os.path.isdir(self.resize_dir(self.server)))
        self.assertEqual(2 * units.Gi, self.virtual_size(self.server, 'disk'))
        self.assertEqual(2 * units.Gi, self.virtual_size(self.server,
                                                         'disk.eph0'))
        self.assertEqual(32 * units.Mi, self.virtual_size(self.server,
                                                          'disk.swap'))
        self._confirm_resize(self.server)
        self.assertFlavor(self.server, self.bigger, self.compute)
        self.assertFalse(os.path.exists(self.resize_dir(self.server)))
        self.assertEqual([], [n for n in os.listdir(
            self.instance_dir(self.server)) if n.startswith('shared-')])
        self.assertStillWorks(self.server)

    def test_revert_brings_back_the_guest_as_it_was(self):
        marker = os.path.join(self.instance_dir(self.server), 'disk')
        before = os.stat(marker).st_ino
        self.resize()
        self._revert_resize(self.server)
        self.assertFlavor(self.server, self.flavor_id, self.compute)
        self.assertEqual(units.Gi, self.virtual_size(self.server, 'disk'))
        # the very file the guest had, not a copy of it
        self.assertEqual(before, os.stat(marker).st_ino)
        self.assertFalse(os.path.exists(self.resize_dir(self.server)))
        self.assertStillWorks(self.server)

    def test_a_stopped_server_is_resized_stopped(self):
        self._stop_server(self.server)
        self.resize()
        self.assertFalse(self.hypervisor_of(self.compute).lookupByUUIDString(
            self.server['id']).isActive())
        self.api.post_server_action(self.server['id'],
                                    {'confirmResize': None})
        self._wait_for_state_change(self.server, 'SHUTOFF')
        self._start_server(self.server)
        self.assertFlavor(self.server, self.bigger, self.compute)

    def test_a_directory_an_earlier_resize_left_is_no_obstacle(self):
        # LP 1960230: the in-tree driver failed every later resize
        leftover = self.resize_dir(self.server)
        os.makedirs(leftover)
        with open(os.path.join(leftover, 'disk'), 'w') as f:
            f.write('stale')
        self.resize()
        self._confirm_resize(self.server)
        self.assertFlavor(self.server, self.bigger, self.compute)
        self.assertFalse(os.path.exists(leftover))

    def test_a_smaller_ephemeral_disk_is_refused(self):
        # (a smaller root disk nova's API refuses itself: the image's
        # minimum disk is the flavor's, for an image-backed server)
        smaller = self._create_flavor(memory_mb=512, vcpu=1, disk=1,
                                      ephemeral=0)
        self.api.post_server_action(self.server['id'], {
            'resize': {'flavorRef': smaller}})
        self.assertRefusedEvent(self.server, instance_actions.RESIZE,
                                'compute_resize_instance',
                                'never shrinks a disk')
        self._wait_for_migration_status(self.server, ['error'])
        self.assertUnchanged(self.server)
        self.assertFlavor(self.server, self.flavor_id, self.compute)
        self.assertTrue(self.hypervisor_of(self.compute).lookupByUUIDString(
            self.server['id']).isActive())
        self.assertStillWorks(self.server)

    def test_a_failure_on_the_source_puts_the_server_back(self):
        # a file where the old disks go: setting them aside fails after
        # the guest was stopped
        with open(self.resize_dir(self.server), 'w') as f:
            f.write('in the way')
        self.api.post_server_action(self.server['id'], {
            'resize': {'flavorRef': self.bigger}})
        self.assertRefusedEvent(self.server, instance_actions.RESIZE,
                                'compute_resize_instance', 'Not a directory')
        self.assertUnchanged(self.server)
        self.assertFlavor(self.server, self.flavor_id, self.compute)
        self.assertTrue(self.hypervisor_of(self.compute).lookupByUUIDString(
            self.server['id']).isActive())
        self.assertTrue(os.path.exists(os.path.join(
            self.instance_dir(self.server), 'disk')))
        self.assertStillWorks(self.server)

    def test_nova_compute_killed_after_the_set_aside_reverts_at_start(self):
        class Killed(BaseException):
            """No except clause of nova's or the driver's runs."""

        disk = os.path.join(self.instance_dir(self.server), 'disk')
        inode = os.stat(disk).st_ino

        with fixtures.MockPatch(
                'nova_altdriver.paths.Layout.place_resize_probe',
                side_effect=Killed):
            self.api.post_server_action(self.server['id'], {
                'resize': {'flavorRef': self.bigger}})
            self._wait_for_assert(lambda: self.assertTrue(os.path.isdir(
                self.resize_dir(self.server))),
                max_retries=self.STATE_WAIT_RETRIES)
        # the disks are set aside, the guest off, nova's task unfinished
        self._wait_for_server_parameter(self.server, {
            'OS-EXT-STS:task_state': 'resize_migrating'})
        self.compute = self.restart_compute_service(self.compute)
        self.assertUnchanged(self.server)
        # (the allocations nova's own start-up revert leaves as they were:
        # the new flavor's on the server, the old one's on the migration)
        self.assertEqual(256, self.api.get_server(
            self.server['id'])['flavor']['ram'])
        self.assertEqual(256, self.memory_mib(self.compute, self.server))
        self.assertFalse(os.path.exists(self.resize_dir(self.server)))
        self.assertEqual(inode, os.stat(disk).st_ino)  # the guest's own
        self.assertTrue(self.hypervisor_of(self.compute).lookupByUUIDString(
            self.server['id']).isActive())
        self.assertStillWorks(self.server)

    def test_a_hard_reboot_after_a_failed_copy_brings_the_disks(self):
        # (nova answers any failure of the destination with ERROR and
        # "recover by hard rebooting" there)
        copy = processutils.execute
        failed = []

        def copy_failing_once(*cmd, **kwargs):
            if cmd[0] == 'cp' and not failed:
                failed.append(cmd)
                raise processutils.ProcessExecutionError('No space left')
            return copy(*cmd, **kwargs)

        # what the guest wrote (the test driver's guest writes nothing)
        subprocess.run(['qemu-io', '-f', 'qcow2', '-c', 'write -P 0x5a 0 64k',
                        os.path.join(self.instance_dir(self.server), 'disk')],
                       check=True, capture_output=True)
        original = os.path.join(self.resize_dir(self.server), 'disk')
        with fixtures.MonkeyPatch(
                'oslo_concurrency.processutils.execute', copy_failing_once):
            self.api.post_server_action(self.server['id'], {
                'resize': {'flavorRef': self.bigger}})
            self._wait_for_state_change(self.server, 'ERROR')
        self.assertTrue(failed)
        self.assertFalse(os.path.exists(os.path.join(
            self.instance_dir(self.server), 'disk')))
        self._reboot_server(self.server, hard=True)
        # the guest's own disk, not a fresh one from the image
        self.assertTrue(filecmp.cmp(
            original, os.path.join(self.instance_dir(self.server), 'disk'),
            shallow=False))
        self.assertFalse(os.path.exists(os.path.join(
            self.instance_dir(self.server), 'resize-source.json')))
        self.assertTrue(self.hypervisor_of(self.compute).lookupByUUIDString(
            self.server['id']).isActive())


class ColdMigrationTest(ResizeTestCase):
    """Two hosts sharing one instances path."""

    def setUp(self):
        super().setUp()
        self.compute1 = self.start_compute('compute1')
        self.compute2 = self.start_compute('compute2')
        self.server = self.boot(host='compute1')

    def domains(self, compute):
        return [d.UUIDString() for d in
                self.hypervisor_of(compute).listAllDomains()]

    def migrate(self):
        self.api.post_server_action(self.server['id'], {'migrate': None})
        server = self._wait_for_state_change(self.server, 'VERIFY_RESIZE')
        self.assertEqual('compute2', server['OS-EXT-SRV-ATTR:host'])
        self.assertEqual([self.server['id']], self.domains(self.compute2))
        self.assertEqual([], self.domains(self.compute1))

    def test_confirm_leaves_the_server_on_the_other_host(self):
        self.migrate()
        self._confirm_resize(self.server)
        self.assertFlavor(self.server, self.flavor_id, self.compute2)
        self.assertEqual([], self.domains(self.compute1))
        self.assertFalse(os.path.exists(self.resize_dir(self.server)))
        self.assertTrue(os.path.exists(os.path.join(
            self.instance_dir(self.server), 'disk')))
        self.assertStillWorks(self.server)

    def test_revert_brings_it_back(self):
        self.migrate()
        self._revert_resize(self.server)
        server = self.api.get_server(self.server['id'])
        self.assertEqual('compute1', server['OS-EXT-SRV-ATTR:host'])
        self.assertEqual([self.server['id']], self.domains(self.compute1))
        self.assertEqual([], self.domains(self.compute2))
        self.assertFalse(os.path.exists(self.resize_dir(self.server)))
        self.assertTrue(os.path.exists(os.path.join(
            self.instance_dir(self.server), 'disk')))
        self.assertStillWorks(self.server)
