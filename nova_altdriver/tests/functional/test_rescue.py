"""Rescue and unrescue through nova's API on the libvirt test driver."""

import hashlib
import os
import subprocess

import fixtures
import libvirt
from lxml import etree

from nova_altdriver.tests import builders
from nova_altdriver.tests.functional import base


class RescueTest(base.TestCase):

    def setUp(self):
        super().setUp()
        self.compute = self.start_compute()
        self.image_id = self.upload_image(self.make_qcow2())
        self.flavor_id = self.small_flavor(ephemeral=1, swap=16)
        self.server = self._create_server(image_uuid=self.image_id,
                                          flavor_id=self.flavor_id,
                                          networks='none')
        self.dir = self.instance_dir(self.server)

    def rescue(self, image_id=None):
        body = {'adminPass': 'rescue-pass'}
        if image_id:
            body['rescue_image_ref'] = image_id
        self.api.post_server_action(self.server['id'], {'rescue': body})
        return self._wait_for_state_change(self.server, 'RESCUE')

    def disks(self):
        """[(target dev, bus, source file name, boot order)]"""
        xml = self.domain_xml(self.compute, self.server)
        return [(d.find('target').get('dev'), d.find('target').get('bus'),
                 os.path.basename(d.find('source').get('file')),
                 d.find('boot').get('order') if d.find('boot') is not None
                 else None)
                for d in xml.findall('devices/disk')]

    def base_of(self, image_id):
        return os.path.join(self.base_dir(),
                            hashlib.sha1(image_id.encode()).hexdigest())

    def assertOriginal(self):
        self.assertEqual([('vda', 'virtio', 'disk', None),
                          ('vdb', 'virtio', 'disk.eph0', None),
                          ('vdc', 'virtio', 'disk.swap', None)],
                         self.disks())
        self.assertEqual([], [f for f in os.listdir(self.dir)
                              if f.endswith('.rescue') or
                              f == 'unrescue.xml'])

    def test_legacy_rescue_and_unrescue(self):
        self.assertOriginal()
        original = self.domain_xml(self.compute, self.server)
        self.rescue()

        # The rescue disk first, the original root disk second, nothing else
        self.assertEqual([('vda', 'virtio', 'disk.rescue', None),
                          ('vdb', 'virtio', 'disk', None)], self.disks())
        # ... a small overlay on the rescue image (the instance's own).
        rescue_disk = os.path.join(self.dir, 'disk.rescue')
        self.assertEqual(self.base_of(self.image_id),
                         builders.backing_file(rescue_disk))
        self.assertTrue(os.path.exists(os.path.join(self.dir,
                                                    'unrescue.xml')))

        self._unrescue_server(self.server)
        self.assertOriginal()
        # The very definition from before: same machine, same devices.
        self.assertEqual(
            etree.tostring(original.find('devices')),
            etree.tostring(self.domain_xml(self.compute,
                                           self.server).find('devices')))

    def test_rescue_with_another_image_from_a_stopped_server(self):
        rescue_image = self.upload_image(self.make_qcow2('rescue.qcow2'))
        self._stop_server(self.server)
        self.rescue(rescue_image)
        self.assertEqual(self.base_of(rescue_image),
                         builders.backing_file(
                             os.path.join(self.dir, 'disk.rescue')))
        self._unrescue_server(self.server)
        self.assertOriginal()

    def test_stable_device_rescue_keeps_the_devices(self):
        rescue_image = self.upload_image(
            self.make_qcow2('rescue.qcow2'), hw_rescue_device='disk',
            hw_rescue_bus='usb')
        self.rescue(rescue_image)
        self.assertEqual([('vda', 'virtio', 'disk', None),
                          ('vdb', 'virtio', 'disk.eph0', None),
                          ('vdc', 'virtio', 'disk.swap', None),
                          ('sda', 'usb', 'disk.rescue', '1')], self.disks())
        self._unrescue_server(self.server)
        self.assertOriginal()

    def test_stable_rescue_when_the_original_image_is_gone(self):
        rescue_image = self.upload_image(
            self.make_qcow2('rescue.qcow2'), hw_rescue_bus='virtio')
        self.glance.delete(None, self.image_id)
        self.rescue(rescue_image)
        self.assertEqual('disk.rescue', self.disks()[-1][2])
        self._unrescue_server(self.server)
        self.assertOriginal()

    def test_a_second_rescue_gets_a_new_rescue_disk(self):
        self.rescue()
        rescue_disk = os.path.join(self.dir, 'disk.rescue')
        subprocess.run(['qemu-io', '-f', 'qcow2', '-c',
                        'write -P 0x52 0 64k', rescue_disk],
                       check=True, capture_output=True)
        self._unrescue_server(self.server)
        self.rescue()
        read = subprocess.run(['qemu-io', '-f', 'qcow2', '-c',
                               'read -P 0x52 0 64k', rescue_disk],
                              capture_output=True, text=True)
        self.assertIn('Pattern verification failed', read.stdout)

    def test_unrescue_without_the_saved_definition(self):
        self.rescue()
        with open(os.path.join(self.dir, 'unrescue.xml'), 'w') as f:
            f.write('<domain>truncated')
        self._unrescue_server(self.server)
        self.assertOriginal()

    def test_unrescue_after_a_compute_restart(self):
        self.rescue()
        self.compute = self.restart_compute_service(self.compute)
        self._unrescue_server(self.server)
        self.assertOriginal()


