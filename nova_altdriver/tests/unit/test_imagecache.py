import os
import subprocess
import sys

import fixtures
from nova import exception
from nova.virt import images

from nova_altdriver import imagecache
from nova_altdriver.tests.unit import base


class BaseFileInfoTest(base.TestCase):
    """Format and size of cached base files, read from their headers,
    agree with qemu-img's own answer.
    """

    def make(self, fmt, size, name=None):
        path = os.path.join(self.tmp, name or fmt)
        subprocess.run(['qemu-img', 'create', '-q', '-f', fmt, path, size],
                       check=True)
        return path

    def assertLikeQemuImg(self, path):
        info = images.qemu_img_info(path)
        self.assertEqual((info.file_format, info.virtual_size),
                         imagecache.base_info(path))

    def test_qcow2(self):
        self.assertLikeQemuImg(self.make('qcow2', '1073741824'))
        self.assertLikeQemuImg(self.make('qcow2', '3G', 'big'))

    def test_raw(self):
        self.assertLikeQemuImg(self.make('raw', '48M'))
        empty = os.path.join(self.tmp, 'empty')
        open(empty, 'w').close()
        self.assertEqual(('raw', 0), imagecache.base_info(empty))

    def test_other_formats_are_asked_of_qemu_img(self):
        # only possible when bases keep their format (force_raw_images off)
        self.flags(force_raw_images=False)
        self.assertLikeQemuImg(self.make('vmdk', '64M'))


class BootFileTest(base.TestCase):
    """An image first seen as a kernel is fetched again, and inspected,
    when a disk is made of it.
    """

    def test_a_kernel_is_never_the_base_of_a_disk(self):
        fetched = []

        def fetch(context, image_id, path, trusted_certs=None):
            fetched.append(image_id)
            subprocess.run(['qemu-img', 'create', '-q', '-f', 'qcow2', '-F',
                            'raw', '-b', '/etc/shadow', path], check=True)

        self.useFixture(fixtures.MonkeyPatch('nova.virt.images.fetch', fetch))
        # (Glance's view of the image is not needed for this)
        self.flags(disable_deep_image_inspection=True, group='workarounds')
        kernel = self.cache.fetch_boot_file(None, 'img')
        self.assertRaises(exception.ImageUnacceptable,
                          self.cache.fetch_image, None, 'img')
        self.assertEqual(['img', 'img'], fetched)
        self.assertEqual([os.path.basename(kernel)],
                         os.listdir(self.layout.base_dir))


class AgeingTest(base.TestCase):

    def setUp(self):
        super().setUp()
        self.flags(remove_unused_original_minimum_age_seconds=3600,
                   group='image_cache')
        self.manager = imagecache.ImageCacheManager(self.cache)
        # (nova asks its database for the instances' block devices)
        self.useFixture(fixtures.MockPatch(
            'nova.objects.BlockDeviceMappingList.bdms_by_instance_uuid',
            return_value={}))

    def old_base(self, name):
        os.makedirs(self.layout.base_dir, exist_ok=True)
        path = os.path.join(self.layout.base_dir, name)
        subprocess.run(['qemu-img', 'create', '-q', '-f', 'raw', path, '1M'],
                       check=True)
        os.utime(path, (1, 1))
        return path

    def test_unused_old_bases_go(self):
        path = self.old_base('ephemeral_1_0706d66')
        self.manager.update(None, [])
        self.assertFalse(os.path.exists(path))

    def test_a_base_under_any_disk_stays(self):
        # nova's list of used images names only an instance's first
        # ephemeral disk
        second = self.old_base('ephemeral_2_0706d66')
        instance_dir = os.path.join(self.tmp, 'some-instance')
        os.makedirs(instance_dir)
        subprocess.run(['qemu-img', 'create', '-q', '-f', 'qcow2', '-F',
                        'raw', '-b', second,
                        os.path.join(instance_dir, 'disk.eph1')], check=True)
        self.manager.update(None, [])
        self.assertTrue(os.path.exists(second))

    def test_a_base_handed_out_meanwhile_stays(self):
        path = self.old_base('swap_512')
        handed_out = []
        locked = self.cache.locked

        def a_spawn_takes_it_first(name, blocking=True):
            # between the cache manager's listing and its removal
            if name == 'swap_512' and not handed_out:
                handed_out.append('asked')
                handed_out[0] = self.cache.blank_swap(512)
            return locked(name, blocking)

        self.useFixture(fixtures.MockPatchObject(
            self.cache, 'locked', side_effect=a_spawn_takes_it_first))
        self.manager.update(None, [])
        self.assertEqual([path], handed_out)
        self.assertTrue(os.path.exists(path))


class Qcow2HeaderTest(base.TestCase):

    def make(self, name, *options):
        path = os.path.join(self.tmp, name)
        subprocess.run(['qemu-img', 'create', '-q', '-f', 'qcow2'] +
                       list(options) + [path, '1M'], check=True)
        return path

    def test_backing_file_and_data_file(self):
        plain = self.make('plain')
        self.assertTrue(imagecache.is_plain_qcow2(plain))
        self.assertIsNone(imagecache.backing_file(plain))
        overlay = self.make('overlay', '-F', 'qcow2', '-b', plain)
        self.assertEqual(plain, imagecache.backing_file(overlay))
        external = self.make('external', '-o', 'data_file=%s' % os.path.join(
            self.tmp, 'data'))
        self.assertFalse(imagecache.is_plain_qcow2(external))
        self.assertTrue(imagecache.is_plain_qcow2(
            self.make('v2', '-o', 'compat=0.10')))


class UnfinishedFetchTest(base.TestCase):

    def test_what_a_dead_fetch_left_goes_and_the_bases_stay(self):
        os.makedirs(self.layout.base_dir)
        names = ['abc', 'abc.tmp', 'abc.tmp.part', 'def.boot',
                 'def.boot.tmp', 'swap_512']
        for name in names:
            open(os.path.join(self.layout.base_dir, name), 'w').close()
        imagecache.ImageCacheManager(self.cache).remove_unfinished()
        self.assertEqual(['abc', 'def.boot', 'swap_512'],
                         sorted(os.listdir(self.layout.base_dir)))

    def test_a_fetch_under_way_elsewhere_is_not_waited_for(self):
        # (another host of a shared instances path: another process)
        os.makedirs(self.layout.base_dir)
        part = os.path.join(self.layout.base_dir, 'abc.tmp.part')
        open(part, 'w').close()
        holder = subprocess.Popen(
            [sys.executable, '-c',
             'import sys, time\n'
             'from oslo_concurrency import lockutils\n'
             'with lockutils.lock("abc", external=True,\n'
             '                    lock_path=sys.argv[1]):\n'
             '    print("held", flush=True)\n'
             '    time.sleep(60)\n',
             self.layout.locks_dir], stdout=subprocess.PIPE, text=True)
        self.addCleanup(holder.wait)
        self.addCleanup(holder.kill)
        self.assertEqual('held\n', holder.stdout.readline())
        imagecache.ImageCacheManager(self.cache).remove_unfinished()
        self.assertTrue(os.path.exists(part))
