"""Unplugging: what an evacuation clean-up must leave alone."""

import fixtures

from nova_altdriver.tests import builders
from nova_altdriver.tests.unit import base
from nova_altdriver import vifs


class UnplugTest(base.TestCase):

    def setUp(self):
        super().setUp()
        self.flags(host='failed-host')
        self.unplugged = []
        # os-vif's OVS plugin would change this machine's switch
        self.useFixture(fixtures.MonkeyPatch(
            'os_vif.unplug',
            lambda vif, info: self.unplugged.append(vif.vif_name)))

    def _unplug(self, instance_host, devname):
        vif = builders.vif('ovs')
        vif['devname'] = devname
        instance = builders.instance()
        instance.host = instance_host
        vifs.unplug(instance, [vif])
        return self.unplugged

    def test_own_instance_unplugged(self):
        self.assertEqual(['lo'], self._unplug('failed-host', 'lo'))

    def test_device_of_the_new_host_left_alone(self):
        # 'lo' stands for the evacuated guest's tap, alive on its new host
        self.assertEqual([], self._unplug('new-host', 'lo'))

    def test_stale_device_of_an_evacuated_instance_unplugged(self):
        self.assertEqual(['tapnotthere0'],
                         self._unplug('new-host', 'tapnotthere0'))


class InterfaceTest(base.TestCase):

    def test_a_port_without_a_device_name_lets_libvirt_name_it(self):
        vif = builders.vif('tap')
        vif['devname'] = None
        el = vifs.interface(vif, builders.image_meta(),
                            builders.instance().flavor)
        self.assertIsNone(el.find('target'))
        self.assertEqual('fa:16:3e:00:00:01', el.find('mac').get('address'))
