"""Live migration, cold migration and resize, timed through nova's API.

One process runs one driver (BENCH_DRIVER: ``alt`` or ``intree``) in
nova's functional harness, as benchmarks/ops.py does, on two compute hosts:
two private libvirt daemons that reach each other over loopback (the
addresses from ALTDRIVER_E2E_FIRST_ADDR, which run.py sets) and one
instances path that both hosts share. The guest is the test guest, which
writes a heartbeat about every second on its console; the e2e live
migration tests' helpers boot it, migrate it and follow those heartbeats.

Times run from the API request until nova shows the result (looked at every
0.1 s), so they include nova's own work around the driver's, the same for
both drivers:

* live migration from compute1 to compute2 (this driver only): until the
  migration is ``completed``; the guest's downtime is how much longer than
  its usual interval it went without a heartbeat at most, QEMU's what
  libvirt reports for the completed migration. libvirt (9.0)
  refuses the in-tree driver's: the shared instances path is a local
  filesystem (two daemons of one machine share it), which libvirt's
  storage check takes for unshared storage, and the in-tree driver has no
  way to skip that check. This driver skips it (VIR_MIGRATE_UNSAFE) once
  its probe file showed the path shared.
* cold migration to the other host, then resize on that host to a bigger
  flavor: until ``VERIFY_RESIZE``; once the guest has booted there, the
  confirm until ``ACTIVE``. Both drivers copy the disks within the shared
  path (the in-tree driver takes a destination at its own ``my_ip``, the
  same for both hosts of this process, as a shared path; this driver sees
  its probe file).

A block migration (``block_migration``: the same hosts, each with its own
instances path) is measured for this driver alone: nova refuses one on a
shared path, and the in-tree driver reads ``instances_path`` at every
call, so two in-tree hosts in one process cannot have paths of their own.

A live migration both drivers do (``volume_migration``: the same hosts and
shared path) moves a server booted from an RBD volume on the one-node Ceph
of tools/ceph, with no local disk: libvirt takes network disks for shared
storage, so it lets the in-tree driver's migration through.

Run as ``python -m benchmarks.migration
migration|block_migration|volume_migration``.
"""

import subprocess
import sys
import time

import libvirt
from nova import utils

from benchmarks import ops
from nova_altdriver.tests.e2e import test_live_migration
from nova_altdriver.tests.e2e import test_volumes

GROUP = 'migration'


class MigrationBench(test_live_migration.MigrationHosts, ops.Bench):

    # the times' resolution
    MIGRATION_POLL_INTERVAL = 0.1

    def start_benchmark_hosts(self):
        return self.start_hosts(shared=True)

    def test_migration(self):
        server = self.boot_on_compute1()
        # libvirt refuses the in-tree driver's live migration here (the
        # module's docstring says why)
        if self.driver == 'alt':
            server = self.live_migration(server,
                                         'live migration, shared path')
        # to the other host, then resized there: the same moves for both
        source = server['OS-EXT-SRV-ATTR:host']
        other = {'compute1': 'compute2', 'compute2': 'compute1'}[source]
        self.move(server, 'cold migration', {'migrate': None}, other,
                  bootcount=2)
        self.flags(allow_resize_to_same_host=True)
        self.disable_compute(source)
        bigger = self._create_flavor(memory_mb=512, vcpu=1, disk=2)
        self.move(server, 'resize (same host)',
                  {'resize': {'flavorRef': bigger}}, other, bootcount=3)
        self.delete(server)

    def live_migration(self, server, figure):
        """Live-migrates server to compute2, recording the time as figure,
        the guest's downtime and QEMU's; the server then.
        """
        server, took, watch, _last = self.live_migrate_watching(server)
        self.record(GROUP, figure, took)
        self.record(GROUP, figure + ': downtime',
                    watch.downtime() * 1000, 'ms')
        # How long QEMU had the guest stopped, as libvirt reports it for the
        # completed migration at the destination: the part of the guest's
        # silence that the switch-over itself took.
        stats = self.conns[1].lookupByUUIDString(server['id']).jobStats(
            libvirt.VIR_DOMAIN_JOB_STATS_COMPLETED)
        self.record(GROUP, figure + ': QEMU downtime', stats['downtime'],
                    'ms')
        return server

    def disable_compute(self, host):
        """The scheduler leaves host out (a resize stays where it is)."""
        # services by uuid, and disabled that way, from 2.53 on
        with utils.temporary_mutation(self.admin_api, microversion='2.53'):
            service = self.admin_api.get_services(
                host=host, binary='nova-compute')[0]
            self.admin_api.put_service(service['id'], {'status': 'disabled'})

    def move(self, server, what, action, host, bootcount):
        """Requests action (a cold migration or resize) and confirms it,
        timed (figures named after what) until VERIFY_RESIZE on host and
        until ACTIVE; the guest boots in between (its bootcount-th boot).
        """
        # data an earlier step left to write back is not this one's
        subprocess.run(['sync'], check=True)
        server = self.time_until(what + ': until VERIFY_RESIZE', server,
                                 action, 'VERIFY_RESIZE')
        self.assertEqual(host, server['OS-EXT-SRV-ATTR:host'])
        self.wait_for_guest(server, 'ALTDRIVER-READY bootcount=%d' %
                            bootcount, timeout=600)
        subprocess.run(['sync'], check=True)
        self.time_until(what + ': confirm', server, {'confirmResize': None},
                        'ACTIVE')

    def time_until(self, figure, server, action, status):
        """Posts action and records as figure the seconds until the server
        shows status with no task left; the server then.
        """
        start = time.perf_counter()
        self.api.post_server_action(server['id'], action)
        deadline = start + test_live_migration.MIGRATION_TIMEOUT
        while True:
            server = self.api.get_server(server['id'])
            if (server['status'] == status and
                    server['OS-EXT-STS:task_state'] is None):
                self.record(GROUP, figure, time.perf_counter() - start)
                return server
            self.assertNotEqual('ERROR', server['status'], figure)
            self.assertLess(time.perf_counter(), deadline,
                            '%s: still %s' % (figure, server['status']))
            time.sleep(self.MIGRATION_POLL_INTERVAL)


class BlockMigrationBench(MigrationBench):
    """A block migration: each host its own instances path."""

    def start_benchmark_hosts(self):
        return self.start_hosts(shared=False)

    def test_block_migration(self):
        self.live_migration(self.boot_on_compute1(), 'block migration')


class VolumeMigrationBench(MigrationBench):
    """A live migration both drivers do: the server boots from an RBD
    volume (no local disk), so the storage is shared block storage and
    libvirt finds the in-tree driver's migration safe.
    """

    def test_volume_migration(self):
        flavor = self.use_benchmark_ceph_volumes(self.conns)
        self.make_volume(test_volumes.BOOT_VOLUME, from_guest_image=True)
        server = self.boot_on_compute1(
            '', flavor, block_device_mapping_v2=test_volumes.BOOT_FROM_VOLUME)
        self.delete(self.live_migration(server,
                                        'live migration, RBD volume'))


if __name__ == '__main__':
    ops.main({'migration': MigrationBench,
              'block_migration': BlockMigrationBench,
              'volume_migration': VolumeMigrationBench}[sys.argv[1]])
