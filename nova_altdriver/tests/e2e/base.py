"""End-to-end tier: nova's functional harness against the real libvirtd and
QEMU of this machine (TCG: ``virt_type = qemu``), with the tiny guest built
by tools/guest-image/build.sh.

Run by tools/run-tests.sh, which sets up libvirtd and the guest image and
sets ALTDRIVER_E2E_REQUIRED so that a missing environment fails the tier
instead of skipping it.
"""

import os
import signal
import socket
import subprocess
import time

import fixtures
import libvirt
from nova.console import serial

from nova_altdriver.tests.functional import base

URI = os.environ.get('ALTDRIVER_E2E_URI', 'qemu:///system')
# The state directory of the main libvirtd when it is one of
# tools/second-libvirtd.sh's (tools/run-tests.sh starts one), else None.
LIBVIRTD_DIR = os.environ.get('ALTDRIVER_E2E_LIBVIRTD_DIR')
TOOLS = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.dirname(os.path.abspath(__file__))))), 'tools', 'guest-image')
GUEST_DIR = os.environ.get('ALTDRIVER_GUEST_DIR')


def _environment_problem():
    try:
        libvirt.open(URI).close()
    except libvirt.libvirtError as e:
        return 'libvirt at %s is unreachable: %s' % (URI, e)
    if not GUEST_DIR or not os.path.isfile(
            os.path.join(GUEST_DIR, 'disk.qcow2')):
        return ('ALTDRIVER_GUEST_DIR does not name a built guest image '
                '(tools/guest-image/build.sh prints it)')
    return None


class Connection(fixtures.Fixture):
    """The test's own connection to the real libvirtd."""

    def _setUp(self):
        self.conn = libvirt.open(URI)
        self.addCleanup(self.conn.close)


