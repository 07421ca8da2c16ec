import os

from nova_altdriver.tests import builders
from nova_altdriver.tests.unit import base
from nova_altdriver import volumes

VOLUME = 'a1b2c3d4-0000-4000-8000-000000000001'


class VolumeDiskTest(base.TestCase):

    def test_nova_names_become_the_bus_s_names(self):
        self.assertEqual('vdc', volumes.device_of('/dev/vdc', 'virtio'))
        # servers made before this driver named their root /dev/vda
        self.assertEqual('vdb', volumes.device_of('/dev/sdb', 'virtio'))
        self.assertEqual('sdb', volumes.device_of('/dev/vdb', 'scsi'))

    def test_an_rbd_volume(self):
        disk = volumes.volume_disk(builders.rbd_connection_info(VOLUME),
                                   'vdb', 'virtio')
        self.assertEqual('volumes/volume-' + VOLUME, disk.rbd.name)
        self.assertEqual((('127.0.0.1', '6789'),), disk.rbd.hosts)
        self.assertEqual(('cinder', builders.CEPH_SECRET_UUID),
                         (disk.rbd.username, disk.rbd.secret_uuid))
        self.assertEqual((VOLUME, 'ua-' + VOLUME, 'raw'),
                         (disk.serial, disk.alias, disk.format))
        self.assertFalse(disk.readonly or disk.shareable)

    def test_other_kinds_are_refused_by_name(self):
        info = {'driver_volume_type': 'iscsi', 'data': {}}
        e = self.assertRaises(volumes.UnsupportedVolume,
                              volumes.volume_disk, info, 'vdb', 'virtio')
        self.assertIn('not iscsi volumes', str(e))


class CephxKeyTest(base.TestCase):

    def test_the_key_of_a_keyring(self):
        self.flags(ceph_conf_dir=self.tmp, group='altdriver')
        with open(os.path.join(self.tmp, 'ceph.client.cinder.keyring'),
                  'w') as f:
            f.write('[client.cinder]\n\tkey = c2Vzc2lvbiBrZXk=\n'
                    '\tcaps mon = "profile rbd"\n')
        self.assertEqual(b'session key',
                         volumes._cephx_key('ceph', 'cinder', 'u'))

    def test_no_keyring_says_what_is_missing(self):
        self.flags(ceph_conf_dir=self.tmp, group='altdriver')
        e = self.assertRaises(volumes.KeyringMissing, volumes._cephx_key,
                              'ceph', 'cinder', builders.CEPH_SECRET_UUID)
        self.assertIn(builders.CEPH_SECRET_UUID, str(e))
        self.assertIn('ceph.client.cinder.keyring', str(e))
