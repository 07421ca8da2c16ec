"""Driver time per server operation, through nova's own harness.

One process runs one driver (BENCH_DRIVER: ``alt`` or ``intree``) on the
libvirtd at BENCH_URI: nova's API, conductor, scheduler and compute manager
drive it exactly as in the end-to-end tests, and every call nova makes into
the driver is timed at the driver's boundary (nested calls, like a destroy
inside a hard reboot, count for the outer call). Results are JSON lines
appended to BENCH_OUT. benchmarks/run.py runs this for both drivers, in
turn, and compares them.

Scenarios (BENCH_SCENARIO): ``ops`` (every operation once on a small
guest), ``bigdisk`` (1 GiB of real data: warm spawn against the image size,
live snapshot throughput against a bare ``qemu-img convert``, how long the
guest is paused), ``concurrency`` (8 spawns, then 8 snapshots, at once while
another guest is paused and unpaused), ``volumes`` (RBD volumes on the
one-node Ceph of tools/ceph: boot from volume, attach, extend, detach, and
the memory of the Ceph daemons). Run as ``python -m benchmarks.ops
SCENARIO``.
"""

import base64
import faulthandler
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import uuid

import fixtures
import libvirt
import nova.conf
from nova.tests import fixtures as nova_fixtures

import benchmarks
from nova_altdriver import qcow2stream
from nova_altdriver.tests import builders
from nova_altdriver.tests.e2e import base
from nova_altdriver.tests.e2e import test_volumes

CONF = nova.conf.CONF
TIMED = ('spawn', 'destroy', 'power_off', 'power_on', 'reboot', 'pause',
         'unpause', 'suspend', 'resume', 'rescue', 'unrescue', 'snapshot',
         'attach_volume', 'extend_volume', 'detach_volume')
BIG_IMAGE = os.environ.get('BENCH_BIG_IMAGE')
# The libvirt secret of Cinder's cephx user as the upstream guide has the
# operator define it for the in-tree driver.
OPERATOR_SECRET = """<secret ephemeral='no' private='no'>
  <uuid>%s</uuid>
  <usage type='ceph'><name>client.cinder secret</name></usage>
</secret>"""


