"""Snapshots and shelving on real QEMU: the images hold the guest's data,
the guest runs on meanwhile, nothing is left behind."""

import hashlib
import json
import os
import subprocess
import time

import fixtures
import libvirt
from nova import context as nova_context
from nova import exception
from nova import objects
from oslo_concurrency import processutils
from testtools import content

from nova_altdriver.tests import builders
from nova_altdriver.tests.e2e import base
from nova_altdriver.tests.e2e import markers


def chain(path):
    """The backing chain of a disk: [path, backing, ...]."""
    info = json.loads(subprocess.run(
        ['qemu-img', 'info', '-U', '--backing-chain', '--output=json', path],
        capture_output=True, text=True, check=True).stdout)
    return [layer['filename'] for layer in info]


def command_fails(command, side_effect):
    """processutils' command (its first words: qemu-img map, the stream's
    reading of the chain, or qemu-img convert, a staged copy) fails with
    side_effect; any other runs.
    """
    execute = processutils.execute

    def run(*cmd, **kwargs):
        if cmd[:len(command)] == command:
            raise side_effect()
        return execute(*cmd, **kwargs)
    return fixtures.MockPatch('oslo_concurrency.processutils.execute',
                              side_effect=run)


def sha256(path):
    with open(path, 'rb') as f:
        return hashlib.sha256(f.read()).hexdigest()


