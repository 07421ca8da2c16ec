"""A real guest's diagnostics through nova's API (QEMU's own counters), and
the crash dump: the NMI that reaches the guest.
"""

import time

from nova import utils

from nova_altdriver.tests.e2e import base
from nova_altdriver.tests.e2e import markers


class DiagnosticsTest(base.TestCase):

    def diagnostics(self, server, microversion):
        with utils.temporary_mutation(self.admin_api,
                                      microversion=microversion):
            return self.admin_api.get_server_diagnostics(server['id'])

    def test_a_booted_guest_shows_what_it_did_then_takes_an_nmi(self):
        self.start_compute()
        port = self.neutron_port('tap')
        server = self.boot(self.upload_guest_image(), self.small_flavor(),
                           networks=[{'port': port['id']}])
        # booted: it read its root disk and used its vCPU
        self.wait_for_guest(server, 'ALTDRIVER-READY')

        diagnostics = self.diagnostics(server, '2.48')
        self.assertEqual(('running', 'libvirt', 'qemu'), (
            diagnostics['state'], diagnostics['driver'],
            diagnostics['hypervisor']))
        self.assertEqual(256, diagnostics['memory_details']['maximum'])
        cpu, = diagnostics['cpu_details']
        self.assertGreater(cpu['time'], 0)
        root = diagnostics['disk_details'][0]
        self.assertGreater(root['read_bytes'], 0)
        self.assertGreater(root['read_requests'], 0)
        nic, = diagnostics['nic_details']
        self.assertEqual(port['mac_address'], nic['mac_address'])
        self.assertIsNotNone(nic['rx_octets'])  # the tap's counters

        # the older form: the balloon driver's figures too
        legacy = self.diagnostics(server, '2.1')
        self.assertGreater(legacy['vda_read'], 0)
        self.assertEqual(256 * 1024, legacy['memory'])
        self.assertIn('memory-rss', legacy)

        # trigger_crash_dump: the guest takes one NMI (its kernel logs it,
        # and would dump or panic if told to) and runs on, ticking
        self.api.post_server_action(server['id'], {'trigger_crash_dump': None})
        nmi = 'ALTDRIVER-NMI count=1'
        console = self.wait_for_guest(server, nmi)
        self.assertIn('NMI received for unknown reason', console)
        deadline = time.monotonic() + 30
        while 'ALTDRIVER-TICK' not in console.partition(nmi)[2]:
            self.assertLess(time.monotonic(), deadline, 'no TICK since')
            time.sleep(1)
            console = self.console(server)
        self.assertEqual([1], [boot.nmis for boot in markers.boots(console)])
        self._wait_for_state_change(server, 'ACTIVE')
