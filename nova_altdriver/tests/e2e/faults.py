"""Fault injection on real QEMU: the machinery of test_faults.py (what it
covers and proves: doc/source/reliability.rst).

An operation (spawn, rescue, ..., evacuate) runs while every step the
driver takes is counted: each call it makes to libvirt (the public methods
of ``guest.Guest`` and ``host.Host``), to qemu-img (``processutils.
execute``), to Glance (image download and upload), to os-vif, and each file
it writes, renames or removes itself, inside one of its entry points that
change guests. They are found by wrapping those functions with
``fixtures.MonkeyPatch``, so a step the driver gains is counted too; a step
repeated at once (polling a block job) counts once. A rehearsal without a
fault lists an operation's steps; then the operation runs again for each
step a fault can meet (plans()), and the fault meets it just before it
runs. After each: nova-compute restarts, the server is brought back with
nova's ordinary actions, and the guest's heartbeat and the host are
checked (Result, leftovers()).

Faults (FAULTS):

``kill``
    nova-compute killed: no ``finally``, no ``except`` runs. A compute
    manager thread cannot die alone, and one blocked for ever would hang the
    service's restart (its executors are joined) and hold nova's in-process
    instance locks. So the operation's API request runs with the driver's
    entry points replaced by recorders (nova does its own preparation and
    bookkeeping, the driver nothing), the instance is put back into the
    state nova had given it at each recorded call (vm and task state, host,
    node, system metadata, migration status, placement allocations), and
    the recorded calls are replayed against the real driver in a daemon
    thread of the test. At the step that thread blocks for ever: it dies
    with the process, as with SIGKILL. What the kernel does for a killed
    process is done for it: the file locks and oslo's in-process lock
    semaphores it holds are released. nova-compute then restarts with a new
    driver (``init_host`` runs the driver's recovery, ``_init_instance``
    nova's).
``libvirtd``
    The libvirtd of the host running the operation restarts; the operation
    goes on.
``qemu``
    The guest's QEMU gets SIGKILL (not applicable while none runs).
``enospc``
    The instances path is a loop-mounted ext4 filesystem; a filler file
    takes every free block, and goes once the operation has ended.
``glance``
    The upload of a snapshot or shelve image fails.
``peer``
    Two compute hosts share the instances path: the other one restarts.

Every injection is recorded (``ALTDRIVER_FAULT_RESULTS`` names a JSON lines
file to append to); ``python -m nova_altdriver.tests.e2e.faults table
RESULTS`` prints the table of doc/source/reliability-results.txt.
"""

import collections
import contextlib
import copy
import functools
import json
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
import time

import fixtures
import libvirt
from nova.compute import task_states
from nova import context as nova_context
from nova import exception
from nova import objects
from nova.tests.functional.api import client as api_client

from nova_altdriver import driver as altdriver
from nova_altdriver import guest as guest_mod
from nova_altdriver import host as host_mod
from nova_altdriver.tests.e2e import base
from nova_altdriver.tests.e2e import markers

# What the full matrix covers, in the table's order.
OPERATIONS = ('spawn', 'rescue', 'unrescue', 'live snapshot',
              'cold snapshot', 'shelve-offload', 'unshelve', 'hard reboot',
              'rebuild', 'evacuate')
FAULTS = collections.OrderedDict([
    ('kill', 'nova-compute killed'),
    ('libvirtd', 'libvirtd restarted'),
    ('qemu', 'QEMU killed'),
    ('enospc', 'filesystem full'),
    ('glance', 'Glance upload failed'),
    ('peer', 'other host restarted'),
])
# The step a failed Glance upload meets.
UPLOAD = 'glance upload'

# ComputeDriver methods that change guests: a step counts inside them only.
ENTRY_POINTS = ('spawn', 'destroy', 'cleanup', 'power_off', 'power_on',
                'reboot', 'rescue', 'unrescue', 'snapshot', 'plug_vifs',
                'unplug_vifs', 'pause', 'unpause', 'suspend', 'resume')
# Public Guest/Host methods that are not calls to libvirt.
_NOT_STEPS = ('start_events', 'close')
# Guest/Host methods that only ask libvirt (any other one counts as a
# change, so that a method the driver gains is never skipped).
QUERIES = frozenset((
    'find_guest', 'get_guest', 'list_guests', 'guest_states', 'xml',
    'is_active', 'power_state', 'info', 'disk_target', 'disks',
    'has_block_job', 'block_job_ready', 'has_saved_memory', 'hostname',
    'capabilities', 'lib_version', 'hypervisor_type', 'hypervisor_version',
    'node_info', 'memory_stats', 'cpu_stats', 'get_connection'))

# Any operation of the small test guest ends well within this on 2 cores.
OP_TIMEOUT = 150
UUID = re.compile(r'[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-'
                  r'[0-9a-f]{12}')

# In a step's name: what was called @ where from (innermost first).
STEP_MARK = '@'


class Abandoned(Exception):
    """Raised into an operation the test gave up waiting for."""


def _driver_frames(frame):
    """'module.function' of the driver's own frames, innermost first."""
    found = []
    while frame is not None and len(found) < 2:
        module = frame.f_globals.get('__name__', '')
        if _called_by_driver(frame):
            found.append('%s.%s' % (module.split('.', 1)[1],
                                    frame.f_code.co_name))
        frame = frame.f_back
    return found


def _called_by_driver(frame):
    module = frame.f_globals.get('__name__', '')
    return (module.startswith('nova_altdriver.') and
            not module.startswith('nova_altdriver.tests'))


def _short(path):
    """A file name as a step shows it: no UUIDs, image hashes or random
    suffixes.
    """
    name = os.path.basename(str(path))
    name = UUID.sub('<uuid>', name)
    name = re.sub(r'\b[0-9a-f]{40}\b', '<image>', name)
    return re.sub(r'(<uuid>-)\w+$', r'\1*', name)


def changes_something(step):
    """Whether a step changes state a killed process or a full disk can
    leave half done: not a query (killing before one is killing before the
    step after it), not an fsync (it only matters when the host itself
    crashes).
    """
    what = step.split(' ' + STEP_MARK)[0]
    if what.startswith('libvirt '):
        return what.rpartition('.')[2] not in QUERIES
    return what not in ('qemu-img info', 'qemu-img map', 'qemu-img check',
                        'os.fsync()')


def is_libvirt(step):
    return step.startswith('libvirt ')


