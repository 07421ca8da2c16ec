"""Runs the benchmarks for both drivers, in turn, and compares them.

``nova_altdriver.AltDriver`` (ours) and nova's ``libvirt.LibvirtDriver``
(in-tree) run the same scenarios on the same private libvirtd + QEMU, one
process per driver and scenario, alternating ours, in-tree, ours, in-tree.
Absolute times are noise on shared machines: the ratio ours/in-tree of the
medians in one run is the result. Prints one table per group and writes
the raw runs (``runs.json``) and the tables (``results.txt``) to the output
directory. Usually started by benchmarks/run.sh, which sets up the machine;
the ``volumes`` and ``volume_migration`` scenarios start (or adopt) the
one-node Ceph of tools/ceph.
"""

import argparse
import collections
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import time

import libvirt

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CACHE = os.environ.get('ALTDRIVER_CACHE', '/var/cache/nova-altdriver')
DRIVERS = ('alt', 'intree')
SCENARIOS = ('ops', 'bigdisk', 'concurrency', 'periodic', 'volumes',
             'migration', 'volume_migration', 'cloud', 'load')
PERIODIC_SIZES = (10, 100, 500)
# The migration scenario's two libvirt daemons listen on 127.0.0.10 and .11:
# the e2e tests take .2 and .3 unless told, the all-in-one's second host .2.
MIGRATION_FIRST_ADDR = '10'
GROUPS = ('operation', 'live snapshot', 'concurrency', 'migration', 'periodic',
          'memory', 'cloud', 'load')
DOCS_RESULTS = os.path.join(TOP, 'doc', 'source', 'benchmark-results.txt')


def log(msg):
    print('[%s] %s' % (time.strftime('%H:%M:%S'), msg), file=sys.stderr,
          flush=True)


