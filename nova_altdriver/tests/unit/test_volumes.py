import os

from lxml import etree

from nova_altdriver import domain
from nova_altdriver import guest as guest_mod
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

    def test_its_qos_specs_limit_it(self):
        # every limit the in-tree driver passes on, as Cinder may send them
        qos = {name: n for n, name in enumerate(reversed(domain.IOTUNE))}
        qos.update({'read_bytes_sec_max_length': 5, 'consumer': 'front-end'})
        disk = volumes.volume_disk(builders.rbd_connection_info(
            VOLUME, qos_specs=qos), 'vdb', 'virtio')
        self.assertEqual(tuple((name, str(qos[name]))
                               for name in domain.IOTUNE), disk.iotune)

    def test_qos_specs_of_another_shape_are_ignored(self):
        disk = volumes.volume_disk(builders.rbd_connection_info(
            VOLUME, qos_specs=['total_iops_sec', 100]), 'vdb', 'virtio')
        self.assertEqual((), disk.iotune)

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


class AttachingDomain(object):
    """A running domain that records the devices attached to it (libvirt's
    test driver attaches none).
    """

    def __init__(self):
        self.attached = []

    def UUIDString(self):
        return builders.INSTANCE_UUID

    def isActive(self):
        return True

    def attachDeviceFlags(self, xml, flags):
        self.attached.append(etree.fromstring(xml))


class FoundHost(object):

    def __init__(self, guest):
        self.guest = guest

    def get_guest(self, instance):
        return self.guest


class AttachTest(base.TestCase):

    def test_a_volume_attached_later_carries_its_limits(self):
        dom = AttachingDomain()
        info = builders.rbd_connection_info(
            VOLUME, qos_specs={'read_iops_sec': '300'})
        info['data']['auth_enabled'] = False  # (no secret to look for)
        volumes.Volumes(FoundHost(guest_mod.Guest(dom))).attach(
            info, builders.instance(
                extra_specs={'quota:disk_read_iops_sec': '50'}), '/dev/vdb',
            disk_bus='virtio')
        # its own limits, never the flavor's (as the in-tree driver)
        self.assertEqual(
            [('read_iops_sec', '300')],
            [(el.tag, el.text) for el in dom.attached[0].find('iotune')])
