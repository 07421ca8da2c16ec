"""What a destination accepts from the source's description of the disks:
file names in its own instance directory, the formats it knows.
"""

from nova import exception

from nova_altdriver import resize
from nova_altdriver.tests.unit import base


class DiskSpecTest(base.TestCase):

    def spec(self, **changes):
        return dict({'name': 'disk', 'format': 'qcow2',
                     'backing': 'a' * 40}, **changes)

    def test_the_disks_a_resize_moves(self):
        for name in ('disk', 'disk.local', 'disk.eph0', 'disk.config'):
            self.assertEqual(self.spec(name=name),
                             resize.Resize._checked_spec(self.spec(name=name)))
        self.assertEqual(
            self.spec(format='raw', backing=None),
            resize.Resize._checked_spec(self.spec(format='raw',
                                                  backing=None)))

    def test_anything_else_is_refused(self):
        for hostile in (dict(name='../../etc/shadow'), dict(name='/dev/sda'),
                        dict(name='disk.swap'), dict(name='console.log'),
                        dict(name='.disk'), dict(name=''),
                        dict(backing='../../../etc/shadow'),
                        dict(backing='/var/lib/nova/other/disk'),
                        dict(format='vmdk'), dict(format=None)):
            self.assertRaises(exception.ResizeError,
                              resize.Resize._checked_spec,
                              self.spec(**hostile))