def plans(steps, fault):
    """The step indexes fault meets in the full matrix, steps being a
    rehearsal's [(step, whether the guest's QEMU ran)]. A restarted
    libvirtd or a killed QEMU is noticed at the next call to libvirt: they
    meet those. A kill, a full disk or the other host's restart can leave
    any change half done: they meet every step that changes something.
    """
    for index, (step, qemu_ran) in enumerate(steps, 1):
        if fault == 'glance':
            due = step.startswith(UPLOAD)
        elif fault == 'libvirtd':
            due = is_libvirt(step)
        elif fault == 'qemu':
            due = is_libvirt(step) and qemu_ran
        else:
            due = changes_something(step)
        if due:
            yield index


class Plan(object):
    """Where a fault meets the operation: at its index-th step, or at the
    first step whose name contains match. act(step name) says whether the
    fault applied there (False: not applicable, e.g. no QEMU runs).
    """

    def __init__(self, fault, act, index=None, match=None):
        self.index = index
        self.match = match
        self.fault = fault
        self._act = act
        self.step = None
        self.applied = None
        self.done = threading.Event()

    def due(self, index, name):
        if self.step is not None:
            return False
        if self.index is not None:
            return index == self.index
        return self.match in name

    def fire(self, index, name):
        self.index = index
        self.step = name
        if self.fault == 'kill':
            self.applied = True
            self.done.set()
            self._act(name)  # never returns
        try:
            self.applied = self._act(name)
        except BaseException:
            self.applied = True
            raise
        finally:
            self.done.set()


class Steps(fixtures.Fixture):
    """Counts the driver's steps and makes one of them meet a fault."""

    def _setUp(self):
        self._local = threading.local()
        self._lock = threading.Lock()
        self.armed = False
        self.abandon = False
        self.plan = None
        self.trace = []
        self.observed = []
        self._observe = None
        self._last = None
        for cls in (guest_mod.Guest, host_mod.Host):
            for name, attr in sorted(vars(cls).items()):
                if (name.startswith('_') or name in _NOT_STEPS or
                        not callable(attr)):
                    continue
                self._patch('%s.%s.%s' % (cls.__module__, cls.__name__,
                                          name),
                            functools.partial(self._named, 'libvirt %s.%s' % (
                                cls.__name__, name)))
        self._patch('oslo_concurrency.processutils.execute', self._execute)
        self._patch('nova.virt.images.fetch_to_raw',
                    functools.partial(self._named, 'glance download'))
        self._patch('nova.virt.images.fetch',
                    functools.partial(self._named, 'glance download'))
        self._patch('nova.image.glance.API.update',
                    functools.partial(self._named, UPLOAD))
        for name in ('plug', 'unplug'):
            self._patch('os_vif.' + name,
                        functools.partial(self._named, 'os-vif ' + name))
        self._patch('nova.virt.configdrive.ConfigDriveBuilder.make_drive',
                    functools.partial(self._named, 'config drive'))
        for name in ('configurable_mkfs', 'unprivileged_mkfs'):
            self._patch('nova.privsep.fs.' + name,
                        functools.partial(self._named, 'mkfs'))
        # Files the driver itself writes, renames or removes.
        for target in ('os.rename', 'os.replace', 'os.unlink', 'os.remove',
                       'os.rmdir', 'os.mkdir', 'os.makedirs', 'os.fsync',
                       'os.truncate', 'shutil.rmtree', 'shutil.move',
                       'shutil.copyfile', 'tempfile.mkdtemp',
                       'tempfile.mkstemp'):
            self._patch(target, functools.partial(self._file_op, target))
        self._patch('builtins.open', self._open)
        self._patch('oslo_concurrency.lockutils.lock', self._tracked_lock)
        for name in ENTRY_POINTS:
            if name in vars(altdriver.AltDriver):
                self._patch('nova_altdriver.driver.AltDriver.' + name,
                            self._entry)

    def _patch(self, target, make):
        module, _, attr = target.rpartition('.')
        owner = _resolve(module)
        real = getattr(owner, attr)
        self.useFixture(fixtures.MonkeyPatch(target, make(real)))

    # -- wrappers ---------------------------------------------------------

    def _entry(self, real):
        @functools.wraps(real)
        def entry(*args, **kwargs):
            local = self._local
            local.entries = getattr(local, 'entries', 0) + 1
            try:
                return real(*args, **kwargs)
            finally:
                local.entries -= 1
        return entry

    def _step(self, real, describe, driver_only=False):
        @functools.wraps(real)
        def step(*args, **kwargs):
            local = self._local
            if (not self.armed or not getattr(local, 'entries', 0) or
                    getattr(local, 'busy', False)):
                return real(*args, **kwargs)
            caller = sys._getframe(1)
            if driver_only and not _called_by_driver(caller):
                return real(*args, **kwargs)
            where = _driver_frames(caller)
            name = describe(*args, **kwargs)
            if where:
                name += ' %s%s' % (STEP_MARK, '<'.join(where))
            self._reached(name)
            local.busy = True
            try:
                return real(*args, **kwargs)
            finally:
                local.busy = False
        return step

    def _named(self, label, real):
        return self._step(real, lambda *a, **k: label)

    def _execute(self, real):
        def describe(*cmd, **kwargs):
            words = [str(c) for c in cmd if '=' not in str(c) and
                     str(c) != 'env']
            return ' '.join(words[:2])
        return self._step(real, describe)

    def _file_op(self, label, real):
        def describe(*args, **kwargs):
            return '%s(%s)' % (label, _short(args[0]) if args and
                               isinstance(args[0], (str, bytes)) else '')
        step = self._step(real, describe, driver_only=True)
        if label != 'os.makedirs':
            return step

        @functools.wraps(real)
        def makedirs(name, *args, **kwargs):
            # (a directory that is there already: nothing happens)
            if os.path.isdir(name):
                return real(name, *args, **kwargs)
            return step(name, *args, **kwargs)
        return makedirs

    def _open(self, real):
        inner = self._step(real, lambda path, *a, **k: 'write %s' % _short(
            path), driver_only=True)

        @functools.wraps(real)
        def open_(file, mode='r', *args, **kwargs):
            if any(m in mode for m in 'wax+'):
                return inner(file, mode, *args, **kwargs)
            return real(file, mode, *args, **kwargs)
        return open_

    def _tracked_lock(self, real):
        local = self._local

        class Tracked(object):
            def __init__(self, cm):
                self.cm = cm

            def __enter__(self):
                value = self.cm.__enter__()
                local.__dict__.setdefault('locks', []).append(self)
                return value

            def __exit__(self, *exc):
                local.locks.remove(self)
                return self.cm.__exit__(*exc)

        @functools.wraps(real)
        def lock(*args, **kwargs):
            return Tracked(real(*args, **kwargs))
        return lock

    # -- counting -----------------------------------------------------------

    def _reached(self, name):
        with self._lock:
            if self.abandon:
                # Once: the operation's own error handling then runs.
                self.abandon = False
                raise Abandoned('the test gave up waiting at %s' % name)
            if name == self._last:
                return
            self._last = name
            self.trace.append(name)
            if self._observe:
                self.observed.append(self._observe())
            plan = self.plan
            if plan is None or not plan.due(len(self.trace), name):
                return
        plan.fire(len(self.trace), name)

    def release_locks(self):
        """What the kernel does for a killed process: its locks go."""
        for held in reversed(getattr(self._local, 'locks', [])):
            held.cm.__exit__(None, None, None)
        self._local.locks = []

    @contextlib.contextmanager
    def counting(self, plan=None, observe=None):
        """Counts the steps of one operation (and fires plan); observe()
        is noted at each step, in .observed.
        """
        with self._lock:
            self.trace = []
            self.observed = []
            self._observe = observe
            self._last = None
            self.plan = plan
        self.armed = True
        try:
            yield self.trace
        finally:
            self.armed = False
            self.plan = None


