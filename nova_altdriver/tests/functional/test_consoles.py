"""Serial and SPICE consoles through nova's API (the proxies' side: the
token nova hands out names the guest's TCP port), and the console log
beside them.
"""

import os
from urllib import parse

from nova.tests.functional.api import client

from nova_altdriver.tests.functional import base
from nova_altdriver.tests import serial_consoles


class SerialConsoleTest(base.TestCase):

    def setUp(self):
        super().setUp()
        self.pool = self.useFixture(serial_consoles.SerialConsoles(
            self, base_url='ws://proxy.example.org:6083/')).pool
        self.compute = self.start_compute()
        self.image_id = self.upload_image(self.make_qcow2())
        self.flavor_id = self.small_flavor()

    def boot(self, image_id=None, expected_state='ACTIVE'):
        return self._create_server(image_uuid=image_id or self.image_id,
                                   flavor_id=self.flavor_id,
                                   networks='none',
                                   expected_state=expected_state)

    def serial_console(self, server):
        return self.api.api_post(
            '/servers/%s/remote-consoles' % server['id'],
            {'remote_console': {'protocol': 'serial', 'type': 'serial'}}
        ).body['remote_console']

    def refused(self, server):
        """The text of the API's refusal of the server's serial console."""
        ex = self.assertRaises(client.OpenStackApiException,
                               self.serial_console, server)
        self.assertEqual(400, ex.response.status_code, ex.response.text)
        return ex.response.text

    def serial_ports(self, server):
        """[(address, port, logged to)] of the guest's TCP serial ports."""
        return [(el.find('source').get('host'),
                 int(el.find('source').get('service')),
                 el.xpath('string(log/@file)'))
                for el in self.domain_xml(self.compute, server).findall(
                    "devices/serial[@type='tcp']")]

    def proxied_to(self, console):
        """(host, port) nova-serialproxy connects to for the console."""
        token = parse.parse_qs(parse.urlparse(console['url']).query)
        found = self.admin_api.api_get(
            '/os-console-auth-tokens/%s' % token['token'][0]).body['console']
        return found['host'], int(found['port'])

    def console_log(self, server):
        return self.api.post_server_action(
            server['id'], {'os-getConsoleOutput': {}})['output']

    def test_the_console_and_its_log_through_every_redefinition(self):
        server = self.boot()
        log = os.path.join(self.instance_dir(server), 'console.log')
        self.assertEqual([('127.0.0.1', 10300, log)],
                         self.serial_ports(server))
        console = self.serial_console(server)
        self.assertEqual('serial', console['protocol'])
        self.assertTrue(console['url'].startswith(
            'ws://proxy.example.org:6083/?token='), console['url'])
        self.assertEqual(('127.0.0.1', 10300), self.proxied_to(console))
        # the first port's output, logged by virtlogd, is the console log
        with open(log, 'w') as f:
            f.write('ALTDRIVER-TICK 12.00\n')
        self.assertIn('ALTDRIVER-TICK 12.00', self.console_log(server))

        # Definitions made again keep the port: the console URL a user
        # holds stays good.
        self._reboot_server(server, hard=True)
        self.assertEqual([('127.0.0.1', 10300, log)],
                         self.serial_ports(server))
        self._rescue_server(server)
        self.assertEqual([('127.0.0.1', 10300, log)],
                         self.serial_ports(server))
        self.assertEqual(('127.0.0.1', 10300),
                         self.proxied_to(self.serial_console(server)))
        self._unrescue_server(server)
        self.assertEqual([('127.0.0.1', 10300, log)],
                         self.serial_ports(server))
        self.assertIn('ALTDRIVER-TICK 12.00', self.console_log(server))

        self.assertEqual({('127.0.0.1', 10300)}, self.pool)
        self._delete_server(server)
        self.assertEqual(set(), self.pool)

    def test_each_server_its_own_ports(self):
        image_id = self.upload_image(self.make_qcow2(),
                                     hw_serial_port_count='2')
        first = self.boot(image_id)
        second = self.boot()
        self.assertEqual([10300, 10301],
                         [port for _, port, _ in self.serial_ports(first)])
        # only the first port is logged (the kernel writes to ttyS0)
        self.assertEqual('', self.serial_ports(first)[1][2])
        self.assertEqual([10302],
                         [port for _, port, _ in self.serial_ports(second)])
        self.assertEqual(('127.0.0.1', 10300),
                         self.proxied_to(self.serial_console(first)))

    def test_more_ports_than_qemu_gives_fail_the_boot_clearly(self):
        image_id = self.upload_image(self.make_qcow2(),
                                     hw_serial_port_count='4')
        server = self.boot(image_id, expected_state='ERROR')
        self.assertIn('at most 3 serial ports', server['fault']['message'])
        self.assertEqual(set(), self.pool)

    def test_disabled_or_defined_without_answers_400(self):
        self.flags(enabled=False, group='serial_console')
        server = self.boot()
        self.assertEqual([], self.serial_ports(server))
        self.assertIn('Unavailable console type serial',
                      self.refused(server))
        # enabled since: the guest still has its pty serial port
        self.flags(enabled=True, group='serial_console')
        self.assertIn('a hard reboot gives it one', self.refused(server))
        self._reboot_server(server, hard=True)
        self.assertEqual(('127.0.0.1', 10300),
                         self.proxied_to(self.serial_console(server)))
        self.assertEqual('', self.console_log(server))


class SpiceConsoleTest(base.TestCase):
    """What the test driver shows of SPICE (it runs no SPICE server: the
    e2e tier connects to one).
    """

    def test_a_spice_server_and_qxl_display_when_enabled(self):
        self.flags(enabled=True, group='spice')
        self.compute = self.start_compute()
        server = self._create_server(
            image_uuid=self.upload_image(self.make_qcow2()),
            flavor_id=self.small_flavor(), networks='none')
        devices = self.domain_xml(self.compute, server).find('devices')
        self.assertIsNotNone(devices.find("graphics[@type='spice']"))
        self.assertEqual('qxl', devices.find('video/model').get('type'))
        # no port from the test driver: nova's own answer
        ex = self.assertRaises(
            client.OpenStackApiException, self.api.api_post,
            '/servers/%s/remote-consoles' % server['id'],
            {'remote_console': {'protocol': 'spice',
                                'type': 'spice-html5'}})
        self.assertEqual(400, ex.response.status_code)
        self.assertIn('Unavailable console type spice', ex.response.text)
