"""Faults at every step of the driver, on real QEMU: nothing acknowledged is
lost, nothing is left behind (faults.py says how, and what is proven).

The normal e2e tier runs a representative subset: every operation and
every fault at least once, on one guest that takes them one after the other.
``ALTDRIVER_FAULT_MATRIX=full`` (tools/fault-matrix.sh) runs the full
matrix instead: every operation, every fault, every step it can meet.
"""

import os
import unittest

from nova_altdriver.tests.e2e import faults

FULL = os.environ.get('ALTDRIVER_FAULT_MATRIX') == 'full'

# (operation, fault, a part of the step's name), in an order one server can
# take them: it runs on compute1 until the evacuation moves it to compute2.
SUBSET = (
    # killed while the new image is converted into the cache (a lock held)
    ('spawn', 'kill', 'qemu-img convert'),
    # the guest's QEMU dies just as rescue powers it off
    ('rescue', 'qemu', 'Guest.shutdown'),
    ('unrescue', 'libvirtd', 'Host.define'),
    # the block commit that folds the guest's writes back
    ('live snapshot', 'libvirtd', 'Guest.commit_active_layer'),
    # killed while the guest writes to the temporary overlay (its disk
    # streams to Glance meanwhile)
    ('live snapshot', 'kill', faults.UPLOAD),
    # the other host's start-up recovery while the overlay is in use
    ('live snapshot', 'peer', faults.UPLOAD),
    # a full disk during the upload (a streamed copy needs no space)
    ('cold snapshot', 'enospc', faults.UPLOAD),
    ('shelve-offload', 'glance', faults.UPLOAD),
    ('unshelve', 'kill', 'qemu-img rebase'),
    ('hard reboot', 'kill', 'Host.define'),
    # the old disk is gone already
    ('rebuild', 'enospc', 'glance download'),
    # killed with the guest defined on the destination, nova not told
    ('evacuate', 'kill', 'Guest.start'),
    # now on compute2, while compute1 restarts
    ('rescue', 'peer', 'qemu-img create'),
)

# The faults of the full matrix, for each operation (the Glance upload only
# where there is one; the other host's restart in test_matrix_two_hosts).
MATRIX_FAULTS = ('kill', 'libvirtd', 'qemu', 'enospc', 'glance')
# What two hosts sharing the instances path do while the other restarts.
TWO_HOST_OPERATIONS = ('live snapshot', 'cold snapshot', 'rescue')


# (skipped before setUp starts two compute hosts)
full_matrix = unittest.skipUnless(FULL, 'ALTDRIVER_FAULT_MATRIX=full runs it')


class FaultTest(faults.FaultTestCase):

    def setUp(self):
        super().setUp()
        self.start_host('compute1')
        self.start_host('compute2')

    def assertSurvived(self, results):
        failed = [r.summary() for r in results if not r.clean]
        self.assertEqual([], failed, '\n'.join(failed))
        self.assertTrue(any(r['applied'] for r in results))

    @unittest.skipIf(FULL, 'the full matrix covers it')
    def test_representative_subset(self):
        results = self.session(SUBSET)
        self.assertSurvived(results)
        # (a step renamed in the driver: SUBSET needs the new name)
        self.assertEqual([], [r.summary() for r in results
                              if r['applied'] is not True])
        self.assertEqual(set(faults.OPERATIONS), {r['op'] for r in results})
        self.assertEqual(set(faults.FAULTS), {r['fault'] for r in results})

    def matrix_of(self, op):
        self.assertSurvived(self.matrix(op, MATRIX_FAULTS))

    @full_matrix
    def test_matrix_spawn(self):
        self.matrix_of('spawn')

    @full_matrix
    def test_matrix_rescue(self):
        self.matrix_of('rescue')

    @full_matrix
    def test_matrix_unrescue(self):
        self.matrix_of('unrescue')

    @full_matrix
    def test_matrix_live_snapshot(self):
        self.matrix_of('live snapshot')

    @full_matrix
    def test_matrix_cold_snapshot(self):
        self.matrix_of('cold snapshot')

    @full_matrix
    def test_matrix_shelve_offload(self):
        self.matrix_of('shelve-offload')

    @full_matrix
    def test_matrix_unshelve(self):
        self.matrix_of('unshelve')

    @full_matrix
    def test_matrix_hard_reboot(self):
        self.matrix_of('hard reboot')

    @full_matrix
    def test_matrix_rebuild(self):
        self.matrix_of('rebuild')

    @full_matrix
    def test_matrix_evacuate(self):
        self.matrix_of('evacuate')

    @full_matrix
    def test_matrix_two_hosts(self):
        """Each host restarted at every step of the other's snapshots and
        rescues (one instances path).
        """
        results = []
        for host in sorted(self.hosts):
            for op in TWO_HOST_OPERATIONS:
                results += self.matrix(op, ('peer',), host)
        self.assertSurvived(results)
