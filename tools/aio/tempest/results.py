"""Tables from tempest's subunit streams, for tools/aio/tempest.sh:

    results.py summary STREAM
        every test of one run, its result and duration, skip reasons and
        failures' first lines, then the totals
    results.py compare NAME=STREAM[+STREAM...]...
        one line per test, the result under each run's NAME (side by side:
        ours and the in-tree driver), then each run's totals; a run of
        several streams takes each test's result from the last stream that
        has it (a whole run, then the tests run again after a fix)

A class whose setUpClass skipped or failed counts once under that class's
name, as tempest reports it. Runs with tempest's environment (python-subunit
and testtools come with tempest).
"""

import collections
import sys

import subunit
import testtools

# what a test's status is shown as
SHOWN = {'success': 'passed', 'skip': 'skipped', 'fail': 'FAILED',
         'xfail': 'passed', 'uxsuccess': 'FAILED', 'exists': 'FAILED',
         'inprogress': 'FAILED'}
SETUP_PREFIX = 'setUpClass ('


def read(path):
    """{test id: (result, seconds, reason)} of one subunit v2 stream."""
    tests = collections.OrderedDict()

    def on_test(test):
        start, stop = (test['timestamps'] + [None, None])[:2]
        seconds = (stop - start).total_seconds() if start and stop else 0.0
        tests[short_id(test['id'])] = (SHOWN.get(test['status'], 'FAILED'),
                                       seconds, reason(test))

    with open(path, 'rb') as f:
        case = subunit.ByteStreamToStreamResult(f, non_subunit_name='stdout')
        result = testtools.StreamToDict(on_test)
        result.startTestRun()
        try:
            case.run(result)
        finally:
            result.stopTestRun()
    return tests


def short_id(test_id):
    """The test's name without tempest's attributes ([id-...,smoke])."""
    if test_id.startswith(SETUP_PREFIX):
        return test_id[len(SETUP_PREFIX):-1] + ' (setUpClass)'
    return test_id.split('[', 1)[0]


def reason(test):
    """A skip's reason or a failure's last line, one line."""
    details = test['details']
    if 'reason' in details:
        text = details['reason'].as_text()
    elif 'traceback' in details and test['status'] != 'success':
        lines = details['traceback'].as_text().strip().splitlines()
        text = lines[-1] if lines else ''
    else:
        return ''
    return ' '.join(text.split())[:160]


def totals(tests):
    count = collections.Counter(result for result, _, _ in tests.values())
    seconds = sum(s for _, s, _ in tests.values())
    return ('%d passed, %d skipped, %d failed, %d s of tests'
            % (count['passed'], count['skipped'], count['FAILED'], seconds))


def summary(args):
    tests = read(args[0])
    width = max([len(t) for t in tests] + [4])
    print('%-*s | %-7s | %5s | %s' % (width, 'test', 'result', 's', 'why'))
    print('-' * width + '-+---------+-------+-----')
    for test, (result, seconds, why) in sorted(tests.items()):
        print('%-*s | %-7s | %5.0f | %s' % (width, test, result, seconds,
                                            why if result != 'passed' else ''))
    print()
    print(totals(tests))
    return 1 if any(r == 'FAILED' for r, _, _ in tests.values()) else 0


def compare(args):
    runs = collections.OrderedDict()
    for arg in args:
        name, paths = arg.split('=', 1)
        runs[name] = collections.OrderedDict()
        for path in paths.split('+'):
            runs[name].update(read(path))
    names = sorted(set().union(*runs.values()))
    width = max([len(t) for t in names] + [4])
    head = ' | '.join('%-9s' % name for name in runs)
    print('%-*s | %s | why (where they differ)' % (width, 'test', head))
    print('-' * width + '-+-' + '-+-'.join('-' * 9 for _ in runs) + '-+-----')
    for test in names:
        results = [run.get(test, ('-', 0, '')) for run in runs.values()]
        shown = ' | '.join('%-9s' % r for r, _, _ in results)
        differ = len({r for r, _, _ in results}) > 1
        why = '; '.join(w for _, _, w in results if w) if differ else ''
        print('%-*s | %s | %s' % (width, test, shown, why))
    print()
    for name, tests in runs.items():
        print('%s: %s' % (name, totals(tests)))
    return 0


def main():
    commands = {'summary': summary, 'compare': compare}
    if len(sys.argv) < 3 or sys.argv[1] not in commands:
        sys.exit(__doc__)
    sys.exit(commands[sys.argv[1]](sys.argv[2:]))


if __name__ == '__main__':
    main()
