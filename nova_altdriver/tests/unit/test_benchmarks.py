import argparse
import os

import fixtures
import testtools

import benchmarks
from benchmarks import cloud
from benchmarks import run


def record(figure, driver, value, group='operation', unit='s'):
    return {'group': group, 'figure': figure, 'driver': driver,
            'value': value, 'unit': unit}


class TablesTest(testtools.TestCase):
    """The benchmark report: medians, ranges, and ours/in-tree ratios."""

    def test_medians_ranges_and_ratio(self):
        text = run.tables([
            record('spawn', 'alt', 1.0), record('spawn', 'alt', 3.0),
            record('spawn', 'alt', 2.0), record('spawn', 'intree', 4.0),
            record('spawn', 'intree', 4.0)])
        row = next(line for line in text.splitlines()
                   if line.startswith('spawn'))
        cells = [c.strip() for c in row.split('|')]
        self.assertEqual(['spawn', '2 (1-3) s', '4 (4-4) s', '0.50'], cells)

    def test_groups_in_order_and_missing_driver(self):
        text = run.tables([
            record('RSS', 'alt', 130, 'memory', 'MiB'),
            record('pause', 'intree', 0.02)])
        self.assertLess(text.index('OPERATION'), text.index('MEMORY'))
        rss = next(line for line in text.splitlines()
                   if line.startswith('RSS'))
        self.assertEqual(['RSS', '130 (130-130) MiB', '-', '-'],
                         [c.strip() for c in rss.split('|')])


class TourStepsTest(testtools.TestCase):
    """The all-in-one tour's table, as the cloud scenario reads it."""

    OUTPUT = (
        '[04:46:11] == volume delete\n'
        'operation                                    | result | seconds\n'
        '---------------------------------------------+--------+--------\n'
        'server create (boot)                         | ok     | 13\n'
        'inbound bandwidth (quota:vif_inbound_average) | FAILED | 7\n'
        'server lock, set --property, set --tag       | ok     | 20\n'
        'tour: 937 s, FAILURES\n')

    def test_steps_results_and_the_whole_tour(self):
        self.assertEqual(
            ([('server create (boot)', 'ok', 13),
              ('inbound bandwidth (quota:vif_inbound_average)', 'FAILED', 7),
              ('server lock, set --property, set --tag', 'ok', 20)], 937),
            cloud.steps(self.OUTPUT))

    def test_a_tour_that_did_not_finish(self):
        self.assertEqual(([('server create (boot)', 'ok', 13)], None),
                         cloud.steps(self.OUTPUT.split('inbound')[0]))


class LoadFiguresTest(testtools.TestCase):
    """The all-in-one load test's figures, as the load scenario reads
    them.
    """

    OUTPUT = (
        'LOAD boot 50 servers (all ACTIVE) | 212 | s\n'
        'LOAD boot failures | 0 | servers\n'
        'a line of something else | 3 | s\n'
        'LOAD nova-compute CPU a storm action | 850 | ms\n'
        'LOAD storm actions failed | 1 | actions\n'
        'LOAD guests not back (status, ping) | 0 | servers\n'
        'LOAD leftovers after the delete | 2 | items\n')

    def test_figures_and_what_failed(self):
        rows, failed = cloud.load(self.OUTPUT)
        self.assertEqual(
            [('load', 'boot 50 servers (all ACTIVE)', 212.0, 's'),
             ('load', 'boot failures', 0.0, 'servers'),
             ('load', 'nova-compute CPU a storm action', 850.0, 'ms'),
             ('load', 'storm actions failed', 1.0, 'actions'),
             ('load', 'guests not back (status, ping)', 0.0, 'servers'),
             ('load', 'leftovers after the delete', 2.0, 'items')], rows)
        self.assertEqual(['storm actions failed: 1',
                          'leftovers after the delete: 2'], failed)

    def test_a_load_test_that_did_not_finish(self):
        self.assertRaises(SystemExit, cloud.load,
                          self.OUTPUT.split('LOAD leftovers')[0])


class PeakUsageTest(testtools.TestCase):
    """The peak of a filesystem's used space during a snapshot."""

    def test_a_file_written_and_removed_meanwhile_is_the_peak(self):
        from benchmarks import ops
        # /var/tmp: a disk (/tmp may be a tmpfs the machine's RAM shares)
        tmp = self.useFixture(fixtures.TempDir('/var/tmp')).path
        path = os.path.join(tmp, 'staging')
        with ops.PeakUsage(tmp) as usage:
            with open(path, 'wb') as f:
                f.write(os.urandom(16 * 2 ** 20))
                os.fsync(f.fileno())
            ops.time.sleep(0.1)
            os.unlink(path)
        self.assertGreaterEqual(usage.peak, 16 * 2 ** 20)


class PausedSecondsTest(testtools.TestCase):
    """Guest pause from libvirt lifecycle events."""

    def test_pauses_add_up_and_a_pause_open_at_the_end_counts(self):
        from benchmarks import ops
        suspended = ops.libvirt.VIR_DOMAIN_EVENT_SUSPENDED
        resumed = ops.libvirt.VIR_DOMAIN_EVENT_RESUMED
        defined = ops.libvirt.VIR_DOMAIN_EVENT_DEFINED
        events = [(1.0, suspended), (1.25, resumed), (2.0, defined),
                  (3.0, suspended), (3.5, resumed), (4.0, suspended)]
        self.assertAlmostEqual(0.25 + 0.5 + 0.5,
                               ops.paused_seconds(events, end=4.5))
        self.assertEqual(0.0, ops.paused_seconds([(1.0, resumed)], 2.0))