class Runner(object):

    def __init__(self, args):
        self.args = args
        self.out = args.out
        self.raw = os.path.join(self.out, 'runs.jsonl')
        self.failures = []
        self.env = dict(os.environ, PYTHONPATH=TOP,
                        OS_NOVA_DISABLE_EVENTLET_PATCHING='true',
                        ALTDRIVER_E2E_REQUIRED='1', BENCH_OUT=self.raw)

    def run(self):
        os.makedirs(self.out, exist_ok=True)
        state = os.path.join(self.out, 'libvirt')
        self.uri = self._script('second-libvirtd.sh', 'start', state)
        self.env['ALTDRIVER_E2E_URI'] = self.uri
        self.machine = machine(self.uri)
        try:
            for scenario in self.args.scenarios:
                getattr(self, 'scenario_' + scenario)()
        finally:
            self._script('second-libvirtd.sh', 'stop', state)
        return self.report()

    def _script(self, name, *args):
        return subprocess.run(
            ['bash', os.path.join(TOP, 'tools', name)] + list(args),
            check=True, capture_output=True, text=True).stdout.strip()

    def remove_guests(self):
        """Guests a failed run left behind on the private libvirtd (nova
        refuses to start a new compute service next to them), and secrets
        (the next driver would find its volumes' key defined already).
        """
        conn = libvirt.open(self.uri)
        try:
            for dom in conn.listAllDomains():
                if dom.isActive():
                    dom.destroy()
                dom.undefineFlags(libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE |
                                  libvirt.VIR_DOMAIN_UNDEFINE_NVRAM)
            for secret in conn.listAllSecrets():
                secret.undefine()
        finally:
            conn.close()

    def alternate(self, name, command, extra_env=None, keep_guests=False,
                  drivers=DRIVERS):
        """Runs command(driver) once per driver (of drivers) and
        repetition, in turn, each on a libvirtd without guests unless
        keep_guests.
        """
        for rep in range(self.args.reps):
            for driver in drivers:
                log('%s: %s, run %d of %d' % (
                    name, driver, rep + 1, self.args.reps))
                logfile = os.path.join(self.out, '%s-%s-%d.log' % (
                    name, driver, rep + 1))
                env = dict(self.env, BENCH_DRIVER=driver, **(extra_env or {}))
                if not keep_guests:
                    self.remove_guests()
                with open(logfile, 'w') as f:
                    result = subprocess.run(
                        [sys.executable, '-m'] + command(driver), cwd=TOP,
                        env=env, stdout=f, stderr=subprocess.STDOUT)
                if result.returncode:
                    log('FAILED: %s with %s (log: %s)' % (name, driver,
                                                          logfile))
                    self.failures.append(logfile)

    def _harness(self, name, extra_env=None):
        self.alternate(name, lambda driver: ['benchmarks.ops', name],
                       extra_env)

    def scenario_ops(self):
        self._harness('ops')

    def scenario_concurrency(self):
        self._harness('concurrency')

    def scenario_bigdisk(self):
        self._harness('bigdisk', {'BENCH_BIG_IMAGE': big_image(
            os.environ['ALTDRIVER_GUEST_DIR'])})

    def scenario_volumes(self):
        self._script('ceph/ceph.sh', 'up')  # returns once HEALTH_OK
        self._harness('volumes')

    def scenario_migration(self):
        addresses = {'ALTDRIVER_E2E_FIRST_ADDR': MIGRATION_FIRST_ADDR}
        self.alternate('migration', lambda driver: [
            'benchmarks.migration', 'migration'], addresses)
        # this driver's alone (benchmarks/migration.py says why)
        self.alternate('block_migration', lambda driver: [
            'benchmarks.migration', 'block_migration'], addresses,
            drivers=('alt',))

    def scenario_volume_migration(self):
        self._script('ceph/ceph.sh', 'up')  # returns once HEALTH_OK
        self.alternate('volume_migration', lambda driver: [
            'benchmarks.migration', 'volume_migration'],
            {'ALTDRIVER_E2E_FIRST_ADDR': MIGRATION_FIRST_ADDR})

    def scenario_cloud(self):
        self.alternate('cloud', lambda driver: ['benchmarks.cloud', 'tour'])

    def scenario_load(self):
        self.alternate('load', lambda driver: ['benchmarks.cloud', 'load'])

    def scenario_periodic(self):
        domains = os.path.join(self.out, 'domains')
        self.remove_guests()

        def populate(size):
            subprocess.run(
                [sys.executable, '-m', 'benchmarks.periodic', 'populate',
                 '--uri', self.uri, '--dir', domains, '--domains', str(size)],
                cwd=TOP, env=self.env, check=True)
        for size in PERIODIC_SIZES:
            populate(size)
            self.alternate('periodic-%d' % size, lambda driver: [
                'benchmarks.periodic', 'measure', '--driver', driver,
                '--uri', self.uri, '--dir', domains, '--repeat', '3',
                '--out', self.raw], keep_guests=True)
        populate(0)

    def report(self):
        with open(self.raw) as f:
            records = [json.loads(line) for line in f]
        with open(os.path.join(self.out, 'runs.json'), 'w') as f:
            json.dump({'machine': self.machine, 'runs': records}, f,
                      indent=1)
        text = machine_text(self.machine) + '\n' + tables(records)
        if self.failures:
            text += '\nFAILED runs (see their logs): %s\n' % ', '.join(
                self.failures)
        with open(os.path.join(self.out, 'results.txt'), 'w') as f:
            f.write(text)
        print(text)
        if self.args.update_docs and not self.failures:
            self.update_docs(text)
        return 1 if self.failures else 0

    def update_docs(self, text):
        """A run of every scenario replaces the published tables; a run of
        some merges its figures into them.
        """
        if set(self.args.scenarios) != set(SCENARIOS):
            with open(DOCS_RESULTS) as f:
                text = merge_results(f.read(), text, self.args.scenarios)
        with open(DOCS_RESULTS, 'w') as f:
            f.write(text)


def tables(records):
    values = collections.defaultdict(lambda: collections.defaultdict(list))
    units = {}
    for r in records:
        values[(r['group'], r['figure'])][r['driver']].append(r['value'])
        units[(r['group'], r['figure'])] = r['unit']
    rows = collections.defaultdict(dict)
    for group in GROUPS:
        for key in [key for key in values if key[0] == group]:
            cells, medians = [], []
            for driver in DRIVERS:
                v = values[key][driver]
                if v:
                    medians.append(statistics.median(v))
                    cells.append('%s (%s-%s) %s' % (
                        fmt(medians[-1]), fmt(min(v)), fmt(max(v)),
                        units[key]))
                else:
                    medians.append(None)
                    cells.append('-')
            ratio = ('%.2f' % (medians[0] / medians[1])
                     if None not in medians and medians[1] else '-')
            rows[group][key[1]] = '%-40s | %-26s | %-26s | %s' % (
                key[1], cells[0], cells[1], ratio)
    return render(rows)