class Bench(test_volumes.CephVolumes, base.TestCase):

    STATE_WAIT_RETRIES = 600  # 8 TCG guests booting at once on 2 cores

    def setUp(self):
        self.driver = os.environ['BENCH_DRIVER']
        self.compute_driver = benchmarks.COMPUTE_DRIVERS[self.driver]
        # The harness guards unit tests against touching the host; here the
        # real host is what is measured, and privileged calls run in this
        # (root) process. The in-tree driver's libvirt event threads run,
        # as in nova-compute; they loop forever in nova's thread pools, so
        # the clean-up must not wait for those (the process ends right
        # after the scenario).
        for name, replacement in (
                ('GenericPoisonFixture', fixtures.Fixture),
                ('SysFsPoisonFixture', fixtures.Fixture),
                ('PrivsepNoHelperFixture', nova_fixtures.PrivsepFixture),
                ('PoisonFunctions', fixtures.Fixture)):
            self.useFixture(fixtures.MonkeyPatch(
                'nova.tests.fixtures.' + name, replacement))
        self.useFixture(fixtures.MonkeyPatch(
            'nova.tests.fixtures.IsolatedExecutorFixture._cleanup_executors',
            lambda self: None))
        super().setUp()
        # stop = hard power off: the driver's time, not the guest's
        self.flags(shutdown_timeout=0, shelved_offload_time=-1)
        # 9 one-vCPU guests on a 2-CPU host (concurrency)
        self.flags(cpu_allocation_ratio=16.0)
        self.calls = []
        self.phase = None
        self._depth = threading.local()
        if self.driver == 'intree':
            # The in-tree driver names its node as libvirt names the machine,
            # the same for every libvirtd of this one: here each is named
            # like its host (as this driver's are by hypervisor_hostname).
            self.intree_nodenames = {}  # libvirt URI -> node name
            self.useFixture(fixtures.MonkeyPatch(
                'nova.virt.libvirt.host.Host.get_hostname',
                lambda libvirt_host: self.intree_nodenames[libvirt_host._uri]))
        for compute in self.start_benchmark_hosts():
            self._time_driver(self.driver_of(compute))
        self.flavor = self.small_flavor()
        self.image = self.upload_guest_image()

    def start_benchmark_hosts(self):
        """The compute services of the scenario, their driver calls timed."""
        self.compute = self.start_compute('bench')
        return [self.compute]

    def start_compute(self, host='compute1', uri=base.URI, nodename=None,
                      instances_path=None, migration_addr=None):
        if self.driver == 'alt':
            return super().start_compute(host, uri, nodename, instances_path,
                                         migration_addr)
        # the in-tree driver reads it at each call: one for the process
        if instances_path not in (None, self.instances_path):
            raise ValueError('in-tree hosts share one instances path here')
        self.flags(virt_type='qemu', connection_uri=uri,
                   live_migration_scheme='tcp', group='libvirt')
        self.intree_nodenames[uri] = nodename or host
        with self._node_identity(host):
            self.computes[host] = self.start_service('compute', host=host)
        self._own_host_options(self.driver_of(self.computes[host]), host,
                               migration_addr)
        return self.computes[host]

    def _own_host_options(self, driver, host, migration_addr):
        """[DEFAULT] host and [libvirt] live_migration_inbound_addr as the
        nova.conf of each in-tree host would have them, in the calls that
        read them: in this one process the options are global, and the
        in-tree driver reads them at each call (this driver, when it is
        created). The destination's check tells the source where to send
        the guest; the source's confirm of a resize leaves the guest's
        definition alone when the guest stayed on the host.
        """
        def with_own_options(call):
            def call_with_own_options(*args, **kwargs):
                CONF.set_override('host', host)
                CONF.set_override('live_migration_inbound_addr',
                                  migration_addr, group='libvirt')
                return call(*args, **kwargs)
            return call_with_own_options
        for name in ('check_can_live_migrate_destination',
                     'confirm_migration'):
            setattr(driver, name, with_own_options(getattr(driver, name)))

    def hypervisor_of(self, compute):
        if self.driver == 'alt':
            return super().hypervisor_of(compute)
        return self.driver_of(compute)._host.get_connection()

    def _time_driver(self, driver):
        for name in TIMED:
            setattr(driver, name, self._timed(name, getattr(driver, name)))

    def _timed(self, name, call):
        def timed(*args, **kwargs):
            depth = getattr(self._depth, 'n', 0)
            self._depth.n = depth + 1
            start = time.perf_counter()
            try:
                return call(*args, **kwargs)
            finally:
                self._depth.n = depth
                if not depth:
                    self.calls.append(
                        (self.phase, name, time.perf_counter() - start))
        return timed

    def record(self, group, figure, value, unit='s'):
        benchmarks.append_records(os.environ['BENCH_OUT'], self.driver,
                                  [(group, figure, value, unit)])

    def measure(self, figure, method, action):
        """Runs action (API call and wait) in phase figure; records the
        time of the one call to the driver's method nova made meanwhile.
        """
        # Data an earlier step left to write back would otherwise be paid
        # by whichever operation syncs next.
        subprocess.run(['sync'], check=True)
        self.phase = figure
        action()
        self._wait_for_assert(lambda: self.assertEqual(1, len(
            self._times(figure, method))), max_retries=60)
        self.phase = None
        self.record('operation', figure, self._times(figure, method)[0])

    def _times(self, phase, method):
        return [t for p, m, t in self.calls if p == phase and m == method]

    def action(self, server, body, status):
        def act():
            self.api.post_server_action(server['id'], body)
            self._wait_for_state_change(server, status)
        return act

    def boot_ready(self, image, flavor=None, figure=None, **extra):
        """Boots a server (extra: more of its request) until the guest
        says READY; spawn is timed as figure.
        """
        holder = {}

        def boot():
            holder['server'] = self.boot(image, flavor or self.flavor,
                                         **extra)
        if figure:
            self.measure(figure, 'spawn', boot)
        else:
            boot()
        self.wait_for_guest(holder['server'], 'ALTDRIVER-READY', timeout=600)
        return holder['server']

    def delete(self, server, figure=None):
        def delete():
            self._delete_server(server)
        if figure:
            self.measure(figure, 'destroy', delete)
        else:
            delete()

    def snapshot(self, server, figure):
        def snap():
            self.create_snapshot(server, figure)
            self._wait_for_server_parameter(
                server, {'OS-EXT-STS:task_state': None})
        self.measure(figure, 'snapshot', snap)

    # ------------------------------------------------------------ scenarios
    def test_ops(self):
        rescue = self.upload_guest_image('rescue.qcow2')
        # warm-up: code paths, libvirt, QEMU's binary in the page cache
        self.delete(self.boot_ready(rescue))
        server = self.boot_ready(self.image, figure='spawn (cold cache)')
        warm = self.boot_ready(self.image, figure='spawn (warm cache)')
        self.delete(warm, figure='destroy')
        steps = [
            ('power_off (hard)', 'power_off', {'os-stop': None}, 'SHUTOFF'),
            ('power_on', 'power_on', {'os-start': None}, 'ACTIVE'),
            ('hard reboot', 'reboot', {'reboot': {'type': 'HARD'}},
             'ACTIVE'),
            ('pause', 'pause', {'pause': None}, 'PAUSED'),
            ('unpause', 'unpause', {'unpause': None}, 'ACTIVE'),
            ('suspend', 'suspend', {'suspend': None}, 'SUSPENDED'),
            ('resume', 'resume', {'resume': None}, 'ACTIVE'),
            ('rescue', 'rescue', {'rescue': {'rescue_image_ref': rescue}},
             'RESCUE'),
            ('unrescue', 'unrescue', {'unrescue': None}, 'ACTIVE'),
        ]
        for figure, method, body, status in steps:
            self.measure(figure, method, self.action(server, body, status))
            if status in ('ACTIVE', 'RESCUE'):
                self.wait_for_guest(server, 'ALTDRIVER-TICK')
        self.snapshot(server, 'snapshot (running guest)')
        self._stop_server(server)
        self.snapshot(server, 'snapshot (stopped guest)')
        self._start_server(server)
        self.api.post_server_action(server['id'], {'shelve': {}})
        self._wait_for_state_change(server, 'SHELVED')
        self.measure('shelve-offload', 'destroy', self.action(
            server, {'shelveOffload': None}, 'SHELVED_OFFLOADED'))
        self.measure('unshelve', 'spawn', self.action(
            server, {'unshelve': None}, 'ACTIVE'))
        self.delete(server)

    def test_bigdisk(self):
        big = self.upload_image(BIG_IMAGE)
        flavor = self._create_flavor(memory_mb=256, vcpu=1, disk=2)
        self.delete(self.boot_ready(self.image))  # warm-up, caches the image
        self.delete(self.boot_ready(self.image, figure='spawn 32 MiB image'))
        self.delete(self.boot_ready(big, flavor))  # caches the big image
        server = self.boot_ready(big, flavor, figure='spawn 1 GiB image')
        self._snapshot_big(server)
        self.delete(server)

    def _snapshot_big(self, server):
        """A live snapshot of 1 GiB of data: its time against a bare copy
        of the same disk chain, and how long the guest does not run.
        """
        conn = self.hypervisor_of(self.compute)
        dom = conn.lookupByUUIDString(server['id'])
        # libvirt reports every stop and restart of the vCPUs as lifecycle
        # events (both drivers run libvirt's event loop in this process):
        # exact, and unlike polling it takes no CPU from the copy.
        events = []
        callback = conn.domainEventRegisterAny(
            dom, libvirt.VIR_DOMAIN_EVENT_ID_LIFECYCLE,
            lambda conn, dom, event, detail, opaque: events.append(
                (time.perf_counter(), event)), None)
        # The physical limit first; both copies start from a cold page
        # cache (whichever ran second would otherwise read from memory).
        disk = os.path.join(self.instances_path, server['id'], 'disk')
        with tempfile.TemporaryDirectory(dir=self.instances_path) as tmp:
            drop_page_cache()
            start = time.perf_counter()
            subprocess.run(['qemu-img', 'convert', '-U', '-O', 'qcow2',
                            disk, os.path.join(tmp, 'copy')], check=True)
            bare = time.perf_counter() - start
        self.record('live snapshot', 'bare qemu-img convert of the chain',
                    bare)
        if self.driver == 'alt':
            # this driver's copy alone: the chain read as the stream Glance
            # gets, with nowhere to go
            drop_page_cache()
            start = time.perf_counter()
            with qcow2stream.ImageStream(disk, 'qcow2') as stream:
                while stream.read(4 * 2 ** 20):
                    pass
            self.record('live snapshot', 'streamed copy vs bare convert',
                        bare / (time.perf_counter() - start), 'ratio')
        drop_page_cache()
        ticks_before = self.console(server).count('ALTDRIVER-TICK')
        start = time.perf_counter()
        with PeakUsage(self.instances_path) as usage:
            self.snapshot(server, 'snapshot 1 GiB (running guest)')
        end = time.perf_counter()
        # (Glance keeps the image in this process's memory here)
        self.record('live snapshot', 'peak extra space on the instances fs',
                    usage.peak / 2 ** 20, 'MiB')
        elapsed = end - start
        time.sleep(1)  # events still on their way
        conn.domainEventDeregisterAny(callback)
        ticks = self.console(server).count('ALTDRIVER-TICK') - ticks_before
        self.record('live snapshot', 'guest paused (total)',
                    paused_seconds(events, end) * 1000, 'ms')
        # the guest ticks every 2 s while it runs
        self.record('live snapshot', 'guest progress (ticks / expected)',
                    ticks / max(elapsed / 2, 1), 'ratio')
        # The whole call against the bare copy: this driver streams the
        # image to Glance as it copies (the copy is the upload), the
        # in-tree driver copies, then uploads its staging file. (Glance is
        # this process's memory here: the hand-over is a copy of 1 GiB.)
        whole = self._times('snapshot 1 GiB (running guest)', 'snapshot')[0]
        self.record('live snapshot', 'throughput vs bare convert',
                    bare / whole, 'ratio')

    def test_concurrency(self):
        self.other = self.boot_ready(self.image)  # also the warm-up
        for what, run in (('spawns', self._eight_spawns),
                          ('snapshots', self._eight_snapshots)):
            stop = threading.Event()
            figure = 'pause while 8 %s run' % what
            toggler = threading.Thread(
                target=self._pause_and_unpause,
                args=(figure, lambda: not stop.is_set()))
            toggler.start()
            try:
                start = time.perf_counter()
                run()
                self.record('concurrency', '8 %s at once (total)' % what,
                            time.perf_counter() - start)
            finally:
                stop.set()
                toggler.join()
            self.record('concurrency', figure,
                        statistics.median(self._times(figure, 'pause')))
        # Once the host is quiet again: the eight guests booted (they were
        # only ACTIVE: booting under TCG they take the CPUs, and a driver
        # whose snapshots finish sooner met more of them still booting),
        # the storm's writes on disk, then the median of five pauses, each
        # after a second's rest.
        for server in self.many:
            self.wait_for_guest(server, 'ALTDRIVER-READY', timeout=600)
        subprocess.run(['sync'], check=True)
        rounds = iter(range(5))

        def again():
            if next(rounds, None) is None:
                return False
            time.sleep(1)
            return True
        self._pause_and_unpause('pause (idle host)', again)
        self.record('operation', 'pause (idle host)', statistics.median(
            self._times('pause (idle host)', 'pause')))

    def use_benchmark_ceph_volumes(self, conns):
        """RBD volumes for the driver on the libvirt daemons conns; the
        flavor of a server booted from one (no local disk).
        """
        self.use_ceph_volumes()
        # nova asks the in-tree driver for the host's connector, outside the
        # timed calls, and it asks os-brick, which needs a root helper this
        # harness lacks; RBD volumes never reach os-brick's connectors.
        self.useFixture(nova_fixtures.OSBrickFixture())
        if self.driver == 'intree':
            self._operator_secret(conns)
        return self._create_flavor(memory_mb=256, vcpu=1, disk=0, ephemeral=0)

    def test_volumes(self):
        flavor = self.use_benchmark_ceph_volumes([self.conn])
        from_volume = {
            'block_device_mapping_v2': test_volumes.BOOT_FROM_VOLUME}
        self.make_volume(test_volumes.BOOT_VOLUME, from_guest_image=True)
        # warm-up: QEMU's rbd driver, librbd and the guest's data on the
        # volume in the page cache
        self.delete(self.boot_ready('', flavor, **from_volume))
        server = self.boot_ready('', flavor, figure='spawn (boot from volume)',
                                 **from_volume)
        self.wait_for_disks(server, ['vda'])  # its volume, nothing else
        volume_id = str(uuid.uuid4())
        self.make_volume(volume_id)
        self.measure('attach_volume (running guest)', 'attach_volume',
                     lambda: self.api.post_server_volume(server['id'], {
                         'volumeAttachment': {'volumeId': volume_id}}))
        self.wait_for_disks(server, ['vda', 'vdb'])  # the guest has it
        # Cinder extended it and tells nova (the fixture's volume: 1 GiB)
        self.measure('extend_volume (64 MiB to 1 GiB)', 'extend_volume',
                     lambda: self.api.api_post(
                         '/os-server-external-events', {'events': [{
                             'name': 'volume-extended',
                             'server_uuid': server['id'],
                             'tag': volume_id}]}))
        dom = self.conn.lookupByUUIDString(server['id'])
        self._wait_for_assert(lambda: self.assertEqual(
            2 ** 30, dom.blockInfo('vdb')[0]))
        self.measure('detach_volume (running guest)', 'detach_volume',
                     lambda: self.api.delete_server_volume(server['id'],
                                                           volume_id))
        self.wait_for_disks(server, ['vda'])
        self.delete(server)
        self.record('memory', 'Ceph RSS (mon + mgr + osd)',
                    benchmarks.ceph_rss_mib(), 'MiB')

    def _operator_secret(self, conns):
        """Cinder's cephx key in the libvirt daemons conns (every host that
        runs the guest), and nova.conf naming it, as the in-tree driver
        needs them (this driver makes its own secret from the keyring).
        """
        self.flags(rbd_user='cinder', group='libvirt',
                   rbd_secret_uuid=builders.CEPH_SECRET_UUID)
        key = subprocess.run(['ceph', 'auth', 'get-key', 'client.cinder'],
                             check=True, capture_output=True).stdout
        for conn in conns:
            secret = conn.secretDefineXML(
                OPERATOR_SECRET % builders.CEPH_SECRET_UUID)
            self.addCleanup(secret.undefine)
            secret.setValue(base64.b64decode(key))

    def _pause_and_unpause(self, figure, again):
        """Pauses and unpauses the other guest while again() says so."""
        self.phase = figure
        while again():
            self.action(self.other, {'pause': None}, 'PAUSED')()
            self.action(self.other, {'unpause': None}, 'ACTIVE')()
        self.phase = None

    def _eight_spawns(self):
        body = self._build_server(image_uuid=self.image,
                                  flavor_id=self.flavor, networks='none')
        body.update(min_count=8, max_count=8, name='many')
        self.api.post_server({'server': body})
        self.many = [s for s in self.api.get_servers()
                     if s['name'].startswith('many')]
        for server in self.many:
            self.remove_domain_at_cleanup(server['id'])
        for server in self.many:
            self._wait_for_state_change(server, 'ACTIVE')

    def _eight_snapshots(self):
        images = [self.api.post_server_action(
            s['id'], {'createImage': {'name': 'many'}})['image_id']
            for s in self.many]
        for image in images:
            self._wait_for_assert(lambda: self.assertEqual(
                'active', self.glance.show(None, image)['status']),
                max_retries=self.STATE_WAIT_RETRIES)


