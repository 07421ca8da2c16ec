"""The test guest's console markers, as the e2e tests and the all-in-one's
tours read them."""

import subprocess
import sys

import testtools

from nova_altdriver.tests.e2e import markers

# Two boots as a console shows them: firmware, carriage returns, a failed
# address, a line torn by the kernel.
CONSOLE = '''SeaBIOS (version 1.16.2-debian-1.16.2-1)\r
ALTDRIVER-BOOT uptime=1.23 kernel=6.1.0 cmdline=console=ttyS0 quiet\r
ALTDRIVER-DISKS vda sr0\r
ALTDRIVER-SELF vda role=guest\r
ALTDRIVER-BOOTCOUNT 4\r
ALTDRIVER-MARKER base image\r
ALTDRIVER-NICS eth0=fa:16:3e:00:12:34\r
ALTDRIVER-NET eth0 ip=10.99.0.5 netmask=255.255.255.0\r
ALTDRIVER-READY bootcount=4 uptime=2.50\r
ALTDRIVER-HB-FOUND 7\r
ALTDRIVER-HB 8\r
ALTDRIVER-TICK 4.51\r
ALTDRIVER-NICS eth0=fa:16:3e:00:12:34 eth1=fa:16:3e:00:56:78\r
ALTDRIVER-HB 9\r
ALTDRIVER-TICK 6.52\r
ALTDRIVER-ACPI-POWER\r
ALTDRIVER-BOOT uptime=1.20 kernel=6.1.0 cmdline=console=ttyS0 quiet\r
ALTDRIVER-SELF vda role=guest\r
ALTDRIVER-NET eth0 ip=10.99.0.5 failed\r
[    2.1] random: crng init done ALTDRIVER-READY bootcount=5 uptime=2.40\r
ALTDRIVER-HB-FOUND 9\r
ALTDRIVER-HB 1ALTDRIVER-TICK 4.4\r
ALTDRIVER-TICK 6.41\r
'''


