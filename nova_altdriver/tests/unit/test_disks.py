"""Disk formats: what a guest writes into its disks never decides how the
host opens them; disk.info is written so that a crash cannot damage it.
"""

import os
import subprocess

from nova import objects
from oslo_serialization import jsonutils

from nova_altdriver import disks
from nova_altdriver import imagecache
from nova_altdriver import paths
from nova_altdriver.tests.unit import base

IMAGE = '6b0a1e2c-3a6e-4a8a-9c2f-1b2c3d4e5f60'


def qemu_img(*args):
    subprocess.run(['qemu-img'] + list(args), check=True,
                   capture_output=True)


class RecordedFormatTest(base.TestCase):

    def setUp(self):
        super().setUp()
        self.instance = objects.Instance(uuid=IMAGE.replace('6b', '7c'),
                                         image_ref=IMAGE,
                                         system_metadata={})
        self.dir = self.layout.instance_dir(self.instance.uuid)
        os.makedirs(self.dir)
        os.makedirs(self.layout.base_dir)
        self.base = os.path.join(self.layout.base_dir,
                                 imagecache.image_base_name(IMAGE))
        qemu_img('create', '-f', 'raw', self.base, '1M')

    def path(self, name):
        return os.path.join(self.dir, name)

    def recorded(self, path):
        return disks.recorded_format(self.cache, self.instance, path)

    def guest_wrote_qcow2_header(self, name, *options):
        """A raw disk whose guest wrote a qcow2 header into it."""
        qemu_img('create', '-f', 'qcow2', *options, self.path(name), '1M')
        return self.path(name)

    def record(self, info):
        with open(self.path('disk.info'), 'w') as f:
            f.write(info)

    def test_the_record_wins_over_the_content(self):
        disk = self.guest_wrote_qcow2_header('disk', '-F', 'raw', '-b',
                                             '/etc/shadow')
        self.record(jsonutils.dumps({disk: 'raw'}))
        self.assertEqual('raw', self.recorded(disk))

    def test_without_a_record_a_header_naming_a_host_file_is_raw(self):
        disk = self.guest_wrote_qcow2_header('disk', '-F', 'raw', '-b',
                                             '/etc/shadow')
        for damaged in (None, '', '{not json', '[]', '{}'):
            if damaged is not None:
                self.record(damaged)
            self.assertEqual('raw', self.recorded(disk), damaged)

    def test_without_a_record_another_tenants_base_is_raw(self):
        other = os.path.join(self.layout.base_dir,
                             imagecache.image_base_name('someone-else'))
        qemu_img('create', '-f', 'raw', other, '1M')
        disk = self.guest_wrote_qcow2_header('disk', '-F', 'raw', '-b', other)
        self.assertEqual('raw', self.recorded(disk))

    def test_without_a_record_an_external_data_file_is_raw(self):
        disk = self.guest_wrote_qcow2_header(
            'disk', '-o', 'data_file=%s' % self.path('data'))
        self.assertEqual('raw', self.recorded(disk))

    def test_without_a_record_the_driver_s_own_overlays_are_qcow2(self):
        disk = self.guest_wrote_qcow2_header('disk', '-F', 'raw', '-b',
                                             self.base)
        swap_base = os.path.join(self.layout.base_dir, 'swap_512')
        qemu_img('create', '-f', 'raw', swap_base, '1M')
        swap = self.guest_wrote_qcow2_header('disk.swap', '-F', 'raw', '-b',
                                             swap_base)
        plain = self.guest_wrote_qcow2_header('disk.local')
        for path in (disk, swap, plain):
            self.assertEqual('qcow2', self.recorded(path))
        raw = self.path('disk.config')
        qemu_img('create', '-f', 'raw', raw, '1M')
        self.assertEqual('raw', self.recorded(raw))


class DiskInfoTest(base.TestCase):

    def test_written_whole_and_only_when_it_changes(self):
        instance = objects.Instance(uuid=IMAGE)
        made = disks.InstanceDisks(self.cache, instance,
                                   objects.ImageMeta.from_dict({}))
        os.makedirs(made.dir)
        layout = [disks.domain.Disk(made.path('disk'), 'qcow2', 'vda',
                                    'virtio')]
        made.write_disk_info(layout)
        path = made.path('disk.info')
        self.assertEqual({made.path('disk'): 'qcow2'},
                         jsonutils.loads(open(path).read()))
        inode = os.stat(path).st_ino
        made.write_disk_info(layout)
        self.assertEqual(inode, os.stat(path).st_ino)  # not rewritten
        made.write_disk_info(layout + [disks.domain.Disk(
            made.path('disk.config'), 'raw', 'hda', 'ide', 'cdrom')])
        self.assertNotEqual(inode, os.stat(path).st_ino)  # replaced whole
        self.assertEqual(['disk.info'], os.listdir(made.dir))

    def test_a_failed_write_keeps_the_old_file(self):
        path = os.path.join(self.tmp, 'file')
        paths.write_atomically(path, 'old')
        self.assertRaises(TypeError, paths.write_atomically, path, object())
        self.assertEqual('old', open(path).read())
        self.assertEqual(['file'], [n for n in os.listdir(self.tmp)
                                    if n.startswith('file')])


class RescueFilesTest(base.TestCase):

    def test_a_rescue_killed_while_saving_the_definition_leaves_nothing(self):
        instance = objects.Instance(uuid=IMAGE)
        os.makedirs(self.layout.instance_dir(instance.uuid))
        for name in ('disk', 'disk.rescue', 'disk.config.rescue',
                     'disk.config.rescue.part', 'unrescue.xml',
                     'unrescue.xml.tmp'):
            open(os.path.join(self.layout.instance_dir(instance.uuid), name),
                 'w').close()
        disks.remove_rescue_files(self.layout, instance)
        self.assertEqual(['disk'], os.listdir(
            self.layout.instance_dir(instance.uuid)))


class ConfigDriveDeviceTest(base.TestCase):
    """The config drive takes the last name of its bus, as in the in-tree
    driver: the next name after the disks nova knows of is the one nova
    gives a volume attached later (tempest's
    test_attach_scsi_disk_with_config_drive).
    """

    def config_drive_of(self, **props):
        instance = objects.Instance(
            uuid=IMAGE, image_ref=IMAGE, config_drive='True',
            system_metadata={'image_' + k: v for k, v in props.items()})
        made = disks.InstanceDisks(self.cache, instance, instance.image_meta,
                                   taken={'sda'})
        os.makedirs(made.dir)
        open(made.path('disk.config'), 'w').close()  # made already
        return made.config_drive(None, None, None, None)

    def test_a_cdrom_on_the_root_disk_s_bus_leaves_the_next_name_free(self):
        drive, = self.config_drive_of(hw_disk_bus='scsi',
                                      hw_cdrom_bus='scsi')
        self.assertEqual(('sdz', 'scsi', 'cdrom'),
                         (drive.dev, drive.bus, drive.device))

    def test_an_ide_cdrom_is_the_last_of_four(self):
        drive, = self.config_drive_of()
        self.assertEqual(('hdd', 'ide'), (drive.dev, drive.bus))

    def test_a_vfat_drive_on_the_disk_bus(self):
        self.flags(config_drive_format='vfat')
        drive, = self.config_drive_of(hw_disk_bus='virtio')
        self.assertEqual(('vdz', 'virtio', 'disk'),
                         (drive.dev, drive.bus, drive.device))
