import testtools

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