def render(rows):
    """The tables of rows ({group: {figure: row line}}), in GROUPS order."""
    out = []
    for group in GROUPS:
        if not rows.get(group):
            continue
        out.append(group.upper())
        out.append('%-40s | %-26s | %-26s | %s' % (
            'figure', 'ours: median (min-max)', 'in-tree: median (min-max)',
            'ours/in-tree'))
        out.append('-' * 41 + '+' + '-' * 28 + '+' + '-' * 28 + '+' + '-' * 13)
        out.extend(rows[group].values())
        out.append('')
    return '\n'.join(out)


def parse_results(text):
    """(the machine lines, {group: {figure: row line}}) of a results.txt."""
    titles = {group.upper(): group for group in GROUPS}
    head, rows, group = [], collections.defaultdict(dict), None
    for line in text.splitlines():
        if line in titles:
            group = titles[line]
        elif group is None:
            head.extend([line] if line else [])
        elif '|' in line and not line.startswith(('figure ', '-')):
            rows[group][line.split('|', 1)[0].strip()] = line
    return head, rows


def merge_results(published, new, scenarios):
    """The published results with the rows of a run of some scenarios in
    place of theirs (new figures last in their group), and the run's
    machine line, marked with those scenarios, after the published one.
    """
    head, rows = parse_results(published)
    new_head, new_rows = parse_results(new)
    mark = '%s: ' % ', '.join(scenarios)
    head = [line for line in head if not line.startswith(mark)] + [
        mark + line for line in new_head]
    for group, figures in new_rows.items():
        rows[group].update(figures)
    return '\n'.join(head) + '\n\n' + render(rows)


def fmt(value):
    return '%.3g' % value if value < 100 else '%.0f' % value


def machine(uri):
    conn = libvirt.open(uri)
    try:
        libvirt_version, qemu_version = conn.getLibVersion(), conn.getVersion()
    finally:
        conn.close()
    with open('/proc/cpuinfo') as f:
        model = next((line.split(':', 1)[1].strip() for line in f
                      if line.startswith('model name')), platform.machine())
    with open('/proc/meminfo') as f:
        mem_kib = int(f.readline().split()[1])

    def version(v):
        return '%d.%d.%d' % (v // 1000000, v // 1000 % 1000, v % 1000)
    return {'date': datetime.datetime.now().isoformat(timespec='minutes'),
            'cpus': os.cpu_count(), 'cpu': model,
            'memory_gib': round(mem_kib / 2 ** 20, 1),
            'kernel': platform.release(),
            'libvirt': version(libvirt_version),
            'qemu': version(qemu_version)}


def machine_text(m):
    return ('%(date)s, %(cpus)d CPUs (%(cpu)s), %(memory_gib)s GiB, Linux '
            '%(kernel)s, libvirt %(libvirt)s, QEMU %(qemu)s (TCG)\n' % m)


def big_image(guest_dir):
    """The test guest with 1 GiB of random data after its partition (the
    guest never reads it): real data to copy, cached.
    """
    path = os.path.join(CACHE, 'bench-1g-%s.qcow2' % os.path.basename(
        guest_dir))
    if os.path.exists(path):
        return path
    log('building %s' % path)
    raw = path + '.raw'
    subprocess.run(['qemu-img', 'convert', '-O', 'raw',
                    os.path.join(guest_dir, 'disk.qcow2'), raw], check=True)
    with open(raw, 'r+b') as f:
        f.seek(32 * 2 ** 20)
        for _ in range(1024):
            f.write(os.urandom(2 ** 20))
    subprocess.run(['qemu-img', 'convert', '-O', 'qcow2', raw,
                    path + '.tmp'], check=True)
    os.remove(raw)
    os.rename(path + '.tmp', path)
    return path


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--reps', type=int, default=2,
                        help='runs per driver and scenario (default 2)')
    parser.add_argument('--out', default=os.path.join(
        '/var/tmp/nova-altdriver-bench',
        datetime.datetime.now().strftime('%Y%m%d-%H%M%S')))
    parser.add_argument('--update-docs', action='store_true',
                        help='copy the tables to doc/source')
    parser.add_argument('scenarios', nargs='*', metavar='SCENARIO',
                        help='some of %s (default: all)' % ', '.join(
                            SCENARIOS))
    args = parser.parse_args()
    unknown = set(args.scenarios) - set(SCENARIOS)
    if unknown:
        parser.error('unknown scenarios: %s' % ', '.join(sorted(unknown)))
    args.scenarios = args.scenarios or list(SCENARIOS)
    return Runner(args).run()


if __name__ == '__main__':
    sys.exit(main())
