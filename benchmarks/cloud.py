"""The cloud's view: the all-in-one (tools/aio) with one driver.

``python -m benchmarks.cloud tour|load`` (run.py's ``cloud`` and ``load``
scenarios, the driver in BENCH_DRIVER) takes down the all-in-one of the
other driver (both use the same ports), brings up this driver's
(``AIO_DRIVER``: the same cloud with only ``compute_driver`` switched), runs
one of its commands, takes the cloud down and appends what it measured to
BENCH_OUT:

- ``tour``: the CLI tour (tools/aio/tour.sh), each step from its API call
  until the checks see the new state: the seconds of every step that
  passed, of the whole tour, and the number of steps and of failed ones;
- ``load``: 50 servers and a storm of actions on them (tools/aio/load.py):
  its figures as it prints them.

Fails when this driver failed a step or an action; the in-tree driver's
failures are figures of their own (a flavor's inbound bandwidth, for one,
is no cap on its Open vSwitch ports).
"""

import os
import re
import subprocess
import sys

import benchmarks

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
AIO = os.path.join(TOP, 'tools', 'aio', 'aio.sh')
# BENCH_DRIVER -> AIO_DRIVER
AIO_DRIVERS = {'alt': 'altdriver', 'intree': 'libvirt'}
# a row of the tour's table, and its last line
STEP = re.compile(r'^(?P<name>.+?)\s+\| (?P<result>ok|FAILED)\s+\| '
                  r'(?P<seconds>\d+)$')
TOTAL = re.compile(r'^tour: (?P<seconds>\d+) s, ')
# a figure of load.py
FIGURE = re.compile(r'^LOAD (?P<name>.+?) \| (?P<value>[-\d.]+) \| '
                    r'(?P<unit>.+)$')


def steps(output):
    """([(step, result, seconds)], whole tour's seconds) of tour.sh's
    output; the seconds None when the tour did not finish.
    """
    found, total = [], None
    for line in output.splitlines():
        step, end = STEP.match(line), TOTAL.match(line)
        if step:
            found.append((step['name'], step['result'],
                          int(step['seconds'])))
        elif end:
            total = int(end['seconds'])
    return found, total


def aio(driver, *args):
    env = dict(os.environ, AIO_DRIVER=AIO_DRIVERS[driver])
    return subprocess.run(['bash', AIO] + list(args), env=env,
                          stdout=subprocess.PIPE, stderr=sys.stderr,
                          text=True)


def figures(output):
    """[(figure, value, unit)] of load.py's output."""
    return [(m['name'], float(m['value']), m['unit'])
            for m in map(FIGURE.match, output.splitlines()) if m]


def tour(output):
    """The tour's records, and the steps that failed."""
    found, total = steps(output)
    if total is None:
        sys.exit('the tour did not finish')
    failed = [name for name, result, _seconds in found if result != 'ok']
    rows = [('cloud', name, seconds, 's')
            for name, result, seconds in found if result == 'ok']
    rows += [('cloud', 'whole tour', total, 's'),
             ('cloud', 'tour steps', len(found), 'steps'),
             ('cloud', 'tour steps failed', len(failed), 'steps')]
    return rows, failed


def load(output):
    """The load test's records, and what failed."""
    found = dict((name, value) for name, value, _unit in figures(output))
    if 'leftovers after the delete' not in found:
        sys.exit('the load test did not finish')
    failed = ['%s: %d' % (name, found[name]) for name in (
        'boot failures', 'storm actions failed',
        'guests not back (status, ping)', 'leftovers after the delete')
        if found[name]]
    return [('load', name, value, unit)
            for name, value, unit in figures(output)], failed


def main():
    driver, command = os.environ['BENCH_DRIVER'], sys.argv[1]
    for other in set(AIO_DRIVERS) - {driver}:
        if aio(other, 'down').returncode:
            sys.exit('taking down the %s cloud failed' % other)
    if aio(driver, 'up').returncode:
        sys.exit('the %s cloud did not come up' % driver)
    # BENCH_LOAD_ARGS: the load test's options (--servers N ...)
    extra = os.environ.get('BENCH_LOAD_ARGS', '').split()
    run = aio(driver, command, *(extra if command == 'load' else []))
    print(run.stdout)
    if aio(driver, 'down').returncode:
        sys.exit('taking down the %s cloud failed' % driver)
    rows, failed = {'tour': tour, 'load': load}[command](run.stdout)
    benchmarks.append_records(os.environ['BENCH_OUT'], driver, rows)
    if failed and driver == 'alt':
        sys.exit('%s failed: %s' % (command, ', '.join(failed)))
    for name in failed:
        print('%s: failed: %s' % (driver, name))


if __name__ == '__main__':
    main()
