"""A flavor's QoS extra specs in the definition libvirt keeps of a server
booted through nova's API (libvirt's test driver keeps <iotune>,
<bandwidth> and <cputune> as libvirtd does, zero values, which mean no
limit, left out).
"""

import fixtures

from nova_altdriver.tests.functional import base

QOS = {'quota:disk_read_iops_sec': '200',
       'quota:vif_inbound_average': '1024',
       'quota:cpu_quota': '50000',
       'quota:cpu_period': '100000'}


class FlavorQosTest(base.TestCase):

    def setUp(self):
        super().setUp()
        # os-vif's OVS plugin would change this machine's switch
        for name in ('plug', 'unplug'):
            self.useFixture(fixtures.MockPatch('os_vif.' + name))
        self.flags(allow_resize_to_same_host=True)
        self.compute = self.start_compute()
        self.image_id = self.upload_image(self.make_qcow2())

    def qos(self, server):
        """({disk: its read IOPS limit}, the port's inbound average,
        (CPU quota, period)) of the server's domain.
        """
        xml = self.domain_xml(self.compute, server)
        return ({disk.find('target').get('dev'):
                 disk.findtext('iotune/read_iops_sec')
                 for disk in xml.iterfind('devices/disk')},
                xml.xpath('string(devices/interface/bandwidth/inbound/'
                          '@average)') or None,
                (xml.findtext('cputune/quota'),
                 xml.findtext('cputune/period')))

    def test_every_local_disk_the_ovs_port_and_the_cpu(self):
        port = self.neutron_port('ovs')
        body = self._build_server(
            image_uuid=self.image_id, networks=[{'port': port['id']}],
            flavor_id=self._create_flavor(memory_mb=256, vcpu=1, disk=1,
                                          ephemeral=1, swap=16,
                                          extra_spec=QOS))
        body['config_drive'] = True
        server = self._wait_for_state_change(
            self.api.post_server({'server': body}), 'ACTIVE')
        # root, ephemeral, swap and the config drive
        self.assertEqual(({'vda': '200', 'vdb': '200', 'vdc': '200',
                           'hdd': '200'}, '1024', ('50000', '100000')),
                         self.qos(server))

        # a resize's definition has the new flavor's (here: none)
        plain = self._create_flavor(memory_mb=256, vcpu=1, disk=1,
                                    ephemeral=1, swap=16)
        self._resize_server(server, plain)
        self._confirm_resize(server)
        self.assertEqual(({'vda': None, 'vdb': None, 'vdc': None,
                           'hdd': None}, None, (None, None)),
                         self.qos(server))
