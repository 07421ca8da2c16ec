"""What a resize refuses before it touches anything, and what a
destination accepts from the source's description of the disks: file names
in its own instance directory, the formats it knows.
"""

from nova import exception
from nova import objects

from nova_altdriver import resize
from nova_altdriver.tests import builders
from nova_altdriver.tests.unit import base


class DiskSpecTest(base.TestCase):

    def spec(self, **changes):
        return dict({'name': 'disk', 'format': 'qcow2',
                     'backing': 'a' * 40}, **changes)

    def test_the_disks_a_resize_moves(self):
        for name in ('disk', 'disk.local', 'disk.eph0', 'disk.config'):
            self.assertEqual(self.spec(name=name),
                             resize._checked_spec(self.spec(name=name)))
        self.assertEqual(
            self.spec(format='raw', backing=None),
            resize._checked_spec(self.spec(format='raw',
                                                  backing=None)))

    def test_anything_else_is_refused(self):
        for hostile in (dict(name='../../etc/shadow'), dict(name='/dev/sda'),
                        dict(name='disk.swap'), dict(name='console.log'),
                        dict(name='.disk'), dict(name=''),
                        dict(backing='../../../etc/shadow'),
                        dict(backing='/var/lib/nova/other/disk'),
                        dict(format='vmdk'), dict(format=None)):
            self.assertRaises(exception.ResizeError,
                              resize._checked_spec,
                              self.spec(**hostile))


class ShrinkingTest(base.TestCase):
    """(A smaller root disk of an image-backed server nova's API refuses
    itself; the driver's check is the last line.)
    """

    def flavor(self, root_gb, ephemeral_gb=0):
        return objects.Flavor(root_gb=root_gb, ephemeral_gb=ephemeral_gb)

    def test_a_smaller_local_disk_is_refused(self):
        instance = builders.instance(root_gb=2, ephemeral_gb=2)
        for smaller in (self.flavor(1, 2), self.flavor(2, 1)):
            ex = self.assertRaises(exception.InstanceFaultRollback,
                                   resize.Resize._refuse_shrinking,
                                   instance, smaller, None)
            self.assertIn('never shrinks a disk', str(ex.inner_exception))

    def test_a_boot_volume_is_not_the_flavors_disk(self):
        instance = builders.instance(root_gb=2)
        bdi = {'block_device_mapping': [{'boot_index': 0,
                                         'connection_info': {}}]}
        resize.Resize._refuse_shrinking(instance, self.flavor(0), bdi)
        resize.Resize._refuse_shrinking(instance, self.flavor(2), None)