class SnapshotTest(base.TestCase):

    def setUp(self):
        super().setUp()
        self.compute = self.start_compute()
        self.image_id = self.upload_guest_image()
        self.flavor = self.small_flavor()

    def test_live_snapshot_boots_with_the_data_and_the_guest_runs_on(self):
        server = self.boot(self.image_id, self.flavor)
        self.wait_for_guest(server, 'ALTDRIVER-READY bootcount=1')
        root = os.path.join(self.instance_dir(server), 'disk')
        before = chain(root)
        cached_base = sha256(before[-1])

        started = time.monotonic()
        image = self.create_snapshot(server)
        took = time.monotonic() - started
        time.sleep(4)  # two more heartbeats

        # The guest ran on: no new boot, heartbeats all through.
        boots = markers.boots(self.console(server))
        self.assertEqual(1, len(boots))
        ticks = boots[0].ticks
        gaps = [b - a for a, b in zip(ticks, ticks[1:])]
        self.assertLess(max(gaps), 6, 'the guest stalled: %s' % gaps)
        # Its disk chain and definitions are as before, no leftovers, and
        # the shared cached image untouched.
        self.assertEqual(before, chain(root))
        self.assertEqual(cached_base, sha256(before[-1]))
        dom = self.conn.lookupByUUIDString(server['id'])
        for xml in (dom.XMLDesc(0), dom.XMLDesc(2)):  # live, persistent
            self.assertIn("file='%s'" % root, xml)
            self.assertNotIn('snapshots', xml)
        self.assertEqual([], os.listdir(os.path.join(self.instances_path,
                                                     'snapshots')))

        # The image is standalone and holds what the guest wrote: its boot
        # counter goes on from there.
        copy = self.boot(image['id'], self.flavor)
        console = self.wait_for_guest(copy, 'ALTDRIVER-READY')
        self.assertIn('ALTDRIVER-BOOTCOUNT 2', console)
        self.assertIn('ALTDRIVER-MARKER base-image', console)
        self.addDetail('snapshot_seconds',
                       content.text_content('%.1f' % took))

    def test_failed_snapshots_leave_the_guest_as_it_was(self):
        server = self.boot(self.image_id, self.flavor)
        self.wait_for_guest(server, 'ALTDRIVER-READY bootcount=1')
        root = os.path.join(self.instance_dir(server), 'disk')
        before = chain(root)
        instance = objects.Instance.get_by_uuid(
            nova_context.get_admin_context(), server['id'])
        driver = self.driver_of(self.compute)
        image_id = self.glance.create(None, {'name': 'snap'})['id']

        def snapshot():
            driver.snapshot(nova_context.get_admin_context(), instance,
                            image_id, lambda **kw: None)

        def assertUnharmed():
            self.assertEqual(before, chain(root))
            self.assertEqual(libvirt.VIR_DOMAIN_RUNNING,
                             self.conn.lookupByUUIDString(
                                 server['id']).state()[0])
            self.assertEqual([], os.listdir(
                os.path.join(self.instances_path, 'snapshots')))

        # Reading the disk fails ...
        with command_fails(('qemu-img', 'map'), lambda: (
                processutils.ProcessExecutionError('Input/output error'))):
            self.assertRaises(processutils.ProcessExecutionError, snapshot)
        assertUnharmed()
        # ... the host's disk fills up during a staged copy (a compressed
        # image is not streamed) ...
        self.flags(snapshot_compression=True, group='altdriver')
        with command_fails(('qemu-img', 'convert'), lambda: (
                processutils.ProcessExecutionError(
                    'No space left on device'))):
            self.assertRaises(processutils.ProcessExecutionError, snapshot)
        assertUnharmed()
        self.flags(snapshot_compression=False, group='altdriver')
        # ... the upload fails before it starts, or part of the way ...
        with fixtures.MockPatch(
                'nova.image.glance.API.update',
                side_effect=exception.ImageNotFound(image_id=image_id)):
            self.assertRaises(exception.ImageNotFound, snapshot)
        assertUnharmed()

        def cut_short(context, image_id, metadata, data, **kwargs):
            data.read(2 ** 20)
            raise exception.CouldNotUploadImage(image_id=image_id)
        with fixtures.MockPatch('nova.image.glance.API.update',
                                side_effect=cut_short):
            self.assertRaises(exception.CouldNotUploadImage, snapshot)
        assertUnharmed()
        # ... quiescing, required, fails (no agent answers) ...
        meta = instance.system_metadata  # (what image_meta is made from)
        meta['image_hw_qemu_guest_agent'] = 'yes'
        meta['image_os_require_quiesce'] = 'yes'
        self.assertRaises(exception.InstanceQuiesceFailed, snapshot)
        assertUnharmed()
        del meta['image_hw_qemu_guest_agent']
        del meta['image_os_require_quiesce']
        # ... the guest is deleted meanwhile: nova is told so.

        def delete_guest():
            dom = self.conn.lookupByUUIDString(server['id'])
            dom.destroy()
            dom.undefine()
            return processutils.ProcessExecutionError('gone')
        with command_fails(('qemu-img', 'map'), delete_guest):
            self.assertRaises(exception.InstanceNotFound, snapshot)
        self.assertEqual([], os.listdir(
            os.path.join(self.instances_path, 'snapshots')))

    def test_deleting_the_server_ends_its_snapshot_upload(self):
        server = self.boot(self.image_id, self.flavor)
        self.wait_for_guest(server, 'ALTDRIVER-READY bootcount=1')
        instance = objects.Instance.get_by_uuid(
            nova_context.get_admin_context(), server['id'])
        image_id = self.glance.create(None, {'name': 'snap'})['id']
        read = []

        def slow_glance(context, image_id, metadata, data, **kwargs):
            # a Glance far slower than the deletion: 64 KiB a 0.1 s, the
            # image's 32 MiB in 50 s
            while True:
                chunk = data.read(65536)
                if not chunk:
                    return
                read.append(len(chunk))
                if len(read) == 4:  # the upload is under way
                    self.api.delete_server(server['id'])
                time.sleep(0.1)

        start = time.monotonic()
        with fixtures.MockPatch('nova.image.glance.API.update',
                                side_effect=slow_glance):
            self.assertRaises(
                exception.InstanceNotFound, self.driver_of(
                    self.compute).snapshot,
                nova_context.get_admin_context(), instance, image_id,
                lambda **kw: None)
        self._wait_until_deleted(server)
        took = time.monotonic() - start
        self.assertLess(took, 30, 'the deletion waited for the upload')
        self.assertLess(sum(read), 16 * 2 ** 20)
        self.assertFalse(os.path.exists(self.instance_dir(server)))
        self.assertEqual([], os.listdir(
            os.path.join(self.instances_path, 'snapshots')))

    def test_a_restart_finishes_an_interrupted_live_snapshot(self):
        server = self.boot(self.image_id, self.flavor)
        self.wait_for_guest(server, 'ALTDRIVER-READY bootcount=1')
        root = os.path.join(self.instance_dir(server), 'disk')
        before = chain(root)
        # nova-compute dies right after the copy: the guest still writes to
        # the temporary overlay, nothing was committed or cleaned up.
        with fixtures.MockPatch(
                'nova_altdriver.guest.Guest.commit_active_layer',
                side_effect=SystemExit('nova-compute killed')) as died:
            self.api.post_server_action(
                server['id'], {'createImage': {'name': 'snap'}})
            self._wait_for_assert(lambda: self.assertTrue(died.mock.called))
        self.assertNotEqual(root, self.domain_disk(server))  # the overlay

        self.compute = self.restart_compute_service(self.compute)

        self.assertEqual(root, self.domain_disk(server))
        self.assertEqual(before, chain(root))
        self.assertEqual([], os.listdir(
            os.path.join(self.instances_path, 'snapshots')))
        dom = self.conn.lookupByUUIDString(server['id'])
        self.assertIn("file='%s'" % root, dom.XMLDesc(2))  # persistent
        ticks_before = len(markers.latest(self.console(server)).ticks)
        time.sleep(4)
        self.assertGreater(len(markers.latest(self.console(server)).ticks),
                           ticks_before)

    def assertWritesKept(self, server, before):
        """The guest's next boot finds every heartbeat it announced before
        (console up to before), none lost.
        """
        def found(console):  # what each boot found on its disk
            return [boot.found for boot in markers.boots(console)
                    if boot.found is not None]
        console = self.wait_for_guest(server, 'ALTDRIVER-HB-FOUND', 120)
        while len(found(console)) < 2:
            time.sleep(1)
            console = self.console(server)
        announced = max(beat for boot in markers.boots(before)
                        for beat in boot.beats)
        self.assertGreaterEqual(found(console)[-1], announced,
                                'the guest lost writes it saw completed')

    def test_a_failed_fold_back_keeps_the_guests_writes(self):
        server = self.boot(self.image_id, self.flavor)
        self.wait_for_guest(server, 'ALTDRIVER-HB 3')
        root = os.path.join(self.instance_dir(server), 'disk')
        before = chain(root)
        # The commit back fails (every attempt): the guest goes on writing
        # to the temporary overlay, which must outlive the failed snapshot.
        with fixtures.MockPatch(
                'nova_altdriver.guest.Guest.commit_active_layer',
                side_effect=exception.NovaException('commit failed')):
            self.api.post_server_action(
                server['id'], {'createImage': {'name': 'snap'}})
            # (the API set a task state; the failure ends it)
            self._wait_for_server_parameter(
                server, {'OS-EXT-STS:task_state': None})
        time.sleep(3)  # more writes into the overlay
        self.assertNotEqual(root, self.domain_disk(server))
        console = self.console(server)

        # nova's ordinary action brings the writes back into the disk.
        self._reboot_server(server, hard=True)
        self.assertWritesKept(server, console)
        self.assertEqual(before, chain(root))
        self.assertEqual([], os.listdir(
            os.path.join(self.instances_path, 'snapshots')))

    def test_a_commit_that_outlived_nova_compute_is_finished(self):
        server = self.boot(self.image_id, self.flavor)
        self.wait_for_guest(server, 'ALTDRIVER-HB 3')
        root = os.path.join(self.instance_dir(server), 'disk')
        before = chain(root)

        # nova-compute dies once the commit runs (and runs no clean-up)
        with fixtures.MockPatch(
                'nova_altdriver.guest.Guest.block_job_ready',
                side_effect=SystemExit('nova-compute killed')):
            self.api.post_server_action(
                server['id'], {'createImage': {'name': 'snap'}})
            self._wait_for_assert(lambda: self.assertTrue(
                self.conn.lookupByUUIDString(server['id']).blockJobInfo(
                    'vda', 0)))
        console = self.console(server)

        self.compute = self.restart_compute_service(self.compute)

        self.assertEqual(root, self.domain_disk(server))
        self.assertEqual({}, self.conn.lookupByUUIDString(
            server['id']).blockJobInfo('vda', 0))
        self.assertEqual(before, chain(root))
        self.assertEqual([], os.listdir(
            os.path.join(self.instances_path, 'snapshots')))
        self._reboot_server(server, hard=True)
        self.assertWritesKept(server, console)

    def domain_disk(self, server):
        """The file the guest's vda is now backed by (live definition)."""
        return self.domain_xml(self.compute, server).find(
            "devices/disk/target[@dev='vda']/../source").get('file')

    def test_shelve_a_paused_guest_offload_and_unshelve_with_its_data(self):
        self.flags(shelved_offload_time=0)
        server = self.boot(self.image_id, self.flavor)
        self.wait_for_guest(server, 'ALTDRIVER-READY bootcount=1')
        self.api.post_server_action(server['id'], {'pause': None})
        self._wait_for_state_change(server, 'PAUSED')

        self._shelve_server(server)   # power off, snapshot, offload
        self.assertFalse(os.path.exists(self.instance_dir(server)))
        self.assertEqual([], [d for d in self.conn.listAllDomains()
                              if d.UUIDString() == server['id']])

        self._unshelve_server(server)
        console = self.wait_for_guest(server, 'ALTDRIVER-READY bootcount=2')
        self.assertIn('ALTDRIVER-MARKER base-image', console)
        # Not backed by the shelve image nova deleted, but by the original.
        root = os.path.join(self.instance_dir(server), 'disk')
        self.assertEqual(
            [root, os.path.join(self.base_dir(),
                                builders.base_name(self.image_id))],
            chain(root))
