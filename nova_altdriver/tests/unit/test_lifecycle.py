"""The domain XML of a guest, as spawn, reboot, resize and rescue build it."""

from lxml import etree
from nova import exception

from nova_altdriver import domain
from nova_altdriver import lifecycle
from nova_altdriver.tests import builders
from nova_altdriver.tests.unit import base


class Host(object):

    def __init__(self, cpu_controller):
        self.cpu_controller = cpu_controller

    def has_cpu_controller(self):
        return self.cpu_controller


class BuildXMLTest(base.TestCase):

    def build_xml(self, cpu_controller, extra_specs):
        return lifecycle.Lifecycle(
            Host(cpu_controller), None, None, self.cache, None).build_xml(
                builders.instance(extra_specs=extra_specs),
                builders.image_meta(),
                [domain.Disk('/i/disk', 'qcow2', 'vda', 'virtio')], [])

    def test_cpu_tuning_where_the_kernel_cannot_is_refused(self):
        # (as the in-tree driver: libvirt would fail the start later)
        self.assertRaises(exception.UnsupportedHostCPUControlPolicy,
                          self.build_xml, False, {'quota:cpu_shares': '0'})
        xml = etree.fromstring(self.build_xml(
            True, {'quota:cpu_shares': '0'}))
        self.assertEqual('0', xml.findtext('cputune/shares'))

    def test_other_flavors_need_no_cpu_controller(self):
        xml = etree.fromstring(self.build_xml(
            False, {'quota:disk_read_iops_sec': '100'}))
        self.assertIsNone(xml.find('cputune'))
