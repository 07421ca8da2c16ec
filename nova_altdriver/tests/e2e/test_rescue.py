"""Rescue as users need it, on real QEMU: the rescue guest repairs the
broken guest's disk, and the repaired original boots after unrescue."""

import os

import fixtures

from nova_altdriver.tests.e2e import base


class RescueTest(base.TestCase):

    def setUp(self):
        super().setUp()
        self.compute = self.start_compute()
        self.rescue_image = self.upload_guest_image('rescue.qcow2')
        flavor = self.small_flavor()
        self.server = self.boot(self.upload_guest_image(), flavor,
                                config_drive=True)
        self.wait_for_guest(self.server, 'ALTDRIVER-READY bootcount=1')

    def rescue(self):
        self.api.post_server_action(self.server['id'], {'rescue': {
            'rescue_image_ref': self.rescue_image,
            'adminPass': 'rescue-pass'}})
        return self._wait_for_state_change(self.server, 'RESCUE')

    def test_the_rescue_guest_repairs_the_original_disk(self):
        self.rescue()
        console = self.wait_for_guest(self.server,
                                      'ALTDRIVER-RESCUE-WROTE vdb')
        self.assertIn('ALTDRIVER-SELF vda role=rescue', console)
        self.assertIn('ALTDRIVER-OTHER vdb marker=base-image', console)
        # The rescue password reaches the rescue guest (config drive).
        self.assertIn('ALTDRIVER-ADMINPASS rescue-pass', console)

        self._unrescue_server(self.server)
        console = self.wait_for_guest(self.server,
                                      'ALTDRIVER-READY bootcount=2')
        self.assertIn('ALTDRIVER-RESCUED rescued-by-rescue-image', console)

    def test_an_interrupted_rescue_and_unrescue_lose_nothing(self):
        # nova-compute dying inside the driver, simulated at the worst
        # moments: after the rescue disk exists and the guest is down ...
        with fixtures.MockPatch(
                'nova_altdriver.lifecycle.Lifecycle.create',
                side_effect=RuntimeError('nova-compute killed')):
            self.api.post_server_action(self.server['id'], {'rescue': {
                'rescue_image_ref': self.rescue_image}})
            self._wait_for_instance_action_event(
                self.server, 'rescue', 'compute_rescue_instance', 'Error')
        self.compute = self.restart_compute_service(self.compute)
        # ... a hard reboot brings the original back, data and all.
        self._reboot_server(self.server, hard=True)
        self.wait_for_guest(self.server, 'ALTDRIVER-READY bootcount=2')

        self.rescue()
        self.wait_for_guest(self.server, 'ALTDRIVER-RESCUE-WROTE vdb')
        # ... and after the original is defined again, before the rescue
        # files are gone: unrescue simply runs again.
        with fixtures.MockPatch(
                'nova_altdriver.disks.remove_rescue_files',
                side_effect=RuntimeError('nova-compute killed')):
            self.api.post_server_action(self.server['id'],
                                        {'unrescue': None})
            self._wait_for_instance_action_event(
                self.server, 'unrescue', 'compute_unrescue_instance',
                'Error')
        # The original was already defined and started again.
        self.wait_for_guest(self.server, 'ALTDRIVER-READY bootcount=3')
        self.compute = self.restart_compute_service(self.compute)
        self._reboot_server(self.server, hard=True)
        console = self.wait_for_guest(self.server,
                                      'ALTDRIVER-READY bootcount=4')
        self.assertIn('ALTDRIVER-RESCUED rescued-by-rescue-image', console)
        self.assertEqual(
            [], [f for f in os.listdir(self.instance_dir(self.server))
                 if f.endswith('.rescue') or f == 'unrescue.xml'])
