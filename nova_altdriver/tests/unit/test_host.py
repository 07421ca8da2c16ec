import os
import queue
import threading
from unittest import mock
import uuid

import fixtures
import libvirt
from nova import exception
from nova.virt import event as virtevent

from nova_altdriver import host as host_mod
from nova_altdriver.tests import libvirt_test_driver
from nova_altdriver.tests.unit import base


class ConnectionTest(base.TestCase):

    def test_connection_is_opened_once_and_shared_by_threads(self):
        host = host_mod.Host(self.uri)
        self.addCleanup(host.close)
        seen = []
        threads = [threading.Thread(
            target=lambda: seen.append(host.get_connection()))
            for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(1, len({id(c) for c in seen}))

    def test_unreachable_libvirt_names_the_uri(self):
        uri = 'qemu+unix:///system?socket=%s/missing-sock' % self.tmp
        host = host_mod.Host(uri)
        error = self.assertRaises(exception.HypervisorUnavailable,
                                  host.hostname)
        self.assertIn(uri, str(error))

    def test_call_reconnects_once_when_the_daemon_went_away(self):
        host = host_mod.Host(self.uri)
        self.addCleanup(host.close)
        first = host.get_connection()
        lost = libvirt.libvirtError('Cannot write data: Broken pipe')
        lost.err = (libvirt.VIR_ERR_SYSTEM_ERROR, libvirt.VIR_FROM_RPC,
                    'Cannot write data: Broken pipe', 2, None, None, None,
                    32, 0)
        calls = []

        def flaky(conn):
            calls.append(conn)
            if len(calls) == 1:
                raise lost
            return conn.getHostname()

        self.assertTrue(host.call(flaky))
        self.assertIs(first, calls[0])
        self.assertIsNot(first, calls[1])

    def test_other_errors_are_not_retried(self):
        host = host_mod.Host(self.uri)
        self.addCleanup(host.close)
        calls = []

        def missing(conn):
            calls.append(conn)
            return conn.lookupByName('no-such-domain')

        self.assertRaises(libvirt.libvirtError, host.call, missing)
        self.assertEqual(1, len(calls))

    def test_find_guest(self):
        host = host_mod.Host(self.uri)
        self.addCleanup(host.close)
        guest_uuid = str(uuid.uuid4())
        host.get_connection().defineXML(
            libvirt_test_driver.domain_xml(guest_uuid, 'instance-00000001'))
        self.assertEqual('instance-00000001', host.find_guest(guest_uuid).name)
        self.assertIsNone(host.find_guest(str(uuid.uuid4())))


class EventTest(base.TestCase):

    def setUp(self):
        super().setUp()
        self.events = queue.Queue()
        self.host = host_mod.Host(self.uri, event_handler=self.events.put,
                                  stopped_event_delay=0.5)
        self.addCleanup(self.host.close)
        self.host.start_events()
        self.uuid = str(uuid.uuid4())
        conn = self.host.get_connection()
        self.dom = conn.defineXML(
            libvirt_test_driver.domain_xml(self.uuid, 'instance-00000001'))

    def next_event(self, timeout=5):
        event = self.events.get(timeout=timeout)
        self.assertEqual(self.uuid, event.uuid)
        return event.transition

    def assertNoEvent(self, within):
        self.assertRaises(queue.Empty, self.events.get, timeout=within)

    def test_lifecycle_events_reach_the_handler(self):
        self.dom.create()
        self.assertEqual(virtevent.EVENT_LIFECYCLE_STARTED, self.next_event())
        self.dom.suspend()
        self.assertEqual(virtevent.EVENT_LIFECYCLE_PAUSED, self.next_event())
        self.dom.resume()
        self.assertEqual(virtevent.EVENT_LIFECYCLE_RESUMED, self.next_event())

    def test_the_pauses_of_a_live_migration(self):
        # The test driver cannot migrate: its events are delivered as
        # libvirt delivers them.
        self.host._on_lifecycle_event(
            None, self.dom, libvirt.VIR_DOMAIN_EVENT_SUSPENDED,
            libvirt.VIR_DOMAIN_EVENT_SUSPENDED_MIGRATED, None)
        self.assertNoEvent(within=0.3)  # no pause of the server's
        self.host._on_lifecycle_event(
            None, self.dom, libvirt.VIR_DOMAIN_EVENT_SUSPENDED,
            libvirt.VIR_DOMAIN_EVENT_SUSPENDED_POSTCOPY, None)
        self.assertEqual(virtevent.EVENT_LIFECYCLE_POSTCOPY_STARTED,
                         self.next_event())

    def test_stopped_is_delayed(self):
        self.dom.create()
        self.next_event()
        self.dom.destroy()
        self.assertNoEvent(within=0.3)
        self.assertEqual(virtevent.EVENT_LIFECYCLE_STOPPED, self.next_event())

    def test_stopped_then_started_is_a_reboot_not_a_stop(self):
        self.dom.create()
        self.next_event()
        self.dom.destroy()
        self.dom.create()
        self.assertEqual(virtevent.EVENT_LIFECYCLE_STARTED, self.next_event())
        self.assertNoEvent(within=1.0)

    def test_close_stops_the_dispatcher_and_the_connection(self):
        conn = self.host.get_connection()
        self.host.close()
        self.assertNotIn('altdriver-events',
                         [t.name for t in threading.enumerate()])
        self.assertRaises(libvirt.libvirtError, conn.getHostname)


class GuestAfterRestartTest(base.TestCase):
    """A Guest found before libvirtd restarted still works after it."""

    @staticmethod
    def broken_once(method):
        """A libvirt domain method as a restart leaves it: its next call
        fails with the error a broken connection gives (a restart cannot be
        staged on the test driver), later ones reach the domain.
        """
        calls = []

        def call(domain, *args):
            calls.append(domain)
            if len(calls) > 1:
                return method(domain, *args)
            error = libvirt.libvirtError('Cannot write data: Broken pipe')
            error.err = (libvirt.VIR_ERR_SYSTEM_ERROR, libvirt.VIR_FROM_RPC,
                         'Broken pipe', 2, None, None, None, 32, 0)
            raise error
        return mock.patch.object(libvirt.virDomain, method.__name__, call)

    def test_a_call_is_made_again_on_a_new_connection(self):
        host = host_mod.Host(self.uri)
        self.addCleanup(host.close)
        instance_uuid = str(uuid.uuid4())
        guest = host.define(libvirt_test_driver.domain_xml(
            instance_uuid, 'instance-1'))
        first = host.get_connection()
        # (a libvirtd keeps definitions across its restart)
        libvirt_test_driver.persist_domains(first, self.uri)
        with self.broken_once(libvirt.virDomain.destroy):
            guest.hard_stop()
        self.assertFalse(guest.is_active())
        self.assertIsNot(first, host.get_connection())

    def test_other_errors_are_not_made_again(self):
        host = host_mod.Host(self.uri)
        self.addCleanup(host.close)
        guest = host.define(libvirt_test_driver.domain_xml(
            str(uuid.uuid4()), 'instance-1'))
        guest.start()
        self.assertRaises(libvirt.libvirtError, guest.start)  # running


class CpuControllerTest(base.TestCase):
    """Whether the kernel schedules cgroups' CPU time (<cputune>)."""

    def has_cpu_controller(self, mounts, controllers=None):
        for name, text in (('MOUNTS', mounts),
                           ('CGROUP2_CONTROLLERS', controllers)):
            path = os.path.join(self.tmp, name)
            if text is None:  # no such file
                path += '.missing'
            else:
                with open(path, 'w') as f:
                    f.write(text)
            self.useFixture(fixtures.MonkeyPatch(
                'nova_altdriver.host.' + name, path))
        return host_mod.Host.has_cpu_controller()

    def test_cgroups_v2(self):
        self.assertTrue(self.has_cpu_controller(
            '', 'cpuset cpu io memory hugetlb pids\n'))
        self.assertFalse(self.has_cpu_controller(
            '', 'cpuset io memory hugetlb pids\n'))

    def test_cgroups_v1(self):
        self.assertTrue(self.has_cpu_controller(
            'proc /proc proc rw,relatime 0 0\n'
            'cgroup /sys/fs/cgroup/cpu,cpuacct cgroup '
            'rw,nosuid,nodev,noexec,relatime,cpu,cpuacct 0 0\n'))
        self.assertFalse(self.has_cpu_controller(
            'cgroup /sys/fs/cgroup/cpuacct cgroup rw,relatime,cpuacct 0 0\n'
            'cgroup2 /sys/fs/cgroup/unified cgroup2 rw,relatime 0 0\n'))

    def test_neither(self):
        self.assertFalse(self.has_cpu_controller('proc /proc proc rw 0 0\n'))
        self.assertFalse(self.has_cpu_controller(None))
