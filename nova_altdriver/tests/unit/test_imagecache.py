import os
import subprocess

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
        self.assertEqual(info.file_format, imagecache.image_format(path))
        self.assertEqual(info.virtual_size, imagecache.virtual_size(path))

    def test_qcow2(self):
        self.assertLikeQemuImg(self.make('qcow2', '1073741824'))
        self.assertLikeQemuImg(self.make('qcow2', '3G', 'big'))

    def test_raw(self):
        self.assertLikeQemuImg(self.make('raw', '48M'))
        empty = os.path.join(self.tmp, 'empty')
        open(empty, 'w').close()
        self.assertEqual(('raw', 0), (imagecache.image_format(empty),
                                      imagecache.virtual_size(empty)))

    def test_other_formats_are_asked_of_qemu_img(self):
        # only possible when bases keep their format (force_raw_images off)
        self.flags(force_raw_images=False)
        self.assertLikeQemuImg(self.make('vmdk', '64M'))
