"""What interrupted snapshots leave, and how it is finished: real qcow2
files (qemu-img, qemu-io) under domains of libvirt's test driver.
"""

import os
import subprocess
import uuid

from lxml import etree
from nova import exception
from nova import objects

from nova_altdriver import host as host_mod
from nova_altdriver import snapshot
from nova_altdriver.tests import libvirt_test_driver
from nova_altdriver.tests.unit import base


def qemu_io(path, command, fmt='qcow2'):
    subprocess.run(['qemu-io', '-f', fmt, '-c', command, path], check=True,
                   capture_output=True)


def holds(path, pattern, fmt='qcow2'):
    """Whether the first 64 KiB the guest sees in path are all pattern."""
    return subprocess.run(
        ['qemu-io', '-f', fmt, '-c', 'read -P %d 0 64k' % pattern, path],
        capture_output=True, text=True).stdout.find('Pattern verification '
                                                    'failed') < 0


def with_disk(xml, path):
    dom = etree.fromstring(xml)
    devices = etree.SubElement(dom, 'devices')
    disk = etree.SubElement(devices, 'disk', type='file', device='disk')
    etree.SubElement(disk, 'driver', name='qemu', type='qcow2')
    etree.SubElement(disk, 'source', file=path)
    etree.SubElement(disk, 'target', dev='vda', bus='virtio')
    return etree.tostring(dom, encoding='unicode')


class RecoveryTest(base.TestCase):

    def setUp(self):
        super().setUp()
        self.host = host_mod.Host(self.uri)
        self.addCleanup(self.host.close)
        self.snapshot = snapshot.Snapshot(self.host, self.cache)
        self.snapshots = os.path.join(self.tmp, 'snapshots')
        os.makedirs(self.snapshots)

    def interrupted(self, owner='compute1', define=True):
        """A stopped guest whose writes went to a snapshot's overlay when
        everything stopped: its disk holds pattern 1, the overlay 2.
        """
        instance_uuid = str(uuid.uuid4())
        instance_dir = os.path.join(self.tmp, instance_uuid)
        os.makedirs(instance_dir)
        disk = os.path.join(instance_dir, 'disk')
        subprocess.run(['qemu-img', 'create', '-q', '-f', 'qcow2', disk,
                        '1M'], check=True)
        qemu_io(disk, 'write -P 1 0 64k')
        work = os.path.join(self.snapshots, instance_uuid + '-x1y2z3')
        os.makedirs(work)
        overlay = os.path.join(work, snapshot._OVERLAY)
        subprocess.run(['qemu-img', 'create', '-q', '-f', 'qcow2', '-F',
                        'qcow2', '-b', disk, overlay], check=True)
        qemu_io(overlay, 'write -P 2 0 64k')
        plain = libvirt_test_driver.domain_xml(instance_uuid, instance_uuid)
        with open(os.path.join(work, snapshot._DEFINITION), 'w') as f:
            f.write(with_disk(plain, disk))
        with open(os.path.join(work, snapshot._OWNER), 'w') as f:
            f.write(owner)
        if define:
            self.host.define(with_disk(plain, overlay))
        return instance_uuid, disk, work

    def test_a_stopped_guest_gets_its_writes_and_definition_back(self):
        instance_uuid, disk, work = self.interrupted()
        self.snapshot.recover_interrupted('compute1')
        self.assertTrue(holds(disk, 2), 'the overlay\'s writes were lost')
        self.assertFalse(os.path.exists(work))
        guest = self.host.find_guest(instance_uuid)
        self.assertEqual(
            [disk], [d.source for d in guest.disks(inactive=True)])

    def test_hard_reboot_settles_what_a_snapshot_left(self):
        instance_uuid, disk, work = self.interrupted()
        self.snapshot.settle(objects.Instance(uuid=instance_uuid))
        self.assertTrue(holds(disk, 2))
        self.assertFalse(os.path.exists(work))

    def test_an_evacuated_guest_gets_the_writes_of_the_failed_host(self):
        # The failed host died in the middle of a snapshot; this host
        # starts the guest from the shared instances path.
        instance_uuid, disk, work = self.interrupted(owner='failed-host',
                                                     define=False)
        self.snapshot.settle(objects.Instance(uuid=instance_uuid))
        self.assertTrue(holds(disk, 2))
        self.assertFalse(os.path.exists(work))

    def test_other_hosts_snapshots_are_left_alone(self):
        # Two hosts share the instances path: the other one is copying, and
        # this one still has the domain from before the guest was evacuated
        # there.
        instance_uuid, disk, work = self.interrupted(owner='compute2',
                                                     define=False)
        plain = libvirt_test_driver.domain_xml(instance_uuid, instance_uuid)
        self.host.define(with_disk(plain, disk))
        self.snapshot.recover_interrupted('compute1')
        self.assertTrue(os.path.exists(os.path.join(work,
                                                    snapshot._OVERLAY)))
        self.assertTrue(holds(disk, 1))

    def test_a_guest_this_host_no_longer_has_keeps_its_overlay(self):
        instance_uuid, disk, work = self.interrupted(define=False)
        self.snapshot.recover_interrupted('compute1')
        self.assertTrue(os.path.exists(os.path.join(work,
                                                    snapshot._OVERLAY)))

    def test_a_deleted_instance_leaves_nothing(self):
        instance_uuid, disk, work = self.interrupted(define=False)
        subprocess.run(['rm', '-r', os.path.dirname(disk)], check=True)
        self.snapshot.recover_interrupted('compute1')
        self.assertFalse(os.path.exists(work))

    def test_other_entries_of_the_snapshots_directory_are_ignored(self):
        for name in ('lost+found', 'tmpab12cd34',
                     str(uuid.uuid4()) + '-without-owner-file'):
            os.makedirs(os.path.join(self.snapshots, name))
            open(os.path.join(self.snapshots, name, 'theirs'), 'w').close()
        open(os.path.join(self.snapshots, 'stray-file'), 'w').close()
        instance_uuid, disk, work = self.interrupted()
        self.snapshot.recover_interrupted('compute1')
        self.assertTrue(holds(disk, 2))
        self.assertEqual(4, len(os.listdir(self.snapshots)))

    def test_one_that_cannot_be_finished_is_kept_and_the_rest_goes_on(self):
        _uuid, broken_disk, broken = self.interrupted()
        os.unlink(broken_disk)  # the commit has nowhere to go
        instance_uuid, disk, work = self.interrupted()
        self.snapshot.recover_interrupted('compute1')
        self.assertTrue(os.path.exists(broken))
        self.assertTrue(holds(disk, 2))

    def test_a_pivoted_guest_has_a_stale_overlay_dropped_not_committed(self):
        # nova-compute died right after the pivot: the running guest
        # writes to its disk again, the overlay is older than the disk.
        instance_uuid, disk, work = self.interrupted(define=False)
        plain = libvirt_test_driver.domain_xml(instance_uuid, instance_uuid)
        self.host.define(with_disk(plain, disk)).start()
        qemu_io(disk, 'write -P 3 0 64k')  # the guest after the pivot
        self.snapshot.recover_interrupted('compute1')
        self.assertTrue(holds(disk, 3), 'newer writes overwritten')
        self.assertFalse(os.path.exists(work))

    def test_a_pivoted_guest_stopped_since_has_its_overlay_dropped(self):
        instance_uuid, disk, work = self.interrupted(define=False)
        plain = libvirt_test_driver.domain_xml(instance_uuid, instance_uuid)
        self.host.define(with_disk(plain, disk))  # on its disk, stopped
        qemu_io(disk, 'write -P 3 0 64k')
        self.snapshot.recover_interrupted('compute1')
        self.assertTrue(holds(disk, 3), 'newer writes overwritten')
        self.assertFalse(os.path.exists(work))

    def test_forget_removes_the_work_of_a_deleted_instance(self):
        instance_uuid, disk, work = self.interrupted()
        self.snapshot.forget(objects.Instance(uuid=instance_uuid))
        self.assertFalse(os.path.exists(work))

    def test_a_work_directory_that_never_got_an_owner_goes(self):
        # nova-compute killed between making the directory and naming its
        # owner: nothing was ever redirected into it
        unnamed = os.path.join(self.snapshots, str(uuid.uuid4()) + '-abc')
        os.makedirs(unnamed)
        half_named = os.path.join(self.snapshots, str(uuid.uuid4()) + '-d')
        os.makedirs(half_named)
        open(os.path.join(half_named, 'host.tmp'), 'w').close()
        self.snapshot.recover_interrupted('compute1')
        self.assertEqual([], os.listdir(self.snapshots))