def _resolve(dotted):
    parts = dotted.split('.')
    obj = __import__(parts[0])
    for i, part in enumerate(parts[1:], 1):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            obj = __import__('.'.join(parts[:i + 1]), fromlist=['_'])
    return obj


# -- the host: QEMU processes, loop filesystem, a second libvirtd ----------

def qemu_pids(uuid):
    """PIDs of QEMU processes running the guest with this UUID."""
    pids = []
    for pid in os.listdir('/proc'):
        if not pid.isdigit():
            continue
        try:
            with open('/proc/%s/cmdline' % pid, 'rb') as f:
                args = f.read().split(b'\0')
        except OSError:
            continue
        if (args and b'qemu-system' in args[0] and
                uuid.encode() in args):
            pids.append(int(pid))
    return pids


def kill_qemu(uuid):
    """SIGKILL to the guest's QEMU; False when none runs."""
    pids = qemu_pids(uuid)
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while any(os.path.exists('/proc/%d' % p) for p in pids):
        if time.monotonic() > deadline:
            raise RuntimeError('QEMU %s survived SIGKILL' % pids)
        time.sleep(0.05)
    return bool(pids)


class LoopFilesystem(fixtures.Fixture):
    """A small ext4 filesystem on a loop device, mounted at .path."""

    def __init__(self, size_mib):
        super().__init__()
        self.size_mib = size_mib

    def _setUp(self):
        work = self.useFixture(fixtures.TempDir()).path
        image = os.path.join(work, 'fs.img')
        with open(image, 'wb') as f:
            f.truncate(self.size_mib << 20)
        subprocess.run(['mkfs.ext4', '-q', '-F', '-m', '0', image],
                       check=True, capture_output=True)
        self.path = os.path.join(work, 'mnt')
        os.mkdir(self.path)
        device = subprocess.run(['losetup', '--find', '--show', image],
                                check=True, capture_output=True,
                                text=True).stdout.strip()
        self.addCleanup(subprocess.run, ['losetup', '-d', device],
                        capture_output=True)
        subprocess.run(['mount', device, self.path], check=True)
        self.addCleanup(self._unmount)
        self.filler = os.path.join(self.path, 'filler')

    def _unmount(self):
        # A QEMU the test could not stop still holds files: detach lazily
        # rather than leave the mount to every later test.
        if subprocess.run(['umount', self.path],
                          capture_output=True).returncode:
            subprocess.run(['umount', '-l', self.path], capture_output=True)

    def fill(self):
        """Takes every free block (root's reserve is 0). The filler itself
        never fails: the operation is what must meet the full disk.
        """
        fd = os.open(self.filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
        try:
            st = os.statvfs(self.path)
            try:
                os.posix_fallocate(fd, os.fstat(fd).st_size, max(
                    st.f_bavail * st.f_frsize - (1 << 20), 4096))
            except OSError:
                pass
            chunk = b'\0' * 4096
            try:
                while os.write(fd, chunk):
                    pass
            except OSError:
                pass
        finally:
            os.close(fd)
        return True

    def drain(self):
        if os.path.exists(self.filler):
            os.unlink(self.filler)


class PrivateLibvirtd(fixtures.Fixture):
    """A libvirtd of the test's own (tools/second-libvirtd.sh): restarting
    it disturbs no other test, and no other test's guests are on it.
    """

    def _setUp(self):
        self.state = self.useFixture(fixtures.TempDir()).path
        script = os.path.join(os.path.dirname(base.TOOLS),
                              'second-libvirtd.sh')
        self.uri = subprocess.run([script, 'start', self.state], check=True,
                                  capture_output=True,
                                  text=True).stdout.strip()
        self.addCleanup(subprocess.run, [script, 'stop', self.state],
                        capture_output=True)

    def restart(self):
        """libvirtd only, in its mount namespace (virtlogd lives on)."""
        base.restart_libvirtd(self.state, self.uri)


# -- what the guest said --------------------------------------------------

class Console(object):
    """Everything a server's serial console printed, kept although its
    console.log is deleted (offload) or replaced.
    """

    def __init__(self, path):
        self.path = path
        self._done = b''
        self._current = b''
        self._inode = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._follow, daemon=True)
        self._thread.start()

    def _follow(self):
        while not self._stop.wait(0.2):
            self.poll()

    def poll(self):
        try:
            with open(self.path, 'rb') as f:
                inode = os.fstat(f.fileno()).st_ino
                data = f.read()
        except OSError:
            inode, data = None, None
        with self._lock:
            if data is None:
                # (a file that comes back may reuse the inode number)
                self._inode = None
                return
            if inode != self._inode or len(data) < len(self._current):
                self._done += self._current
                self._current = b''
                self._inode = inode
            self._current = data

    def text(self):
        self.poll()
        with self._lock:
            raw = self._done + self._current
        return raw.decode('utf-8', 'replace').replace('\r', '')

    def stop(self):
        self._stop.set()


def lost_writes(text):
    """Every boot that did not find what the boots before it announced."""
    announced = {}
    lost = []
    for boot in markers.boots(text):
        if boot.role != 'guest':
            continue
        before = announced.get(boot.marker, 0)
        if boot.found is not None and boot.found < before:
            lost.append('boot %d (%s) found heartbeat %d, %d had been '
                        'announced' % (boot.number, boot.marker, boot.found,
                                       before))
        announced[boot.marker] = max([before] + boot.beats +
                                     [boot.found or 0])
    return lost


