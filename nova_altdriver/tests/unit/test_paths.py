"""The layout is the in-tree libvirt driver's: each path this driver uses
is where nova's own code puts it.
"""

import os

from nova import exception
from nova.virt.libvirt import driver as libvirt_driver
from nova.virt.libvirt import imagecache as libvirt_imagecache
from nova.virt.libvirt import utils as libvirt_utils

from nova_altdriver import imagecache
from nova_altdriver import paths
from nova_altdriver.tests import builders
from nova_altdriver.tests.unit import base


class InTreeLayoutTest(base.TestCase):

    def setUp(self):
        super().setUp()
        self.instance = builders.instance()
        self.in_tree_dir = libvirt_utils.get_instance_path(self.instance)

    def test_the_instance_directory_and_its_files(self):
        self.assertEqual(self.in_tree_dir,
                         self.layout.instance_dir(self.instance.uuid))
        self.assertEqual(
            libvirt_driver.LibvirtDriver._get_console_log_path(self.instance),
            self.layout.console_log(self.instance))
        for name, path in (
                ('disk.info', self.layout.disk_info(self.instance)),
                ('unrescue.xml', self.layout.unrescue_xml(self.instance)),
                ('disk', self.layout.instance_file(self.instance,
                                                   paths.DISK)),
                ('disk.rescue', self.layout.instance_file(
                    self.instance, paths.RESCUE_DISK)),
                ('disk.config.rescue', self.layout.instance_file(
                    self.instance, paths.RESCUE_CONFIG_DRIVE))):
            self.assertEqual(os.path.join(self.in_tree_dir, name), path)

    def test_the_directory_a_resize_sets_aside(self):
        # in-tree: nova.virt.libvirt.driver's inst_base + '_resize'
        self.assertEqual(self.in_tree_dir + '_resize',
                         self.layout.resize_dir(self.instance.uuid))

    def test_the_image_cache(self):
        self.flags(subdirectory_name='cache', group='image_cache')
        layout = paths.Layout.from_config()
        self.assertEqual(os.path.join(self.tmp, 'cache'), layout.base_dir)
        self.assertEqual(
            libvirt_imagecache.get_cache_fname(builders.IMAGE_UUID),
            imagecache.image_base_name(builders.IMAGE_UUID))

    def test_rescue_files_made_or_being_made(self):
        os.makedirs(self.in_tree_dir)
        names = ['disk', 'disk.rescue', 'disk.config.rescue.part',
                 'unrescue.xml', 'disk.part']
        for name in names:
            open(os.path.join(self.in_tree_dir, name), 'w').close()
        self.assertEqual(
            ['disk.config.rescue.part', 'disk.rescue'],
            sorted(os.path.basename(p)
                   for p in self.layout.rescue_files(self.instance)))
        self.assertEqual(
            ['disk.config.rescue.part', 'disk.part'],
            sorted(os.path.basename(p)
                   for p in self.layout.unfinished_disks(self.instance)))


class SharedStorageProbeTest(base.TestCase):

    def test_a_probe_is_seen_where_the_path_is_shared(self):
        instance = builders.instance()
        os.makedirs(self.layout.instance_dir(instance.uuid))
        data = self.layout.place_probe(instance)
        elsewhere = paths.Layout(self.tmp + '-elsewhere')
        self.assertTrue(self.layout.probe_visible(data))
        self.assertFalse(elsewhere.probe_visible(data))
        self.layout.remove_probe(data)
        self.assertFalse(self.layout.probe_visible(data))

    def test_only_a_probe_can_be_named(self):
        for name in ('../etc/passwd', 'x/disk', 'x/../../etc/shadow'):
            self.assertRaises(exception.NovaException,
                              self.layout.remove_probe,
                              {'filename': name})

    def test_a_resize_probe_is_seen_where_the_path_is_shared(self):
        instance = builders.instance()
        os.makedirs(self.layout.resize_dir(instance.uuid))
        name = self.layout.place_resize_probe(instance.uuid)
        elsewhere = paths.Layout(self.tmp + '-elsewhere')
        self.assertTrue(self.layout.resize_probe_visible(instance.uuid, name))
        self.assertFalse(elsewhere.resize_probe_visible(instance.uuid, name))
        for hostile in ('../../etc/passwd', 'disk', '/etc/shadow',
                        'shared-storage-probe-x/../../disk'):
            self.assertRaises(exception.NovaException,
                              self.layout.resize_probe_visible,
                              instance.uuid, hostile)