class CopyTest(base.TestCase):
    """The snapshot's copy of a stable chain: streamed to the upload, with
    nothing staged, unless it cannot be.
    """

    def setUp(self):
        super().setUp()
        self.host = host_mod.Host(self.uri)
        self.addCleanup(self.host.close)
        self.snapshot = snapshot.Snapshot(self.host, self.cache)
        self.instance = objects.Instance(uuid=str(uuid.uuid4()))
        self.work = os.path.join(self.tmp, 'work')
        os.makedirs(self.work)
        self.disk = os.path.join(self.tmp, 'disk')
        subprocess.run(['qemu-img', 'create', '-q', '-f', 'qcow2',
                        self.disk, '4M'], check=True)
        qemu_io(self.disk, 'write -P 7 0 64k')

    def copy(self, upload):
        return self.snapshot._copy(self.instance, self.disk, 'qcow2',
                                   self.work, upload)

    def uploaded_image(self, data):
        image = os.path.join(self.tmp, 'uploaded')
        with open(image, 'wb') as f:
            f.write(data)
        return image

    def test_streamed_with_nothing_staged(self):
        uploaded = []

        def upload(data):
            # while the upload runs, the work directory stays empty
            uploaded.append((os.listdir(self.work), data.read()))
        self.assertIsNone(self.copy(upload))
        staged, data = uploaded[0]
        self.assertEqual([], staged)
        self.assertTrue(holds(self.uploaded_image(data), 7))

    def test_a_compressed_snapshot_is_staged_for_the_caller(self):
        self.flags(snapshot_compression=True, group='altdriver')
        staged = self.copy(lambda data: self.fail('streamed'))
        self.assertEqual(os.path.join(self.work, snapshot._STAGED), staged)
        self.assertTrue(holds(staged, 7))

    def test_deleting_the_instance_ends_its_upload(self):
        def upload(data):
            data.read(65536)
            # nova deletes the server (forget waits for the snapshot's lock
            # only in the real flow, where the upload holds it)
            self.snapshot.forget(self.instance)
            data.read(65536)
        self.assertRaises(exception.InstanceNotFound, self.copy, upload)
        self.assertEqual({}, self.snapshot._uploads)