def last_beat(text):
    beats = [b for boot in markers.boots(text) for b in boot.beats]
    return beats[-1] if beats else 0


def image_heartbeat(data, work):
    """The heartbeat counter stored in an image of the test guest."""
    source = os.path.join(work, 'image')
    raw = os.path.join(work, 'image.raw')
    with open(source, 'wb') as f:
        f.write(data)
    try:
        subprocess.run(['qemu-img', 'convert', '-O', 'raw', source, raw],
                       check=True, capture_output=True)
        values = [0]
        for slot in ('heartbeat.0', 'heartbeat.1'):
            out = subprocess.run(
                ['mtype', '-i', raw + '@@1M', '::/' + slot],
                capture_output=True, text=True,
                env=dict(os.environ, MTOOLS_SKIP_CHECK='1')).stdout
            if out.strip().isdigit():
                values.append(int(out))
        return max(values)
    finally:
        for path in (source, raw):
            if os.path.exists(path):
                os.unlink(path)


def held_locks(directory):
    """Files of directory on which a process holds a POSIX or flock lock."""
    if not os.path.isdir(directory):
        return []
    inodes = {}
    for name in os.listdir(directory):
        st = os.stat(os.path.join(directory, name))
        inodes[(os.major(st.st_dev), os.minor(st.st_dev), st.st_ino)] = name
    held = []
    with open('/proc/locks') as f:
        for line in f:
            fields = line.split()
            if fields[1] == '->':
                fields = fields[:1] + fields[2:]
            try:
                major, minor, inode = fields[5].split(':')
                key = (int(major, 16), int(minor, 16), int(inode))
            except (IndexError, ValueError):
                continue
            if key in inodes:
                held.append('%s (pid %s)' % (inodes[key], fields[4]))
    return held


# -- results ----------------------------------------------------------------

class Result(dict):
    """One injection: op, fault, step (index and name), applied, outcome
    of the operation, recovery actions, lost writes, leftovers, error.
    """

    @property
    def clean(self):
        return not (self['lost'] or self['leftovers'] or self.get('error'))

    @property
    def survived(self):
        return self.get('applied') is True and self.clean

    def summary(self):
        what = '%s / %s at step %s (%s)' % (
            self['op'], FAULTS.get(self['fault'], self['fault']),
            self['index'], self['step'])
        problems = ['lost: ' + x for x in self['lost']]
        problems += ['left: ' + x for x in self['leftovers']]
        if self.get('error'):
            problems.append('error: ' + self['error'])
        return '%s: %s; recovery: %s; operation: %s' % (
            what, '; '.join(problems) or 'ok',
            ', '.join(self['recovery']) or 'none', self['outcome'])


def record(result):
    path = os.environ.get('ALTDRIVER_FAULT_RESULTS')
    if path:
        with open(path, 'a') as f:
            f.write(json.dumps(result, sort_keys=True) + '\n')


def table(results):
    """faults injected / survived / data lost / not recovered / left
    behind, per operation and fault, with a note of the injections that did
    not happen.
    """
    counts = collections.OrderedDict()
    skipped = collections.Counter()
    for r in results:
        if r['fault'] == 'none':
            continue
        if r['applied'] is not True:
            skipped['not reached' if r['applied'] is None else
                    'not applicable'] += 1
            continue
        row = counts.setdefault((r['op'], r['fault']), [0, 0, 0, 0, 0])
        row[0] += 1
        row[1] += r['survived']
        row[2] += bool(r['lost'])
        row[3] += bool(r.get('error'))
        row[4] += bool(r['leftovers'])
    order = {op: i for i, op in enumerate(OPERATIONS)}
    kinds = list(FAULTS)
    head = ('operation', 'fault', 'injected', 'survived', 'data lost',
            'not recovered', 'left behind')
    rows = [(op, FAULTS[fault]) + tuple(str(n) for n in numbers)
            for (op, fault), numbers in sorted(
                counts.items(), key=lambda kv: (order.get(kv[0][0], 99),
                                                kinds.index(kv[0][1])))]
    total = [sum(int(r[i]) for r in rows) for i in range(2, 7)]
    rows.append(('all', '') + tuple(str(n) for n in total))
    widths = [max(len(str(x)) for x in column)
              for column in zip(head, *rows)]
    rule = ' '.join('=' * w for w in widths)

    def line(cells):
        return ' '.join(str(c).ljust(w) for c, w in
                        zip(cells, widths)).rstrip()
    text = [rule, line(head), rule] + [line(r) for r in rows[:-1]]
    text += [rule, line(rows[-1]), rule]
    if skipped:
        text += ['', 'Not injected: %s (the step was not reached: the '
                 'operation took another path; not applicable: no QEMU ran '
                 'at the step).' % ', '.join(
                     '%d %s' % (n, why) for why, n in sorted(
                         skipped.items()))]
    return '\n'.join(text) + '\n'


def main(argv):
    """table RESULTS: prints the table of a run's results, and to stderr
    every injection that did not come out clean.
    """
    if len(argv) != 2 or argv[0] != 'table':
        sys.exit('usage: python -m %s table RESULTS' % __spec__.name)
    with open(argv[1]) as f:
        results = [Result(json.loads(line)) for line in f if line.strip()]
    sys.stdout.write(table(results))
    for r in results:
        if not r.clean:
            sys.stderr.write('FAILED ' + r.summary() + '\n')


# -- the test case ------------------------------------------------------------

Call = collections.namedtuple('Call', 'method args kwargs instance state')
# (image_ref too: an unshelve's resource claim saves the shelve image as the
# server's, nova bug 1934094, and a killed unshelve leaves it so)
_STATE = ('vm_state', 'task_state', 'host', 'node', 'compute_id',
          'power_state', 'system_metadata', 'image_ref')


def _migrations(uuid):
    return objects.MigrationList.get_by_filters(
        nova_context.get_admin_context(), {'instance_uuid': uuid})


def _instance_of(args, kwargs):
    for value in list(args) + list(kwargs.values()):
        if isinstance(value, objects.Instance):
            return value
    return None


class Server(object):
    """A server of the test, what its console said and where it runs."""

    def __init__(self, body, console, port):
        self.id = body['id']
        self.console = console
        self.tap = 'tap' + port[:11]  # (nova's name for the port's tap)


