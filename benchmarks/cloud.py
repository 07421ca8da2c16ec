"""The cloud's view: the all-in-one's CLI tour (tools/aio/tour.sh) with one
driver, each step from its API call until the checks see the new state.

``python -m benchmarks.cloud`` (run.py's ``cloud`` scenario, the driver in
BENCH_DRIVER) takes down the all-in-one of the other driver (both use the
same ports), brings up this driver's (``AIO_DRIVER``: the same cloud with
only ``compute_driver`` switched), runs the tour, takes the cloud down and
appends the seconds of every step that passed, of the whole tour, and the
number of steps and of failed ones to BENCH_OUT. Fails when a step failed
with this driver; the in-tree driver's failed steps are a figure of their
own (a flavor's inbound bandwidth, for one, is no cap on its Open vSwitch
ports).
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


def main():
    driver = os.environ['BENCH_DRIVER']
    for other in set(AIO_DRIVERS) - {driver}:
        if aio(other, 'down').returncode:
            sys.exit('taking down the %s cloud failed' % other)
    if aio(driver, 'up').returncode:
        sys.exit('the %s cloud did not come up' % driver)
    tour = aio(driver, 'tour')
    print(tour.stdout)
    if aio(driver, 'down').returncode:
        sys.exit('taking down the %s cloud failed' % driver)
    found, total = steps(tour.stdout)
    if total is None:
        sys.exit('the tour did not finish')
    failed = [name for name, result, _seconds in found if result != 'ok']
    rows = [('cloud', name, seconds, 's')
            for name, result, seconds in found if result == 'ok']
    rows += [('cloud', 'whole tour', total, 's'),
             ('cloud', 'tour steps', len(found), 'steps'),
             ('cloud', 'tour steps failed', len(failed), 'steps')]
    benchmarks.append_records(os.environ['BENCH_OUT'], driver, rows)
    if failed and driver == 'alt':
        sys.exit('tour steps failed: %s' % ', '.join(failed))
    for name in failed:
        print('%s: step failed: %s' % (driver, name))


if __name__ == '__main__':
    main()
