"""Live migration through nova's API up to what libvirt's test driver can
do: the pre-checks decide and explain, and whatever fails leaves the server
running where it was (the moves themselves: the e2e tier).
"""

import os

import fixtures
from nova.compute import instance_actions
from nova import utils

from nova_altdriver.tests.functional import test_unsupported


class LiveMigrationTest(test_unsupported.UnsupportedTestCase):

    def start_hosts(self, shared):
        paths = ((None, None) if shared else
                 tuple(self.useFixture(fixtures.TempDir()).path
                       for _ in range(2)))
        # (addresses where no libvirtd listens: the e2e tier's are live)
        self.computes = [
            self.start_compute('compute%d' % num, instances_path=path,
                               migration_addr='127.0.0.%d' % (249 + num))
            for num, path in enumerate(paths, 1)]
        self.server = self.boot(host='compute1')

    def live_migrate(self, block_migration, host=None):
        self.api.post_server_action(self.server['id'], {'os-migrateLive': {
            'host': host, 'block_migration': block_migration}})

    def assertOnCompute1(self):
        self.assertUnchanged(self.server, host='compute1')
        self.assertEqual(
            [self._get_provider_uuid_by_host('compute1')],
            list(self._get_allocations_by_server_uuid(self.server['id'])))
        self.assertTrue(self.hypervisor_of(self.computes[0]).
                        lookupByUUIDString(self.server['id']).isActive())
        self.assertEqual([], self.hypervisor_of(self.computes[1]).
                         listAllDomains())
        # the destination's probe went with its pre-check
        self.assertEqual([], [name for name in os.listdir(
            self.instances_path) if name.startswith('shared-storage-')])
        self.assertStillWorks(self.server)

    def assertRefusedBySource(self, *words):
        # The scheduler tries compute2, whose pre-check asks compute1,
        # which refuses; no other host is left.
        self.assertRefusedEvent(
            self.server, instance_actions.LIVE_MIGRATION,
            'compute_check_can_live_migrate_source', *words)
        self.assertRefusedEvent(self.server, instance_actions.LIVE_MIGRATION,
                                'conductor_live_migrate_instance',
                                'No valid host')
        self._wait_for_migration_status(self.server, ['error'])
        self.assertOnCompute1()

    def test_local_disks_without_block_migration_are_refused(self):
        self.start_hosts(shared=False)
        self.live_migrate(block_migration=False)
        self.assertRefusedBySource('is not on shared storage',
                                   'live-migrate it with block migration')

    def test_block_migration_on_a_shared_path_is_refused(self):
        self.start_hosts(shared=True)
        self.live_migrate(block_migration=True)
        self.assertRefusedBySource('is not on local storage',
                                   'shared instances path')

    def test_a_forced_host_answers_400_with_the_reason(self):
        self.start_hosts(shared=False)
        # Before 2.34 the API waits for the pre-checks; before 2.30 a named
        # host bypasses the scheduler.
        with utils.temporary_mutation(self.api, microversion='2.25'):
            text = self.refused(
                400, self.api.post_server_action, self.server['id'],
                {'os-migrateLive': {'host': 'compute2',
                                    'block_migration': False}})
        self.assertIn('live-migrate it with block migration', text)
        self.assertOnCompute1()

    def test_a_failed_migration_leaves_the_server_running_on_the_source(self):
        # Both pre-checks pass; libvirt's test driver then cannot migrate.
        self.start_hosts(shared=True)
        self.live_migrate(block_migration='auto')
        self._wait_for_migration_status(self.server, ['failed'])
        self.assertOnCompute1()
        self.assertEqual(
            [], self.api.get_server(self.server['id']).get('fault', []))