class MergeResultsTest(testtools.TestCase):
    """--update-docs after a run of some scenarios: their figures replace
    the published ones, the others stay.
    """

    PUBLISHED = 'MACHINE-1\n\n' + run.tables([
        record('spawn', 'alt', 1.0), record('spawn', 'intree', 2.0),
        record('pause', 'alt', 0.1), record('pause', 'intree', 0.1),
        record('RSS', 'alt', 130, 'memory', 'MiB')])

    def test_rows_replaced_in_place_and_new_ones_last(self):
        new = 'MACHINE-2\n\n' + run.tables([
            record('spawn', 'alt', 3.0), record('spawn', 'intree', 3.0),
            record('attach_volume', 'alt', 0.5),
            record('Ceph RSS', 'intree', 250, 'memory', 'MiB')])
        head, rows = run.parse_results(run.merge_results(
            self.PUBLISHED, new, ['volumes']))
        self.assertEqual(['MACHINE-1', 'volumes: MACHINE-2'], head)
        self.assertEqual(['spawn', 'pause', 'attach_volume'],
                         list(rows['operation']))
        self.assertIn('| 1.00', rows['operation']['spawn'])
        self.assertEqual(['RSS', 'Ceph RSS'], list(rows['memory']))

    def test_a_run_of_the_same_scenarios_again_replaces_its_line(self):
        merged = run.merge_results(self.PUBLISHED, 'MACHINE-2\n',
                                   ['ops', 'volumes'])
        merged = run.merge_results(merged, 'MACHINE-3\n', ['ops', 'volumes'])
        self.assertEqual(['MACHINE-1', 'ops, volumes: MACHINE-3'],
                         run.parse_results(merged)[0])
        self.assertEqual(self.PUBLISHED.split('\n\n', 1)[1],
                         merged.split('\n\n', 1)[1])  # tables unchanged

    def test_a_new_group_takes_its_place_among_the_published_ones(self):
        new = 'MACHINE-2\n\n' + run.tables([
            record('live migration', 'alt', 8.0, 'migration'),
            record('live migration', 'intree', 10.0, 'migration')])
        merged = run.merge_results(self.PUBLISHED, new, ['migration'])
        _head, rows = run.parse_results(merged)
        self.assertEqual(['spawn', 'pause'], list(rows['operation']))
        self.assertIn('| 0.80', rows['migration']['live migration'])
        self.assertLess(merged.index('OPERATION'), merged.index('MIGRATION'))
        self.assertLess(merged.index('MIGRATION'), merged.index('MEMORY'))

    def test_every_scenario_has_its_runner(self):
        for scenario in run.SCENARIOS:
            self.assertTrue(callable(getattr(run.Runner,
                                             'scenario_' + scenario)))


class MigrationScenarioTest(testtools.TestCase):
    """The migration scenarios' processes."""

    # not the e2e tests' default 127.0.0.2 and .3
    ADDRESSES = {'ALTDRIVER_E2E_FIRST_ADDR': '10'}

    def runs_of(self, scenario):
        """(name, command, drivers, extra_env) of the processes scenario
        starts, and the tools scripts it runs, as [(name, args)].
        """
        runner = run.Runner(argparse.Namespace(
            out=self.useFixture(fixtures.TempDir()).path))
        runs, scripts = [], []
        runner.alternate = (
            lambda name, command, extra_env, drivers=run.DRIVERS:
            runs.append((name, command('alt'), drivers, extra_env)))
        runner._script = lambda name, *args: scripts.append((name, args))
        getattr(runner, 'scenario_' + scenario)()
        return runs, scripts

    def test_block_migration_is_this_drivers_alone_on_own_addresses(self):
        runs, _scripts = self.runs_of('migration')
        self.assertEqual([
            ('migration', ['benchmarks.migration', 'migration'],
             ('alt', 'intree'), self.ADDRESSES),
            ('block_migration', ['benchmarks.migration', 'block_migration'],
             ('alt',), self.ADDRESSES)], runs)

    def test_volume_migration_is_both_drivers_on_ceph(self):
        runs, scripts = self.runs_of('volume_migration')
        self.assertEqual([('ceph/ceph.sh', ('up',))], scripts)
        self.assertEqual([
            ('volume_migration', ['benchmarks.migration', 'volume_migration'],
             ('alt', 'intree'), self.ADDRESSES)], runs)


class CephRssTest(testtools.TestCase):
    """The memory Ceph adds: its daemons' RSS together, from /proc."""

    def proc(self, processes):
        proc = self.useFixture(fixtures.TempDir()).path
        for pid, (name, rss_kib) in processes.items():
            os.mkdir(os.path.join(proc, pid))
            with open(os.path.join(proc, pid, 'comm'), 'w') as f:
                f.write(name + '\n')
            with open(os.path.join(proc, pid, 'status'), 'w') as f:
                f.write('Name:\t%s\nVmRSS:\t%d kB\nThreads:\t4\n' % (
                    name, rss_kib))
        os.symlink('1', os.path.join(proc, 'self'))
        return proc

    def test_daemons_add_up_and_others_do_not_count(self):
        proc = self.proc({'1': ('bash', 4096), '10': ('ceph-mon', 40960),
                          '11': ('ceph-mgr', 153600),
                          '12': ('ceph-osd', 51200),
                          '13': ('ceph-osd', 1024)})
        self.assertEqual(40 + 150 + 50 + 1,
                         benchmarks.ceph_rss_mib(proc))
        self.assertEqual(4, benchmarks.rss_mib(proc=proc))

    def test_a_missing_daemon_is_an_error_not_a_smaller_sum(self):
        proc = self.proc({'10': ('ceph-mon', 40960),
                          '12': ('ceph-osd', 51200)})
        e = self.assertRaises(RuntimeError, benchmarks.ceph_rss_mib, proc)
        self.assertIn('ceph-mgr', str(e))