class RescueEdgeTest(base.TestCase):

    def setUp(self):
        super().setUp()
        self.compute = self.start_compute()
        self.image_id = self.upload_image(self.make_qcow2())
        self.flavor_id = self.small_flavor()

    def boot(self, **extra):
        return self._create_server(image_uuid=self.image_id,
                                   flavor_id=self.flavor_id,
                                   networks='none', **extra)

    def targets(self, server):
        return [(d.find('target').get('dev'),
                 os.path.basename(d.find('source').get('file')))
                for d in self.domain_xml(self.compute, server).findall(
                    'devices/disk')]

    def test_legacy_rescue_with_a_vfat_config_drive(self):
        # The config drive on the disk bus (the last name, vdz) stays clear
        # of vdb, where the legacy layout moves the root disk.
        self.flags(config_drive_format='vfat', force_config_drive=True)
        # (nova mounts a vfat drive to fill it: root only, not here)
        self.useFixture(fixtures.MonkeyPatch(
            'nova.virt.configdrive.ConfigDriveBuilder.make_drive',
            lambda self, path: open(path, 'wb').close()))
        server = self.boot()
        self.api.post_server_action(server['id'], {'rescue': {}})
        self._wait_for_state_change(server, 'RESCUE')
        self.assertEqual([('vda', 'disk.rescue'), ('vdb', 'disk'),
                          ('vdz', 'disk.config.rescue')],
                         self.targets(server))
        self._unrescue_server(server)
        self.assertEqual([('vda', 'disk'), ('vdz', 'disk.config')],
                         self.targets(server))

    def test_a_server_named_after_the_rescue_disk_gets_its_definition(self):
        # Its name is in the domain XML: that is no rescue definition.
        server = self.boot(name='my disk.rescue server')
        # Marked so that the saved definition tells itself apart from one
        # made again from nova's data.
        conn = self.hypervisor_of(self.compute)
        xml = self.domain_xml(self.compute, server)
        etree.SubElement(xml, 'description').text = 'the saved one'
        conn.defineXML(etree.tostring(xml, encoding='unicode'))
        self.api.post_server_action(server['id'], {'rescue': {}})
        self._wait_for_state_change(server, 'RESCUE')
        self._unrescue_server(server)
        self.assertEqual('the saved one', self.domain_xml(
            self.compute, server).findtext('description'))

    def test_a_hostile_rescue_image_leaves_the_server_running(self):
        server = self.boot()
        hostile = self.upload_image(self.make_qcow2(
            'hostile.qcow2', '64M', 'backing_file=/etc/shadow',
            'backing_fmt=raw'))
        original = etree.tostring(self.domain_xml(
            self.compute, server).find('devices'))
        self.api.post_server_action(server['id'], {
            'rescue': {'rescue_image_ref': hostile}})
        server = self._wait_for_state_change(server, 'ERROR')
        self.assertIn('rescue', server['fault']['message'].lower())
        # nova stops the guest before any rescue and marks the server ERROR
        # when it fails; the guest's definition was never touched, nothing
        # of the rescue is left, and nova's ordinary actions bring it back.
        dom = self.hypervisor_of(self.compute).lookupByUUIDString(
            server['id'])
        for xml in (dom.XMLDesc(0), dom.XMLDesc(2)):  # live, persistent
            self.assertEqual(original, etree.tostring(
                etree.fromstring(xml).find('devices')))
        self.assertEqual(['disk', 'disk.info'],
                         sorted(os.listdir(self.instance_dir(server))))
        self.assertEqual([], [n for n in os.listdir(self.base_dir())
                              if n.startswith(
                                  builders.base_name(hostile))])
        self.admin_api.post_server_action(server['id'], {
            'os-resetState': {'state': 'active'}})
        self._reboot_server(server, hard=True)
        self.assertEqual(libvirt.VIR_DOMAIN_RUNNING, dom.state()[0])