class TestCase(base.TestCase):

    STATE_WAIT_RETRIES = 120  # real QEMU: a minute

    def setUp(self):
        super().setUp()
        problem = _environment_problem()
        if problem:
            if os.environ.get('ALTDRIVER_E2E_REQUIRED'):
                self.fail(problem)
            self.skipTest(problem)
        self.conn = self.useFixture(Connection()).conn

    def start_compute(self, host='compute1', uri=URI, nodename=None,
                      instances_path=None, migration_addr=None):
        return super().start_compute(host=host, uri=uri, nodename=nodename,
                                     instances_path=instances_path,
                                     migration_addr=migration_addr)

    def migration_hosts(self, instances_paths=(None, None)):
        """compute1 and compute2 on two private libvirt daemons that reach
        each other for migrations (127.0.0.2 and 127.0.0.3, or from
        ALTDRIVER_E2E_FIRST_ADDR: two runs at once take different ones);
        each host's instances path as given (None: the test's one, shared).
        """
        first = int(os.environ.get('ALTDRIVER_E2E_FIRST_ADDR', 2))
        computes = []
        for num, path in enumerate(instances_paths, 1):
            addr = '127.0.0.%d' % (first + num - 1)
            uri = self.second_libvirt_host(listen_addr=addr)
            computes.append(self.start_compute(
                'compute%d' % num, uri=uri, instances_path=path,
                migration_addr=addr))
        return computes

    def upload_guest_image(self, name='disk.qcow2', **properties):
        """The test guest (tools/guest-image) as a Glance image."""
        return self.upload_image(os.path.join(GUEST_DIR, name), 'qcow2',
                                 **properties)

    def guest_variant_file(self, *options):
        """The path of a copy of the test guest changed by customize.sh
        options (for example '--knob', 'ignore-acpi').
        """
        path = os.path.join(self._state_dir, 'variant-%d.qcow2' % len(
            os.listdir(self._state_dir)))
        subprocess.run([os.path.join(TOOLS, 'customize.sh'),
                        os.path.join(GUEST_DIR, 'disk.qcow2'), path] +
                       list(options), check=True, capture_output=True)
        return path

    def guest_variant(self, *options, **properties):
        """A Glance image of guest_variant_file(*options)."""
        return self.upload_image(self.guest_variant_file(*options), 'qcow2',
                                 **properties)

    def boot(self, image_id, flavor_id, expected_state='ACTIVE', **extra):
        """Boots a server (no network unless extra says) and removes its
        domain at cleanup whatever happens to the test.
        """
        body = self._build_server(image_uuid=image_id, flavor_id=flavor_id,
                                  networks='none')
        body.update(extra)
        server = self.api.post_server({'server': body})
        self.remove_domain_at_cleanup(server['id'])
        return self._wait_for_state_change(server, expected_state)

    def console(self, server):
        """The guest's console log, read through nova's API."""
        return self.api.post_server_action(
            server['id'], {'os-getConsoleOutput': {}})['output']

    def wait_for_guest(self, server, text, timeout=120):
        """Waits until the console (through the API) shows text."""
        deadline = time.monotonic() + timeout
        while True:
            output = self.console(server)
            if text in output:
                return output
            if time.monotonic() > deadline:
                self.fail('%r not on the console of %s after %ss:\n%s' % (
                    text, server['id'], timeout, output[-3000:]))
            time.sleep(1)

    def enable_serial_consoles(self):
        """[serial_console] enabled for the guests defined from now on,
        their TCP ports from a range of this run's (the tier runs alone);
        nova's pool of ports (this process's) emptied at cleanup.
        """
        self.flags(enabled=True, port_range='10300:10399',
                   proxyclient_address='127.0.0.1', group='serial_console')
        self.addCleanup(serial.ALLOCATED_PORTS.clear)

    def serial_port(self, compute, server):
        """The TCP port of the guest's (first) serial port."""
        return int(self.domain_xml(compute, server).find(
            "devices/serial[@type='tcp']/source").get('service'))

    def read_serial_port(self, port, text, timeout=30):
        """What the guest writes to its serial port, as nova-serialproxy
        reads it, until text shows.
        """
        received = b''
        deadline = time.monotonic() + timeout
        with socket.create_connection(('127.0.0.1', port),
                                      timeout=timeout) as s:
            while text.encode() not in received:
                self.assertLess(time.monotonic(), deadline,
                                '%r not on serial port %d: %r' % (
                                    text, port, received[-3000:]))
                chunk = s.recv(4096)
                self.assertTrue(chunk, 'serial port %d closed: %r' % (
                    port, received[-3000:]))
                received += chunk
        return received.decode(errors='replace')

    def remove_domain_at_cleanup(self, uuid, uri=URI):
        """Domains left behind keep QEMU running on the shared libvirtd."""
        def remove():
            conn = libvirt.open(uri)
            try:
                dom = conn.lookupByUUIDString(uuid)
                if dom.isActive():
                    dom.destroy()
                if dom.isPersistent():
                    dom.undefineFlags(
                        libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE |
                        libvirt.VIR_DOMAIN_UNDEFINE_NVRAM)
            except libvirt.libvirtError as e:
                if e.get_error_code() != libvirt.VIR_ERR_NO_DOMAIN:
                    raise
            finally:
                conn.close()
        self.addCleanup(remove)

    def second_libvirt_host(self, listen_addr=None):
        """The URI of a second libvirtd on this machine (its own mount
        namespace, state and socket), stopped at cleanup; with listen_addr
        (127.0.0.2, ...) other hosts also reach it for migrations at
        qemu+tcp://listen_addr/system.
        """
        state = self.useFixture(fixtures.TempDir()).path
        script = os.path.join(os.path.dirname(TOOLS), 'second-libvirtd.sh')
        uri = subprocess.run([script, 'start', state] +
                             ([listen_addr] if listen_addr else []),
                             check=True, capture_output=True,
                             text=True).stdout.strip()
        self.addCleanup(_remove_libvirt_host, script, state)
        return uri

    def console_log_path(self, name):
        return os.path.join(self.instances_path, name + '.console.log')

    def wait_for_console(self, path, text, timeout=90):
        """Waits until the guest printed text on its serial console."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if os.path.exists(path):
                with open(path, errors='replace') as f:
                    if text in f.read():
                        return
            time.sleep(0.5)
        with open(path, errors='replace') as f:
            self.fail('%r not on the console after %ss:\n%s' % (
                text, timeout, f.read()[-3000:]))


def _remove_libvirt_host(script, state):
    """Removes the guests, then the daemon; fails when a guest stays."""
    done = subprocess.run([script, 'remove', state], capture_output=True,
                          text=True)
    if done.returncode:
        raise AssertionError(done.stderr.strip())


def restart_libvirtd(state_dir=LIBVIRTD_DIR, uri=URI):
    """Restarts a libvirtd as an operator's package upgrade would; running
    guests survive, open connections break. state_dir: that of a daemon
    of tools/second-libvirtd.sh (by default the main one's; None: the
    system daemon), which restarts in its mount namespace, without a TCP
    listener.
    """
    if state_dir is None:
        pid_dir, start = '/run', ['libvirtd', '-d']
    else:
        pid_dir = state_dir
        start = ['nsenter', '-t', _pid_of(state_dir, 'virtlogd'), '-m',
                 'libvirtd', '-d', '-p',
                 os.path.join(state_dir, 'libvirtd.pid')]
    # The daemon of that pid file only: other tests' daemons live on.
    pid = int(_pid_of(pid_dir, 'libvirtd'))
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 30
    while os.path.exists('/proc/%d' % pid):
        if time.monotonic() > deadline:
            raise RuntimeError('libvirtd did not stop')
        time.sleep(0.2)
    subprocess.run(start, check=True)
    deadline = time.monotonic() + 60
    while True:
        try:
            libvirt.open(uri).close()
            return
        except libvirt.libvirtError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def _pid_of(state_dir, daemon):
    with open(os.path.join(state_dir, daemon + '.pid')) as f:
        return f.read().strip()


def libvirtd_path(path, state_dir=LIBVIRTD_DIR):
    """Where this process finds a path of the (main) libvirtd's files: a
    daemon of tools/second-libvirtd.sh keeps /var/lib/libvirt and the
    like in its own mount namespace.
    """
    if state_dir is None:
        return path
    return '/proc/%s/root%s' % (_pid_of(state_dir, 'virtlogd'), path)
