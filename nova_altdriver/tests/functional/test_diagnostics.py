"""A server's diagnostics through nova's API, as an admin reads them
(``openstack server show --diagnostics``), in both of the API's forms.
"""

from nova.tests.functional.api import client
from nova import utils

from nova_altdriver.tests.functional import base


class DiagnosticsTest(base.TestCase):

    def setUp(self):
        super().setUp()
        self.compute = self.start_compute()
        self.port = self.neutron_port()
        body = self._build_server(
            image_uuid=self.upload_image(self.make_qcow2()),
            flavor_id=self.small_flavor(),
            networks=[{'port': self.port['id']}])
        body['config_drive'] = True
        self.server = self._wait_for_state_change(
            self.api.post_server({'server': body}), 'ACTIVE')

    def diagnostics(self, microversion):
        with utils.temporary_mutation(self.admin_api,
                                      microversion=microversion):
            return self.admin_api.get_server_diagnostics(self.server['id'])

    def test_before_2_48_the_in_tree_drivers_keys(self):
        diagnostics = self.diagnostics('2.1')
        tap = 'tap' + self.port['id'][:11]
        for key in ('cpu0_time', 'vda_read', 'vda_read_req', 'vda_write',
                    'vda_write_req', 'vda_errors', tap + '_rx',
                    tap + '_rx_packets', tap + '_tx', tap + '_tx_drop',
                    'memory', 'memory-actual', 'memory-rss'):
            self.assertIn(key, diagnostics)
        self.assertEqual(256 * 1024, diagnostics['memory'])  # KiB

    def test_from_2_48_the_standard_form(self):
        # (nova's API checks the answer against its schema in tests)
        diagnostics = self.diagnostics('2.48')
        self.assertEqual(
            {'state': 'running', 'driver': 'libvirt', 'hypervisor': 'qemu',
             'hypervisor_os': 'linux', 'config_drive': True, 'num_cpus': 1,
             'num_disks': 2, 'num_nics': 1},
            {key: diagnostics[key] for key in (
                'state', 'driver', 'hypervisor', 'hypervisor_os',
                'config_drive', 'num_cpus', 'num_disks', 'num_nics')})
        self.assertEqual({'maximum': 256, 'used': 256},
                         diagnostics['memory_details'])  # MiB
        self.assertGreaterEqual(diagnostics['uptime'], 0)
        self.assertGreater(diagnostics['cpu_details'][0]['time'], 0)
        root = diagnostics['disk_details'][0]
        self.assertGreater(root['read_bytes'], 0)
        self.assertGreater(root['read_requests'], 0)
        nic, = diagnostics['nic_details']
        self.assertEqual(self.port['mac_address'], nic['mac_address'])
        self.assertGreater(nic['rx_octets'], 0)
        self.assertEqual(2, self.diagnostics('latest')['num_disks'])

    def test_a_stopped_server_is_refused(self):
        # nova itself refuses a server that is not running
        self._stop_server(self.server)
        for microversion in ('2.1', '2.48'):
            ex = self.assertRaises(client.OpenStackApiException,
                                   self.diagnostics, microversion)
            self.assertEqual(409, ex.response.status_code)
            self.assertIn('shutdown', ex.response.text)
        self._start_server(self.server)
        self.assertEqual('running', self.diagnostics('2.48')['state'])