class PeakUsage(object):
    """The most a filesystem's used space grew while the block ran
    (bytes, ``peak``), sampled every 10 ms by a thread of its own.
    """

    def __init__(self, path):
        self._path = path
        self._stop = threading.Event()
        self.peak = 0

    def _used(self):
        st = os.statvfs(self._path)
        return (st.f_blocks - st.f_bfree) * st.f_frsize

    def _sample(self, start):
        while not self._stop.wait(0.01):
            self.peak = max(self.peak, self._used() - start)

    def __enter__(self):
        self._sampler = threading.Thread(target=self._sample,
                                         args=(self._used(),))
        self._sampler.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._sampler.join()


def paused_seconds(events, end):
    """Total time between each suspended and the next resumed event."""
    total, paused_at = 0.0, None
    for at, event in events:
        if event == libvirt.VIR_DOMAIN_EVENT_SUSPENDED and paused_at is None:
            paused_at = at
        elif event == libvirt.VIR_DOMAIN_EVENT_RESUMED and paused_at:
            total += at - paused_at
            paused_at = None
    return total + (end - paused_at if paused_at else 0.0)


def drop_page_cache():
    subprocess.run(['sync'], check=True)
    with open('/proc/sys/vm/drop_caches', 'w') as f:
        f.write('3')


def main(case=Bench):
    """Runs one scenario of case: ``python -m benchmarks.ops SCENARIO``."""
    faulthandler.register(signal.SIGUSR1)  # kill -USR1: where it hangs
    result = unittest.TextTestRunner(stream=sys.stdout, verbosity=2).run(
        case('test_' + sys.argv[1]))
    sys.stdout.flush()
    # No thread the drivers left behind can keep the process alive.
    os._exit(0 if result.wasSuccessful() else 1)


if __name__ == '__main__':
    main()
