"""Power actions through nova's API, proven from inside real guests."""

import os
import time

import libvirt

from nova_altdriver.tests.e2e import base
from nova_altdriver.tests.e2e import markers


class PowerTest(base.TestCase):

    def setUp(self):
        super().setUp()
        self.compute = self.start_compute()
        self.flavor = self.small_flavor()

    def domain(self, server):
        return self.conn.lookupByUUIDString(server['id'])

    def test_every_power_action_on_one_guest(self):
        self.enable_serial_consoles()
        server = self.boot(self.upload_guest_image(), self.flavor)
        self.wait_for_guest(server, 'ALTDRIVER-READY bootcount=1')
        serial_port = self.serial_port(self.compute, server)

        # A clean stop: the guest sees the power button and goes down by
        # itself, long before nova's 60 s shutdown timeout.
        started = time.monotonic()
        self._stop_server(server)
        self.assertLess(time.monotonic() - started, 30)
        self.assertIn('ALTDRIVER-ACPI-POWER', self.console(server))
        self._start_server(server)
        self.wait_for_guest(server, 'ALTDRIVER-READY bootcount=2')

        self._reboot_server(server, hard=False)
        console = self.wait_for_guest(server, 'ALTDRIVER-READY bootcount=3')
        self.assertEqual(2, console.count('ALTDRIVER-ACPI-POWER'))

        # Started again from a new definition: the serial console's port
        # is the guest's still.
        self.assertEqual(serial_port, self.serial_port(self.compute, server))
        self.read_serial_port(serial_port, 'ALTDRIVER-TICK')

        # The operator's repair tool: the definition vanished behind nova.
        dom = self.domain(server)
        dom.destroy()
        dom.undefine()
        self._reboot_server(server, hard=True)
        self.wait_for_guest(server, 'ALTDRIVER-READY bootcount=4')

        self.api.post_server_action(server['id'], {'pause': None})
        self._wait_for_state_change(server, 'PAUSED')
        self.api.post_server_action(server['id'], {'unpause': None})
        self._wait_for_state_change(server, 'ACTIVE')

        # Suspend keeps the guest's memory: after resume it runs on, its
        # uptime continuing, with no new boot.
        uptime = self._last_tick(self.console(server))
        self._suspend_server(server)
        self.assertEqual(libvirt.VIR_DOMAIN_SHUTOFF,
                         self.domain(server).state()[0])
        self._resume_server(server)
        deadline = time.monotonic() + 60
        while self._last_tick(self.console(server)) <= uptime:
            self.assertLess(time.monotonic(), deadline)
            time.sleep(1)
        # (the latest boot is still the fourth: the console nova returns,
        # its last 100 KiB, may no longer reach back to the first)
        self.assertEqual(4, markers.latest(self.console(server)).bootcount)
        # the serial port came back with the saved guest
        self.read_serial_port(self.serial_port(self.compute, server),
                              'ALTDRIVER-TICK')

        # Soft delete (reclaim_instance_interval) powers the guest off
        # hard, as nova does for drivers without a soft delete of their
        # own; restore boots it again from its disk.
        self.flags(reclaim_instance_interval=3600)
        self.api.delete_server(server['id'])
        self._wait_for_state_change(server, 'SOFT_DELETED')
        self.assertEqual(libvirt.VIR_DOMAIN_SHUTOFF,
                         self.domain(server).state()[0])
        self.api.post_server_action(server['id'], {'restore': None})
        self._wait_for_state_change(server, 'ACTIVE')
        self.wait_for_guest(server, 'ALTDRIVER-READY bootcount=5')

    @staticmethod
    def _last_tick(console):
        return markers.latest(console).uptime or 0.0

    def test_a_guest_ignoring_acpi_is_stopped_hard_after_the_timeout(self):
        image = self.guest_variant('--knob', 'ignore-acpi',
                                   os_shutdown_timeout=5)
        server = self.boot(image, self.flavor)
        self.wait_for_guest(server, 'ALTDRIVER-READY')
        started = time.monotonic()
        self._stop_server(server)
        self.assertGreaterEqual(time.monotonic() - started, 5)
        self.assertIn('ALTDRIVER-ACPI-IGNORED', self.console(server))

    def test_a_guest_powering_itself_off_shows_shutoff(self):
        server = self.boot(self.guest_variant('--knob', 'selfpoweroff'),
                           self.flavor)
        self.wait_for_guest(server, 'ALTDRIVER-SELFPOWEROFF')
        # The lifecycle event, not a periodic task, tells nova.
        self._wait_for_state_change(server, 'SHUTOFF')

    def test_a_reboot_from_inside_the_guest_is_not_a_stop(self):
        server = self.boot(self.guest_variant('--knob', 'selfreboot'),
                           self.flavor)
        self.wait_for_guest(server, 'ALTDRIVER-READY bootcount=2')
        time.sleep(1)  # longer than the tests' stopped_event_delay
        self.assertEqual('ACTIVE', self._show_server(server)['status'])

    def test_uefi_variables_survive_stop_and_start_but_not_delete(self):
        # (The BIOS-booting test guest leaves OVMF in its shell, which
        # ignores ACPI: a short shutdown timeout keeps the test quick.)
        server = self.boot(self.upload_guest_image(
            hw_firmware_type='uefi', hw_machine_type='q35',
            os_shutdown_timeout=2), self.flavor)
        nvram = self.domain(server).XMLDesc()
        nvram = nvram[nvram.index('<nvram'):]
        nvram = base.libvirtd_path(
            nvram[nvram.index('>') + 1:nvram.index('</nvram>')])
        inode = os.stat(nvram).st_ino

        self._stop_server(server)
        self._start_server(server)
        self._reboot_server(server, hard=True)

        self.assertEqual(inode, os.stat(nvram).st_ino)
        self._delete_server(server)
        self.assertFalse(os.path.exists(nvram))