class FaultTestCase(base.TestCase):

    LOOP_MIB = 8192

    def setUp(self):
        super().setUp()
        self.fs = self.useFixture(LoopFilesystem(self.LOOP_MIB))
        self.instances_path = os.path.join(self.fs.path, 'instances')
        os.mkdir(self.instances_path)
        self.flags(instances_path=self.instances_path)
        # Shelving offloads at once. The guest powers off 2 s after the
        # ACPI button: a clean shutdown still going after 20 s has failed.
        self.flags(shelved_offload_time=0)
        self.flags(shutdown_timeout=20)
        self.steps = self.useFixture(Steps())
        self.hosts = {}
        self.servers = {}
        self.created = set()  # every server this test asked for
        self.requests = queue.Queue()
        self.flavor = self.small_flavor()
        self.image_id = self.upload_guest_image()
        self._work = self.useFixture(fixtures.TempDir()).path
        self._images = 0
        self._dead = None
        self.subject = None  # the server the operation works on
        self.addCleanup(self._stop_consoles)

    # -- hosts ----------------------------------------------------------------

    def start_host(self, name):
        """A compute host on a libvirtd of its own. Started after the loop
        mount: the daemon's mount namespace is a copy, and its guests need
        to see the instances.
        """
        libvirtd = self.useFixture(PrivateLibvirtd())
        self.hosts[name] = {'uri': libvirtd.uri, 'libvirtd': libvirtd}
        self.hosts[name]['compute'] = self.start_compute(name,
                                                         uri=libvirtd.uri)
        return self.hosts[name]['compute']

    def restart_host(self, name):
        """nova-compute restarts with a new driver, as after a crash."""
        host = self.hosts[name]
        self.flags(connection_uri=host['uri'], hypervisor_hostname=name,
                   group='altdriver')
        self.flags(instances_path=self.instances_path)
        host['compute'] = self.restart_compute_service(
            host['compute'], keep_hypervisor_state=False)
        return host['compute']

    def driver(self, name):
        return self.driver_of(self.hosts[name]['compute'])

    def restart_libvirtd(self, name):
        self.hosts[name]['libvirtd'].restart()
        return True

    def host_of(self, server):
        return self.api.get_server(server.id)['OS-EXT-SRV-ATTR:host']

    # -- servers --------------------------------------------------------------

    def fresh_image(self, source='disk.qcow2', marker=None):
        """A new Glance image of the test guest (not in any cache yet)."""
        self._images += 1
        path = os.path.join(self._work, 'image-%d.qcow2' % self._images)
        if marker:
            subprocess.run([os.path.join(base.TOOLS, 'customize.sh'),
                            os.path.join(base.GUEST_DIR, source), path,
                            '--marker', marker],
                           check=True, capture_output=True)
        else:
            shutil.copyfile(os.path.join(base.GUEST_DIR, source), path)
        try:
            return self.upload_image(path, 'qcow2')
        finally:
            os.unlink(path)

    def create_server(self, image_id, host):
        """Asks for a server on host (a tap port, a config drive) and
        follows its console from then on.
        """
        port = self.neutron_port('tap')
        body = self._build_server(image_uuid=image_id,
                                  flavor_id=self.flavor,
                                  networks=[{'port': port['id']}])
        body.update(config_drive=True, host=host)
        body = self.api.post_server({'server': body})
        server = Server(body, Console(os.path.join(
            self.instances_path, body['id'], 'console.log')), port['id'])
        self.servers[server.id] = server
        self.created.add(server.id)
        self.subject = server
        for name in self.hosts:
            self.remove_domain_at_cleanup(server.id,
                                          uri=self.hosts[name]['uri'])
        return server

    def boot_server(self, host='compute1'):
        """A server of the test guest, running and counting."""
        server = self.create_server(self.image_id, host)
        self._wait_for_state_change({'id': server.id}, 'ACTIVE')
        if not self.wait_for_beats(server):
            self.fail('%s does not count:\n%s' % (
                server.id, server.console.text()[-2000:]))
        return server

    def wait_for_beats(self, server, count=2, timeout=120):
        """Waits until the guest announced count more heartbeats."""
        def announced():
            return sum(len(b.beats)
                       for b in markers.boots(server.console.text()))
        start = announced()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.serve_requests()
            if announced() >= start + count:
                return True
            time.sleep(0.5)
        return False

    def delete_server(self, server):
        self.api.delete_server(server.id)
        deadline = time.monotonic() + OP_TIMEOUT
        while time.monotonic() < deadline:
            try:
                self.api.get_server(server.id)
            except api_client.OpenStackApiNotFoundException:
                break
            time.sleep(0.5)
        server.console.stop()
        del self.servers[server.id]

    def _stop_consoles(self):
        for server in self.servers.values():
            server.console.stop()

    # -- waiting, serving what operation threads ask for ---------------------

    def serve_requests(self):
        """Runs what an operation thread asked the test's thread to do
        (restarting a compute service belongs to the test's thread).
        """
        while True:
            try:
                func, answer = self.requests.get_nowait()
            except queue.Empty:
                return
            try:
                answer.put((func(), None))
            except Exception as e:
                answer.put((None, e))

    def on_test_thread(self, func):
        if threading.current_thread() is threading.main_thread():
            return func()
        answer = queue.Queue()
        self.requests.put((func, answer))
        value, error = answer.get()
        if error is not None:
            raise error
        return value

    def wait_done(self, server, timeout=OP_TIMEOUT):
        """Waits until no task runs on the server; its API view, or None
        when the operation hung.
        """
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.serve_requests()
            body = self.api.get_server(server.id)
            # nova reverts the task state before its error handling ends:
            # the action's events say when the compute manager is done.
            if (body['OS-EXT-STS:task_state'] is None and
                    body['status'] != 'BUILD' and
                    not self._events_running(server)):
                return body
            time.sleep(0.5)
        return None

    def _events_running(self, server):
        actions = self.admin_api.get_instance_actions(server.id)
        if not actions:
            return False
        latest = max(actions, key=lambda a: a['start_time'])
        events = self.admin_api.get_instance_action_details(
            server.id, latest['request_id'])['events']
        return any(e['finish_time'] is None for e in events)

    # -- the operations -------------------------------------------------------

    def operation(self, op):
        """(prepare, act, host) of op: prepare(server) makes the server
        ready for it; act(server) sends the API request (and returns the
        server it creates, if any); host(server) names the compute host
        that runs it.
        """
        here = self.host_of
        return {
            'spawn': (self._prepare_spawn, self._spawn, self._pinned),
            'rescue': (self._prepare_rescue, self._rescue, here),
            'unrescue': (self._prepare_unrescue, self._action(
                {'unrescue': None}), here),
            'live snapshot': (None, self._snapshot, here),
            'cold snapshot': (self._stop, self._snapshot, here),
            'shelve-offload': (None, self._action({'shelve': None}), here),
            'unshelve': (self._shelve, self._unshelve, self._pinned),
            'hard reboot': (None, self._action(
                {'reboot': {'type': 'HARD'}}), here),
            'rebuild': (self._prepare_rebuild, self._rebuild, here),
            'evacuate': (self._host_dies, self._evacuate,
                         lambda s: self._other(self._dead)),
        }[op]

    def _pinned(self, server):
        return self._target

    def _action(self, body):
        def act(server):
            self.api.post_server_action(server.id, copy.deepcopy(body))
        return act

    def _prepare_spawn(self, server):
        self._target = 'compute1'
        self._spawn_image = self.fresh_image()

    def _spawn(self, server):
        return self.create_server(self._spawn_image, self._target)

    def _prepare_rescue(self, server):
        self._rescue_image = self.fresh_image('rescue.qcow2')

    def _rescue(self, server):
        self.api.post_server_action(server.id, {'rescue': {
            'rescue_image_ref': self._rescue_image,
            'adminPass': 'rescue-pass'}})

    def _prepare_unrescue(self, server):
        self._prepare_rescue(server)
        self._rescue(server)
        self._wait_for_state_change({'id': server.id}, 'RESCUE')
        self.wait_for_guest({'id': server.id}, 'ALTDRIVER-RESCUE-WROTE')

    def _snapshot(self, server):
        self._snapshot_beat = last_beat(server.console.text())
        self._snapshot_id = self.api.post_server_action(
            server.id, {'createImage': {'name': 'snap'}})['image_id']

    def _stop(self, server):
        self._stop_server({'id': server.id})

    def _shelve(self, server):
        self._target = self.host_of(server)
        self._shelve_server({'id': server.id})

    def _unshelve(self, server):
        self.api.post_server_action(server.id, {'unshelve': {
            'host': self._target}})

    def _prepare_rebuild(self, server):
        self._images += 1
        self._rebuild_image = self.fresh_image(
            marker='rebuild-%d' % self._images)

    def _rebuild(self, server):
        self.api.post_server_action(server.id, {'rebuild': {
            'imageRef': self._rebuild_image}})

    def _other(self, name):
        return next(h for h in sorted(self.hosts) if h != name)

    def _host_dies(self, server):
        """The server's host goes down with its guest (shared disk kept)."""
        self._dead = self.host_of(server)
        self.hosts[self._dead]['compute'].stop()
        self.force_down(self._dead)
        kill_qemu(server.id)

    def _evacuate(self, server):
        self.api.post_server_action(server.id, {'evacuate': {}})

    def host_returns(self):
        """The dead host comes back (and removes its stale guest)."""
        name, self._dead = self._dead, None
        self.restart_host(name)
        service = self.admin_api.get_services(
            host=name, binary='nova-compute')[0]
        self.admin_api.api_put('/os-services/%s' % service['id'],
                               {'forced_down': False})
        return name

    # -- recovery ------------------------------------------------------------

    def bring_back(self, server, actions):
        """nova's ordinary actions until the server runs and counts again;
        appends each one taken to actions. Returns the server (a new one
        when a build failed: deleted and booted again), or None when it does
        not come back.
        """
        taken = collections.Counter()  # (twice without success: give up)
        while True:
            body = self.api.get_server(server.id)
            status = body['status']
            if body['OS-EXT-STS:task_state'] is not None:
                act = ('reset-state', {'os-resetState': {'state': 'active'}})
            elif status == 'ERROR' and not body['OS-EXT-SRV-ATTR:host']:
                act = ('delete, boot again', None)
            else:
                act = {
                    'ERROR': ('hard reboot', {'reboot': {'type': 'HARD'}}),
                    'SHUTOFF': ('start', {'os-start': None}),
                    'RESCUE': ('unrescue', {'unrescue': None}),
                    'SHELVED': ('unshelve', {'unshelve': None}),
                    'SHELVED_OFFLOADED': ('unshelve', {'unshelve': None}),
                    'PAUSED': ('unpause', {'unpause': None}),
                    'SUSPENDED': ('resume', {'resume': None}),
                }.get(status)
            if act is None and status == 'ACTIVE':
                # (a guest just started needs its boot first)
                if self.running(server) and self.wait_for_beats(
                        server, timeout=60 if actions[-1:] != [
                            'restart nova-compute'] else 20):
                    return server
                act = ('hard reboot', {'reboot': {'type': 'HARD'}})
            taken[act and act[0]] += 1
            if act is None or taken[act[0]] > 2:
                return None
            actions.append(act[0])
            if act[1] is None:
                image = body['image']['id']
                self.delete_server(server)
                server = self.create_server(image, 'compute1')
            else:
                try:
                    self.api.post_server_action(server.id, act[1])
                except api_client.OpenStackApiException as e:
                    # (nova's power state sync may have begun a stop)
                    actions.append('refused: %s' % e.response.status_code)
            if self.wait_done(server) is None:
                actions.append('%s hung' % act[0])
                return None

    def running(self, server):
        name = self.host_of(server)
        if name not in self.hosts:
            return False
        conn = libvirt.open(self.hosts[name]['uri'])
        try:
            return conn.lookupByUUIDString(server.id).isActive()
        except libvirt.libvirtError:
            return False
        finally:
            conn.close()

    # -- what must not be left behind -------------------------------------

    def leftovers(self):
        left = []
        expected_dirs = set()
        for server in self.servers.values():
            body = self.api.get_server(server.id)
            status = body['status']
            path = os.path.join(self.instances_path, server.id)
            if status == 'SHELVED_OFFLOADED':
                if os.path.exists(path):
                    left.append('%s: instance directory of an offloaded '
                                'server' % server.id)
                continue
            expected_dirs.add(server.id)
            allowed = {'disk', 'disk.info', 'console.log', 'disk.config'}
            if status == 'RESCUE':
                allowed |= {'disk.rescue', 'disk.config.rescue',
                            'unrescue.xml'}
            for name in sorted(os.listdir(path) if os.path.isdir(path)
                               else []):
                if name not in allowed:
                    left.append('%s/%s' % (server.id, name))
        for name in sorted(os.listdir(self.instances_path)):
            if name in ('_base', 'locks', 'snapshots') or \
                    name in expected_dirs:
                continue
            left.append(name)
        snapshots = os.path.join(self.instances_path, 'snapshots')
        if os.path.isdir(snapshots):
            left += ['snapshots/' + n for n in sorted(os.listdir(snapshots))]
        base_dir = self.base_dir()
        if os.path.isdir(base_dir):
            left += ['_base/' + n for n in sorted(os.listdir(base_dir))
                     if n.endswith(('.tmp', '.part'))]
        left += ['lock held: ' + n for n in held_locks(
            os.path.join(self.instances_path, 'locks'))]
        left += self._libvirt_leftovers()
        return left

    def _libvirt_leftovers(self):
        left = []
        where = {}
        for server in self.servers.values():
            body = self.api.get_server(server.id)
            where[server.id] = (body['OS-EXT-SRV-ATTR:host'], body['status'])
        running = set()
        for name, host in sorted(self.hosts.items()):
            conn = libvirt.open(host['uri'])
            try:
                for dom in conn.listAllDomains():
                    uuid = dom.UUIDString()
                    if uuid not in self.created:
                        continue  # (not this test's)
                    owner = where.get(uuid, (None, None))
                    if owner[0] != name or owner[1] == 'SHELVED_OFFLOADED':
                        left.append('domain %s on %s' % (uuid, name))
                        continue
                    for flags in (0, libvirt.VIR_DOMAIN_XML_INACTIVE):
                        xml = dom.XMLDesc(flags)
                        for bad in ('snapshots/', 'writes-meanwhile',
                                    'disk.rescue', '.tmp'):
                            if bad in xml and owner[1] != 'RESCUE':
                                left.append('%s definition on %s names '
                                            '%s' % (uuid, name, bad))
                    if not dom.isActive():
                        continue
                    running.add(uuid)
                    for target in re.findall(r"<target dev='(\w+)'",
                                             dom.XMLDesc(0)):
                        if target.startswith(('vd', 'sd', 'hd')):
                            try:
                                job = dom.blockJobInfo(target, 0)
                            except libvirt.libvirtError:
                                continue
                            if job:
                                left.append('block job on %s %s: %s' % (
                                    uuid, target, job))
            finally:
                conn.close()
        for server in self.servers.values():
            pids = qemu_pids(server.id)
            if len(pids) != (server.id in running):
                left.append('%d QEMU processes of %s (running: %s)' % (
                    len(pids), server.id, server.id in running))
            tap = os.path.exists('/sys/class/net/' + server.tap)
            if tap != (server.id in running):
                left.append('tap %s %s' % (
                    server.tap, 'without a running guest' if tap else
                    'missing'))
        return left

    def purge(self):
        """Test housekeeping after a failed injection: what a careful
        operator would delete, so that the next injection starts clean.
        """
        taps = [s.tap for s in self.servers.values()]
        for server in list(self.servers.values()):
            try:
                self.api.post_server_action(
                    server.id, {'os-resetState': {'state': 'error'}})
                self.delete_server(server)
            except Exception:
                server.console.stop()
                self.servers.pop(server.id, None)
        for name, host in self.hosts.items():
            conn = libvirt.open(host['uri'])
            try:
                for dom in conn.listAllDomains():
                    if dom.UUIDString() not in self.created:
                        continue
                    if dom.isActive():
                        dom.destroy()
                    dom.undefineFlags(
                        libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE |
                        libvirt.VIR_DOMAIN_UNDEFINE_NVRAM)
            finally:
                conn.close()
        for name in os.listdir(self.instances_path):
            path = os.path.join(self.instances_path, name)
            if name == '_base':
                for n in os.listdir(path):
                    if n.endswith(('.tmp', '.part')):
                        os.unlink(os.path.join(path, n))
            elif name != 'locks':
                shutil.rmtree(path, ignore_errors=True)
        for tap in taps:
            if os.path.exists('/sys/class/net/' + tap):
                subprocess.run(['ip', 'link', 'del', tap], capture_output=True)

    # -- one injection ------------------------------------------------------

    def rehearse(self, op, server):
        """op on server without a fault: ([(step, whether the guest's QEMU
        ran)], the server afterwards, what was wrong afterwards).
        """
        prepare, act, where = self.operation(op)
        if prepare:
            prepare(server)
        self.subject = server
        with self.steps.counting(observe=lambda: bool(
                self.subject and qemu_pids(self.subject.id))) as trace:
            server = act(server) or server
            self.wait_done(server)
        steps = list(zip(trace, self.steps.observed))
        problems = lost_writes(server.console.text())
        back = self.settle(op, server, [])
        if back is None:
            problems.append('not back to ACTIVE after a plain %s' % op)
        return steps, back or server, problems + self.leftovers()

    def session(self, cases, server=None, host='compute1'):
        """Runs cases [(op, fault, step index or a name it contains)] one
        after the other on one server, a new one after any that went
        wrong. Returns the Results.
        """
        results = []
        for op, fault, step in cases:
            if server is None and op != 'spawn':
                server = self.boot_server(host)
            where = {'index' if isinstance(step, int) else 'match': step}
            result, after = self.inject(op, fault, server, **where)
            results.append(result)
            if not result.clean:
                self.purge()
                server = None
                continue
            if server and after is not server and server.id in self.servers:
                self.delete_server(server)  # (spawn: one guest at a time)
            server = after
        return results

    def matrix(self, op, kinds, host='compute1'):
        """Every fault at every step of op it can meet (see plans())."""
        server = None if op == 'spawn' else self.boot_server(host)
        steps, server, problems = self.rehearse(op, server)
        results = [Result(op=op, fault='none', index=None, step=None,
                          applied=None, outcome='rehearsal', recovery=[],
                          lost=[], leftovers=problems, error=None)]
        if problems:
            self.purge()
            server = None
        cases = [(op, fault, index) for fault in kinds
                 for index in plans(steps, fault)]
        return results + self.session(cases, server, host)

    def settle(self, op, server, actions):
        """Back to the base state (ACTIVE, counting) after op: the server,
        or None.
        """
        if op == 'evacuate' and self._dead:
            if self.api.get_server(server.id)['status'] == 'SHUTOFF':
                actions.append('start')
                self.api.post_server_action(server.id, {'os-start': None})
                self.wait_done(server)
            actions.append('%s returns' % self.host_returns())
        return self.bring_back(server, actions)

    def inject(self, op, fault, server, index=None, match=None):
        """Runs op with fault at its index-th step (or the first step named
        like match); returns (Result, the server to go on with).
        """
        started = time.monotonic()
        prepare, act, where = self.operation(op)
        if prepare:
            prepare(server)
        self.subject = server
        host = where(server)
        plan = Plan(fault, self._fault_action(fault, host),
                    index=index, match=match)
        result = Result(op=op, fault=fault, index=index, step=None,
                        applied=None, outcome='', recovery=[], lost=[],
                        leftovers=[], error=None)
        outcome = None
        try:
            if fault == 'kill':
                server, outcome = self._killed(act, server, host, plan)
            else:
                server, outcome = self._faulted(act, server, plan)
        except Exception as e:
            result['error'] = 'injection: %s' % e
        finally:
            if fault == 'enospc':
                self.fs.drain()
        result.update(step=plan.step or '(not reached)', index=plan.index,
                      applied=plan.applied)
        try:
            body = self.api.get_server(server.id)
            result['outcome'] = outcome or ('%s %s' % (body['status'], (
                body.get('fault') or {}).get('message', ''))).strip()
            self.restart_host(host if op == 'evacuate' else
                              self.host_of(server) or host)
            result['recovery'].append('restart nova-compute')
            back = self.settle(op, server, result['recovery'])
            if back is None:
                result['error'] = 'not brought back (%s)' % (
                    self.api.get_server(server.id)['status'])
        except Exception as e:
            back = None
            result['error'] = 'recovery: %s' % e
        try:
            result['lost'] = lost_writes(server.console.text())
            if back not in (None, server):
                result['lost'] += lost_writes(back.console.text())
                server = back
            if op.endswith('snapshot') and plan.applied:
                result['lost'] += self._snapshot_losses()
            result['leftovers'] = self.leftovers()
        except Exception as e:
            result['error'] = 'checks: %s' % e
        if not result.clean:
            result['console'] = server.console.text().splitlines()[-12:]
        result['survived'] = result.survived
        result['seconds'] = round(time.monotonic() - started)
        record(result)
        return result, server

    def _snapshot_losses(self):
        try:
            image = self.glance.show(None, self._snapshot_id)
        except exception.ImageNotFound:
            return []  # (nova deleted the image of a failed snapshot)
        data = self.image_data.get(self._snapshot_id)
        if image['status'] != 'active' or data is None:
            return []
        found = image_heartbeat(data, self._work)
        if found < self._snapshot_beat:
            return ['the snapshot image holds heartbeat %d, %d had been '
                    'announced before it was requested' % (
                        found, self._snapshot_beat)]
        return []

    def _fault_action(self, fault, host):
        def kill(step):
            self.steps.release_locks()
            threading.Event().wait()

        def glance(step):
            if not step.startswith(UPLOAD):
                return False
            raise exception.CouldNotUploadImage(image_id='(injected)')

        def peer(step):
            self.on_test_thread(lambda: self.restart_host(self._other(host)))
            return True

        return {
            'kill': kill,
            'libvirtd': lambda step: self.restart_libvirtd(host),
            'qemu': lambda step: kill_qemu(self.subject.id),
            'enospc': lambda step: self.fs.fill(),
            'glance': glance,
            'peer': peer,
        }[fault]

    def _faulted(self, act, server, plan):
        """op through the API, the fault met in the compute manager's
        thread: (server, None).
        """
        with self.steps.counting(plan):
            server = act(server) or server
            if self.wait_done(server) is None:
                # An operation that never ends would hang the service's
                # restart: unwind it at its next step.
                self.steps.abandon = True
                body = self.wait_done(server)
                return server, 'hung (%s)' % (
                    body['status'] if body else 'still hung')
        return server, None

    def _killed(self, act, server, host, plan):
        """Captures the driver calls the manager makes for act, then
        replays them on the real driver in a thread that dies at the
        planned step: (server, what became of the replay).
        """
        driver = self.driver(host)
        calls = []

        def recorder(method):
            def record_call(*args, **kwargs):
                instance = _instance_of(args, kwargs)
                state = {k: copy.deepcopy(getattr(instance, k))
                         for k in _STATE}
                state['migrations'] = {
                    m.id: m.status for m in _migrations(instance.uuid)}
                calls.append(Call(method, args, kwargs, instance, state))
                if method == 'snapshot':
                    # what the manager waits for from any driver
                    update = args[3] if len(args) > 3 else kwargs[
                        'update_task_state']
                    update(task_state=task_states.IMAGE_PENDING_UPLOAD)
                    update(task_state=task_states.IMAGE_UPLOADING,
                           expected_state=task_states.IMAGE_PENDING_UPLOAD)
            return record_call

        before = self._allocations(server)
        with contextlib.ExitStack() as stack:
            for name in ENTRY_POINTS:
                stack.enter_context(fixtures.MockPatchObject(
                    driver, name, new=recorder(name)))
            # The shelve image goes once unshelve succeeded: not yet.
            stack.enter_context(fixtures.MockPatch(
                'nova.compute.manager.ComputeManager.'
                '_delete_snapshot_of_shelved_instance'))
            server = act(server) or server
            if self.wait_done(server) is None:
                raise RuntimeError('the operation did not end with the '
                                   "driver's entry points recorded")
        if before and not self._allocations(server):
            # shelve-offload gave them up after the (recorded) destroy
            self.placement.put('/allocations/%s' % server.id, {
                'allocations': {rp: {'resources': a['resources']}
                                for rp, a in before['allocations'].items()},
                'project_id': before['project_id'],
                'user_id': before['user_id'],
                'consumer_generation': None}, version='1.28')
        replayed = {}

        def replay():
            try:
                for call in calls:
                    instance = call.instance
                    for key in _STATE:
                        if getattr(instance, key) != call.state[key]:
                            setattr(instance, key, call.state[key])
                    instance.save()
                    for migration in _migrations(instance.uuid):
                        status = call.state['migrations'].get(migration.id)
                        if status and status != migration.status:
                            migration.status = status
                            migration.save()
                    getattr(type(driver), call.method)(
                        driver, *call.args, **call.kwargs)
                replayed['outcome'] = 'completed'
            except Exception as e:
                replayed['outcome'] = 'failed: %s' % e

        with self.steps.counting(plan):
            thread = threading.Thread(target=replay, daemon=True)
            thread.start()
            deadline = time.monotonic() + OP_TIMEOUT
            while not plan.done.is_set() and thread.is_alive():
                self.serve_requests()
                if time.monotonic() > deadline:
                    return server, 'the replayed calls hung'
                time.sleep(0.2)
        return server, replayed.get('outcome', 'killed')

    def _allocations(self, server):
        if server is None:
            return None
        body = self.placement.get('/allocations/%s' % server.id,
                                  version='1.28').body
        return body if body['allocations'] else None


if __name__ == '__main__':
    main(sys.argv[1:])