class BootsTest(testtools.TestCase):

    def test_each_boot_with_what_it_said(self):
        first, second = markers.boots(CONSOLE)
        self.assertEqual(
            (1, 'guest', 'base image', '10.99.0.5', 4, 7, [8, 9],
             [4.51, 6.52]),
            (first.number, first.role, first.marker, first.net_ip,
             first.bootcount, first.found, first.beats, first.ticks))
        self.assertEqual('ALTDRIVER-READY bootcount=4 uptime=2.50',
                         first.ready)
        # no address when configuring it failed; a marker after other
        # output counts, a torn one does not
        self.assertEqual(
            (2, None, 5, 9, [], [6.41], 6.41),
            (second.number, second.net_ip, second.bootcount, second.found,
             second.beats, second.ticks, second.uptime))
        self.assertEqual('ALTDRIVER-READY bootcount=5 uptime=2.40',
                         second.ready)

    def test_the_nics_as_they_are_now(self):
        first, second = markers.boots(CONSOLE)
        self.assertEqual(['fa:16:3e:00:12:34', 'fa:16:3e:00:56:78'],
                         first.nics)
        self.assertEqual([], second.nics)

    def test_the_guest_agent_and_what_it_did(self):
        boot, = markers.boots(
            'ALTDRIVER-BOOT uptime=1.2\r\n'
            'ALTDRIVER-AGENT started\r\n'
            'ALTDRIVER-READY bootcount=1 uptime=3.1\r\n'
            'ALTDRIVER-PASSWORD root=$6$salt$hash.one/A\r\n'
            'ALTDRIVER-FSFREEZE freeze\r\n'
            'ALTDRIVER-FSFREEZE thaw\r\n'
            'ALTDRIVER-PASSWORD root=$6$other$hash:two\r\n')
        self.assertEqual('started', boot.agent)
        self.assertEqual([('root', '$6$salt$hash.one/A'),
                          ('root', '$6$other$hash:two')], boot.passwords)
        self.assertEqual(['freeze', 'thaw'], boot.fsfreeze)
        self.assertEqual('$6$other$hash:two', boot.root_password)
        failed, = markers.boots('ALTDRIVER-AGENT failed no port\n')
        self.assertEqual('failed no port', failed.agent)
        self.assertEqual(([], [], None), (failed.passwords, failed.fsfreeze,
                                          failed.root_password))
        self.assertIsNone(markers.latest(CONSOLE).agent)

    def test_the_nmis_a_boot_took(self):
        first, second = markers.boots(
            'ALTDRIVER-BOOT uptime=1.2\r\n'
            'ALTDRIVER-TICK 8.00\r\n'
            '[   9.1] Uhhuh. NMI received for unknown reason 30 on CPU 0.\r\n'
            'ALTDRIVER-NMI count=1\r\n'
            'ALTDRIVER-NMI count=3\r\n'
            'ALTDRIVER-BOOT uptime=1.1\r\n')
        self.assertEqual((3, 0), (first.nmis, second.nmis))

    def test_where_the_guest_finds_its_devices_and_their_tags(self):
        boot, = markers.boots(
            'ALTDRIVER-BOOT uptime=1.2\r\n'
            'ALTDRIVER-METADATA {"uuid": "u", "devices": [{"type": "nic", '
            '"bus": "pci", "address": "0000:00:03.0", "tags": ["a"]}]}\r\n'
            'ALTDRIVER-PCI fa:16:3e:00:12:34=0000:00:03.0 vda=0000:00:04.0\r\n'
            'ALTDRIVER-METADATA {"torn\r\n')
        self.assertEqual({'fa:16:3e:00:12:34': '0000:00:03.0',
                          'vda': '0000:00:04.0'}, boot.pci)
        self.assertEqual(['a'], boot.metadata['devices'][0]['tags'])
        self.assertIsNone(markers.latest(CONSOLE).metadata)

    def test_the_read_rate_of_a_disk(self):
        first, second = markers.boots(
            'ALTDRIVER-BOOT uptime=1.2\r\n'
            'ALTDRIVER-DISKRATE vda bytes=4194304 ms=3910\r\n'
            'ALTDRIVER-DISKRATE vdb failed dd: can\'t open \'/dev/vdb\'\r\n'
            'ALTDRIVER-BOOT uptime=1.1\r\n'
            'ALTDRIVER-DISKRATE vda bytes=4194304 ms=4\r\n')
        self.assertEqual({'vda': (4194304, 3910)}, first.diskrates)
        self.assertEqual(3910, first.diskrates['vda'].ms)
        self.assertEqual(4194304, second.diskrates['vda'].bytes)
        self.assertEqual({}, markers.latest(CONSOLE).diskrates)

    def test_the_receive_rate_of_tcp_streams(self):
        first, second = markers.boots(
            'ALTDRIVER-BOOT uptime=1.2\r\n'
            'ALTDRIVER-RXPORT 5201\r\n'
            'ALTDRIVER-RXRATE bytes=2097151 ms=4096\r\n'
            'ALTDRIVER-RXRATE bytes=1000 ms=0\r\n'
            'ALTDRIVER-RXRATE bytes=10\r\n'
            'ALTDRIVER-BOOT uptime=1.1\r\n')
        self.assertEqual(5201, first.rx_port)
        self.assertEqual([(2097151, 4096), (1000, 0)], first.rxrates)
        self.assertEqual(1000000, first.rx_bytes_per_s)  # (0 ms: 1 ms)
        first.rxrates.pop()
        self.assertEqual(511999, first.rx_bytes_per_s)
        self.assertEqual((None, None), (second.rx_port, second.rx_bytes_per_s))

    def test_the_link_local_address_of_a_mac(self):
        self.assertEqual('fe80::f816:3eff:fe00:1234',
                         markers.link_local('fa:16:3e:00:12:34'))
        self.assertEqual('fe80::200:ff:fe00:1',
                         markers.link_local('00:00:00:00:00:01'))

    def test_markers_before_the_first_boot_line_are_a_boot(self):
        cut = CONSOLE[CONSOLE.index('ALTDRIVER-NET'):]
        self.assertEqual(['10.99.0.5', None],
                         [boot.net_ip for boot in markers.boots(cut)])

    def test_latest_boot_knows_nothing_without_markers(self):
        boot = markers.latest('SeaBIOS\nBooting from Hard Disk...\n')
        self.assertEqual((0, None, None, None),
                         (boot.number, boot.ready, boot.bootcount,
                          boot.uptime))

    def test_script_prints_fields_of_the_latest_boot(self):
        # run as tools/aio/tour.sh runs it: by its path, no package import
        out = subprocess.run(
            [sys.executable, '-I', markers.__file__, 'bootcount', 'net_ip',
             'uptime'],
            input=b'\xff' + CONSOLE.encode(), capture_output=True,
            check=True).stdout.decode()
        self.assertEqual(['5', '', '6.41'], out.splitlines())
