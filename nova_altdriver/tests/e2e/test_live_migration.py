"""Live migration on real QEMU between two libvirt daemons of this machine
(tools/second-libvirtd.sh, reaching each other over loopback), proven from
inside the test guest: its heartbeat, counted in RAM and written to its
disk, goes on across the move without a reboot.
"""

import os
import threading
import time

import fixtures
import libvirt
from nova.console import serial

from nova_altdriver.tests.e2e import base
from nova_altdriver.tests.e2e import markers
from nova_altdriver.tests.e2e import test_volumes

MIGRATION_TIMEOUT = 300


class ConsoleWatch(object):
    """Follows console logs, noting when each heartbeat first shows: the
    guest's own account of when it ran.
    """

    def __init__(self, *paths):
        self._paths = paths
        self.arrivals = {}  # heartbeat -> monotonic time first seen
        self.texts = {}  # path -> its text when last read
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._follow, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    def _follow(self):
        while not self._stop.wait(0.05):
            now = time.monotonic()
            for path in self._paths:
                try:
                    with open(path, errors='replace') as f:
                        text = f.read()
                except FileNotFoundError:
                    continue
                self.texts[path] = text
                for boot in markers.boots(text):
                    for beat in boot.beats:
                        self.arrivals.setdefault(beat, now)

    def gaps(self):
        """[(seconds, heartbeat)]: the wait before each heartbeat."""
        beats = sorted(self.arrivals)
        return [(self.arrivals[b] - self.arrivals[a], b)
                for a, b in zip(beats, beats[1:])]

    def longest_silence(self):
        """(seconds, heartbeat after it): the longest wait for a
        heartbeat (the guest writes one about every second).
        """
        return max(self.gaps())

    def downtime(self):
        """How much longer than usual the guest was silent at most: what
        it stood still for.
        """
        gaps = sorted(gap for gap, _beat in self.gaps())
        return gaps[-1] - gaps[len(gaps) // 2]


class MigrationHosts(object):
    """Two compute hosts and a guest migrated between them, for an e2e
    TestCase with self.flavor and self.image: the tests below and
    benchmarks/migration.py.
    """

    # seconds between looks at a migration's status
    MIGRATION_POLL_INTERVAL = 0.5

    def start_hosts(self, shared=True):
        if shared:
            paths = (None, None)
        else:
            paths = tuple(self.useFixture(fixtures.TempDir()).path
                          for _ in range(2))
        self.paths = tuple(p or self.instances_path for p in paths)
        computes = self.migration_hosts(paths)
        self.conns = [self.hypervisor_of(c) for c in computes]
        return computes

    def boot_on_compute1(self, image=None, flavor=None, **extra):
        server = self.boot(self.image if image is None else image,
                           flavor or self.flavor,
                           availability_zone='nova:compute1', **extra)
        self.assertEqual('compute1', server['OS-EXT-SRV-ATTR:host'])
        self.wait_for_guest(server, 'ALTDRIVER-HB 3')
        return server

    def console_log(self, server, host_index):
        return os.path.join(self.paths[host_index], server['id'],
                            'console.log')

    def read(self, path):
        with open(path, errors='replace') as f:
            return f.read()

    def live_migrate(self, server, block_migration='auto'):
        self.api.post_server_action(server['id'], {'os-migrateLive': {
            'host': None, 'block_migration': block_migration}})

    def live_migrate_to_compute2(self, server):
        """Live-migrates server, which must complete: (the server, now on
        compute2, the seconds from the request to the migration's end).
        """
        started = time.monotonic()
        self.live_migrate(server)
        migration = self.migration(server, ('completed', 'error', 'failed'))
        took = time.monotonic() - started
        self.assertEqual('completed', migration['status'])
        return self.assertRunsOn(server, 1), took

    def live_migrate_watching(self, server):
        """live_migrate_to_compute2, the guest's heartbeats followed on
        its console at the source and at the destination (one file on a
        shared path) until it wrote 3 more after the move: (the server,
        the seconds the migration took, the ConsoleWatch, the latest
        heartbeat at the source when the migration had ended).
        """
        source_log, dest_log = (self.console_log(server, index)
                                for index in (0, 1))
        with ConsoleWatch(*dict.fromkeys((source_log, dest_log))) as watch:
            server, took = self.live_migrate_to_compute2(server)
            # (after a block migration the source's console is gone: as
            # last read)
            last = markers.latest(watch.texts[source_log]).beats[-1]
            self.wait_for_beat(dest_log, last + 3)
        return server, took, watch, last

    def migration(self, server, statuses, timeout=MIGRATION_TIMEOUT):
        """The server's migration once its status is one of statuses."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.admin_api.api_get(
                '/os-migrations?instance_uuid=%s' % server['id']
            ).body['migrations']
            if found and found[0]['status'] in statuses:
                return found[0]
            self.assertLess(time.monotonic(), deadline,
                            'migration status %s, waiting for %s' % (
                                found and found[0]['status'], statuses))
            time.sleep(self.MIGRATION_POLL_INTERVAL)

    def assertRunsOn(self, server, index):
        """The guest runs on host index (0, 1) and nowhere else, its
        definition persistent; the server says so too.
        """
        dom = self.conns[index].lookupByUUIDString(server['id'])
        self.assertTrue(dom.isActive())
        self.assertTrue(dom.isPersistent())
        self.assertRaises(libvirt.libvirtError,
                          self.conns[1 - index].lookupByUUIDString,
                          server['id'])
        server = self._wait_for_server_parameter(server, {
            'status': 'ACTIVE', 'OS-EXT-STS:task_state': None,
            'OS-EXT-SRV-ATTR:host': 'compute%d' % (index + 1)})
        return server

    def wait_for_beat(self, path, beat, timeout=60):
        self.wait_for_console(path, 'ALTDRIVER-HB %d\n' % beat, timeout)

    def assertOneBootCountingOn(self, text):
        """One boot in the console text, its heartbeats without a gap."""
        boots = markers.boots(text)
        self.assertEqual(1, len(boots), text[-3000:])
        beats = boots[0].beats
        self.assertEqual(list(range(beats[0], beats[0] + len(beats))),
                         beats)
        return beats


class LiveMigrationTestCase(MigrationHosts, base.TestCase):

    def setUp(self):
        super().setUp()
        self.flavor = self.small_flavor()
        self.image = self.upload_guest_image()


class LiveMigrationTest(LiveMigrationTestCase):

    def test_live_migration_on_a_shared_instances_path(self):
        self.enable_serial_consoles()
        self.start_hosts(shared=True)
        server = self.boot_on_compute1()
        source_port = self.serial_port(self.computes['compute1'], server)
        server, took, watch, last = self.live_migrate_watching(server)
        # The destination's own serial port (both hosts are one machine
        # here) carries the guest's ttyS0; the source's went back.
        port = self.serial_port(self.computes['compute2'], server)
        self.assertNotEqual(source_port, port)
        self.read_serial_port(port, 'ALTDRIVER-TICK')
        self.assertEqual({('127.0.0.1', port)}, serial.ALLOCATED_PORTS)
        beats = self.assertOneBootCountingOn(self.read(
            self.console_log(server, 0)))
        self.assertGreater(beats[-1], last)
        silence, after = watch.longest_silence()
        print('shared path: migrated in %.1f s; longest heartbeat silence '
              '%.2f s (before HB %d), downtime about %.2f s' % (
                  took, silence, after, watch.downtime()))
        # A heartbeat a second: the guest stood still for well under
        # the time it takes TCG to boot it.
        self.assertLess(silence, 10)

    def test_block_migration_keeps_every_disk_write(self):
        self.start_hosts(shared=False)
        server = self.boot_on_compute1(config_drive=True)
        source_log = self.console_log(server, 0)
        dest_log = self.console_log(server, 1)
        server, took, watch, _last = self.live_migrate_watching(server)
        self.assertFalse(os.path.exists(os.path.dirname(source_log)))
        before = self.assertOneBootCountingOn(watch.texts[source_log])
        after = self.assertOneBootCountingOn(self.read(dest_log))
        # The guest counts on where it stopped counting at the source.
        self.assertEqual(before[-1] + 1, after[0])
        silence, beat = watch.longest_silence()
        print('block migration: migrated in %.1f s; longest heartbeat '
              'silence %.2f s (before HB %d), downtime about %.2f s' % (
                  took, silence, beat, watch.downtime()))
        self.assertLess(silence, 10)

        # Every heartbeat the guest saw written is on the copied disk; the
        # config drive came along.
        self._stop_server(server)
        last = markers.latest(self.read(dest_log)).beats[-1]
        self._start_server(server)
        self.wait_for_guest(server, 'ALTDRIVER-READY bootcount=2')
        self.wait_for_guest(server, 'ALTDRIVER-HB-FOUND')
        text = self.console(server)
        self.assertGreaterEqual(markers.latest(text).found, last)
        self.assertIn('ALTDRIVER-CONFIGDRIVE', text)

    def test_aborted_migration_leaves_the_guest_on_the_source(self):
        # 1 MiB/s: long enough to abort (compute1's driver reads it now)
        self.flags(live_migration_bandwidth=1, group='altdriver')
        self.start_hosts(shared=True)
        server = self.boot_on_compute1()
        console = self.console_log(server, 0)
        self.live_migrate(server)
        migration = self.migration(server, ('running',))
        # its progress shows in the migration record meanwhile
        self.api.microversion = '2.24'
        path = '/servers/%s/migrations/%s' % (server['id'], migration['id'])
        self._wait_for_assert(lambda: self.assertGreater(
            self.api.api_get(path).body['migration'][
                'memory_processed_bytes'] or 0, 0),
            max_retries=self.STATE_WAIT_RETRIES)
        shown = self.api.api_get(path).body['migration']
        self.assertGreater(shown['memory_total_bytes'],
                           shown['memory_processed_bytes'])
        self.api.api_delete('/servers/%s/migrations/%s' % (
            server['id'], migration['id']))
        migration = self.migration(server, ('cancelled', 'completed',
                                            'error', 'failed'))
        self.assertEqual('cancelled', migration['status'])
        self.assertRunsOn(server, 0)
        last = markers.latest(self.read(console)).beats[-1]
        self.wait_for_beat(console, last + 2)
        self.assertOneBootCountingOn(self.read(console))

    def force_complete(self, post_copy):
        """Forces a slow migration to complete; (the longest time the guest
        stood still, migration statuses seen).
        """
        # slow enough to be caught running (compute1's driver reads these
        # now)
        self.flags(live_migration_bandwidth=8,
                   live_migration_permit_post_copy=post_copy,
                   group='altdriver')
        self.start_hosts(shared=True)
        server = self.boot_on_compute1()
        console = self.console_log(server, 0)
        self.live_migrate(server)
        migration = self.migration(server, ('running',))
        statuses = []
        with ConsoleWatch(console) as watch:
            self.api.microversion = '2.22'
            self.api.force_complete_migration(server['id'], migration['id'])
            done = ('completed', 'error', 'failed', 'cancelled')
            while not statuses or statuses[-1] not in done:
                statuses.append(self.migration(server, done + (
                    'running (post-copy)',))['status'])
        self.assertEqual('completed', statuses[-1])
        self.assertRunsOn(server, 1)
        # it runs on there
        self.assertEqual(libvirt.VIR_DOMAIN_RUNNING, self.conns[1].
                         lookupByUUIDString(server['id']).state()[0])
        last = markers.latest(self.read(console)).beats[-1]
        self.wait_for_beat(console, last + 2)
        self.assertOneBootCountingOn(self.read(console))
        return watch.longest_silence()[0], statuses

    def test_force_complete_pauses_the_guest_until_it_is_across(self):
        silence, _statuses = self.force_complete(post_copy=False)
        # The guest stood still from the request until its memory was
        # across (a migration this slow otherwise stops it for about as
        # long as one heartbeat).
        print('force complete: the guest stood still for %.1f s' % silence)
        self.assertGreater(silence, 4)

    def test_force_complete_switches_to_post_copy(self):
        silence, statuses = self.force_complete(post_copy=True)
        # The guest runs on at the destination at once, fetching the rest
        print('post-copy: the guest stood still for %.1f s at most' % silence)
        self.assertIn('running (post-copy)', statuses)
        self.assertLess(silence, 4)

    def test_failure_at_the_destination_leaves_the_guest_on_the_source(self):
        self.start_hosts(shared=True)
        server = self.boot_on_compute1()
        console = self.console_log(server, 0)
        # The destination's libvirtd refuses the guest: another domain
        # there has its name.
        name = self.conns[0].lookupByUUIDString(server['id']).name()
        self.conns[1].defineXML(
            "<domain type='qemu'><name>%s</name><memory>65536</memory>"
            "<os><type>hvm</type></os></domain>" % name)
        self.live_migrate(server)
        migration = self.migration(server, ('completed', 'error', 'failed',
                                            'cancelled'))
        self.assertIn(migration['status'], ('error', 'failed'))
        self.assertEqual(
            'ACTIVE', self._wait_for_server_parameter(server, {
                'status': 'ACTIVE', 'OS-EXT-STS:task_state': None,
                'OS-EXT-SRV-ATTR:host': 'compute1'})['status'])
        self.assertTrue(self.conns[0].lookupByUUIDString(
            server['id']).isActive())
        last = markers.latest(self.read(console)).beats[-1]
        self.wait_for_beat(console, last + 2)
        self.assertOneBootCountingOn(self.read(console))
        # The shared instance directory stays: it is the guest's.
        self.assertTrue(os.path.exists(os.path.join(
            self.paths[0], server['id'], 'disk')))


class VolumeLiveMigrationTest(test_volumes.CephVolumes,
                              LiveMigrationTestCase):

    def test_a_volume_backed_server_keeps_its_volume(self):
        # Volumes only, instances paths not shared: Ceph is the shared
        # storage, nothing local moves.
        self.use_ceph_volumes()
        self.start_hosts(shared=False)
        self.make_volume(test_volumes.BOOT_VOLUME, from_guest_image=True)
        server = self.boot_on_compute1(
            '', self._create_flavor(memory_mb=256, vcpu=1, disk=0),
            block_device_mapping_v2=test_volumes.BOOT_FROM_VOLUME)
        source_log = self.console_log(server, 0)
        dest_log = self.console_log(server, 1)
        with ConsoleWatch(source_log, dest_log) as watch:
            server, _took = self.live_migrate_to_compute2(server)
            before = self.assertOneBootCountingOn(watch.texts[source_log])
            self.wait_for_beat(dest_log, before[-1] + 3)
        after = self.assertOneBootCountingOn(self.read(dest_log))
        self.assertEqual(before[-1] + 1, after[0])
        dom = self.conns[1].lookupByUUIDString(server['id'])
        self.assertIn("protocol='rbd'", dom.XMLDesc(0))
        # the volume's secret went with the guest: none left at the source
        self.assertEqual([], [
            s.UUIDString() for s in self.conns[0].listAllSecrets(0)])
        self.assertEqual(
            [test_volumes.BOOT_VOLUME],
            [v['id'] for v in self.api.get_server(server['id'])[
                'os-extended-volumes:volumes_attached']])
