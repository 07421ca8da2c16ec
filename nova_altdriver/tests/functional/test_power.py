"""Power actions through nova's API on the libvirt test driver."""

import os

import libvirt
from nova.compute import power_state
from nova import context as nova_context
from nova import objects
from nova.tests.functional.api import client

from nova_altdriver.tests.functional import base


class PowerTest(base.TestCase):

    def setUp(self):
        super().setUp()
        self.compute = self.start_compute()
        image_id = self.upload_image(self.make_qcow2())
        flavor_id = self.small_flavor()
        self.server = self._create_server(image_uuid=image_id,
                                          flavor_id=flavor_id,
                                          networks='none')

    def domain(self):
        return self.hypervisor_of(self.compute).lookupByUUIDString(
            self.server['id'])

    def assertStates(self, status, power, domain_state):
        server = self._wait_for_state_change(self.server, status)
        self._wait_for_server_parameter(
            server, {'OS-EXT-STS:power_state': power})
        self.assertEqual(domain_state, self.domain().state()[0])

    def action(self, body, expected_status):
        self.api.post_server_action(self.server['id'], body)
        return self._wait_for_state_change(self.server, expected_status)

    def test_stop_and_start(self):
        self._stop_server(self.server)
        self.assertStates('SHUTOFF', power_state.SHUTDOWN,
                          libvirt.VIR_DOMAIN_SHUTOFF)
        self._start_server(self.server)
        self.assertStates('ACTIVE', power_state.RUNNING,
                          libvirt.VIR_DOMAIN_RUNNING)

    def test_soft_and_hard_reboot(self):
        for hard in (False, True):
            domain_id = self.domain().ID()
            self._reboot_server(self.server, hard=hard)
            self.assertStates('ACTIVE', power_state.RUNNING,
                              libvirt.VIR_DOMAIN_RUNNING)
            self.assertNotEqual(domain_id, self.domain().ID())  # restarted

    def test_hard_reboot_repairs_a_lost_definition(self):
        dom = self.domain()
        dom.destroy()
        dom.undefine()
        self._reboot_server(self.server, hard=True)
        self.assertStates('ACTIVE', power_state.RUNNING,
                          libvirt.VIR_DOMAIN_RUNNING)
        self.assertTrue(self.domain().isPersistent())

    def test_hard_reboot_removes_disks_a_killed_operation_was_making(self):
        """nova-compute killed while making a disk (an unshelve, a rescue)
        leaves it under its unfinished name; the next hard reboot removes
        it and keeps the whole ones.
        """
        instance_dir = self.instance_dir(self.server)
        whole = sorted(os.listdir(instance_dir))
        for name in ('disk.eph0.part', 'disk.config.rescue.part'):
            open(os.path.join(instance_dir, name), 'w').close()
        self._reboot_server(self.server, hard=True)
        self.assertStates('ACTIVE', power_state.RUNNING,
                          libvirt.VIR_DOMAIN_RUNNING)
        self.assertEqual(whole, sorted(os.listdir(instance_dir)))

    def test_pause_and_unpause(self):
        self.action({'pause': None}, 'PAUSED')
        self.assertStates('PAUSED', power_state.PAUSED,
                          libvirt.VIR_DOMAIN_PAUSED)
        self.action({'unpause': None}, 'ACTIVE')
        self.assertStates('ACTIVE', power_state.RUNNING,
                          libvirt.VIR_DOMAIN_RUNNING)

    def test_suspend_and_resume(self):
        self._suspend_server(self.server)
        self.assertStates('SUSPENDED', power_state.SUSPENDED,
                          libvirt.VIR_DOMAIN_SHUTOFF)
        self.assertTrue(self.domain().hasManagedSaveImage())
        self._resume_server(self.server)
        self.assertStates('ACTIVE', power_state.RUNNING,
                          libvirt.VIR_DOMAIN_RUNNING)
        self.assertFalse(self.domain().hasManagedSaveImage())

    def test_a_paused_guest_suspends_and_resumes_running(self):
        # nova's API refuses to suspend a paused server, but the driver is
        # asked to save paused guests too (host evacuation scripts, shelve).
        self.action({'pause': None}, 'PAUSED')
        instance = objects.Instance.get_by_uuid(
            nova_context.get_admin_context(), self.server['id'])
        driver = self.driver_of(self.compute)
        driver.suspend(None, instance)
        self.assertEqual(power_state.SUSPENDED,
                         driver.get_info(instance).state)
        driver.resume(None, instance, [])
        self.assertEqual(libvirt.VIR_DOMAIN_RUNNING, self.domain().state()[0])

    def test_guests_come_back_after_a_host_reboot(self):
        self.flags(resume_guests_state_on_host_boot=True)
        self.domain().destroy()  # the host went down under its guests
        self.restart_compute_service(self.compute)
        self.assertStates('ACTIVE', power_state.RUNNING,
                          libvirt.VIR_DOMAIN_RUNNING)

    def test_invalid_transitions_are_refused(self):
        for body in ({'unpause': None}, {'resume': None}, {'os-start': None}):
            error = self.assertRaises(
                client.OpenStackApiException, self.api.post_server_action,
                self.server['id'], body)
            self.assertEqual(409, error.response.status_code)
        self._stop_server(self.server)
        error = self.assertRaises(
            client.OpenStackApiException, self.api.post_server_action,
            self.server['id'], {'pause': None})
        self.assertEqual(409, error.response.status_code)

    def test_a_guest_powering_itself_off_shows_shutoff(self):
        # An event, not the periodic sync (its interval is negative here).
        self.domain().shutdown()
        self.assertStates('SHUTOFF', power_state.SHUTDOWN,
                          libvirt.VIR_DOMAIN_SHUTOFF)
