"""The all-in-one under load (`aio.sh load`): SERVERS small servers of the
test guest booted in one request, a storm of mixed server actions by
CONCURRENCY workers for SECONDS, every guest checked from inside, then every
server deleted and the cloud searched for what they left.

    load.py [--servers N] [--seconds S] [--concurrency C]

Each storm action takes a server that no other worker holds and brings it
back to ACTIVE with its guest answering ping (stop and start, a soft and a
hard reboot, pause and unpause, suspend and resume, rescue and unrescue, a
snapshot, shelve and unshelve). An action fails when an API call is
refused, the server goes to ERROR, or it does not reach the status, or its
guest does not answer, within WAIT seconds; a failed server is left out of
the rest of the storm. After the storm every server must be ACTIVE and its
guest answer. (Ping, not the console: the in-tree driver's console log
starts again with each new QEMU, a resumed guest's boot lines gone.)

Prints `LOAD figure | value | unit` rows (benchmarks/cloud.py reads them):
the seconds until all servers were ACTIVE and all guests answered, each
action's median seconds, the actions completed and failed, nova-compute's
CPU seconds (both hosts' processes) and resident memory, the seconds to
delete them all, and the leftovers: libvirt domains, instance directories,
Neutron ports, Placement allocations, Open vSwitch ports, snapshot images.
Exits 1 when an action failed, a guest was not back or anything was left.
"""

import argparse
import collections
import os
import random
import statistics
import subprocess
import sys
import threading
import time

import openstack

from probe import answers_ping
from probe import CLOUD
from probe import TOP

STATE = os.environ.get('AIO_STATE', '/var/lib/nova-altdriver-aio')
PREFIX = 'aio-load'
IMAGE = PREFIX + '-guest'
FLAVOR = PREFIX + '-flavor'
NETWORK = 'aio-net'
BRIDGE = 'br-int'
WAIT = 300
# the seed of the actions' order: the same sequence for either driver
SEED = 22


def log(msg):
    print('[%s] %s' % (time.strftime('%H:%M:%S'), msg), file=sys.stderr,
          flush=True)


class Failed(Exception):
    pass


def wait_status(conn, sid, want, seconds=WAIT):
    """Until the server has a status in WANT and no task; Failed on ERROR
    or when the time is up.
    """
    end = time.monotonic() + seconds
    while True:
        server = conn.compute.get_server(sid)
        if server.status == 'ERROR':
            raise Failed('%s went to ERROR: %s' % (sid, server.fault))
        if server.status in want and server.task_state is None:
            return server
        if time.monotonic() > end:
            raise Failed('%s: status %s task %s after %d s (wanted %s)' % (
                sid, server.status, server.task_state, seconds, want))
        time.sleep(1)


def wait_image(conn, image_id, seconds=WAIT):
    end = time.monotonic() + seconds
    while True:
        image = conn.image.get_image(image_id)
        if image.status == 'active':
            return
        if image.status in ('killed', 'deleted') or time.monotonic() > end:
            raise Failed('snapshot %s is %s' % (image_id, image.status))
        time.sleep(1)


def snapshot(conn, sid):
    image = conn.compute.create_server_image(
        sid, '%s-snapshot-%s' % (PREFIX, sid))
    try:
        wait_image(conn, image.id)
        wait_status(conn, sid, {'ACTIVE'})
    finally:
        conn.image.delete_image(image.id, ignore_missing=True)


def wait_answer(conn, sid, seconds=WAIT):
    """Until the server's guest answers ping; Failed when the time is up."""
    address = conn.compute.get_server(sid).addresses[NETWORK][0]['addr']
    end = time.monotonic() + seconds
    while not answers_ping(address):
        if time.monotonic() > end:
            raise Failed('the guest of %s does not answer at %s' % (
                sid, address))
        time.sleep(1)


def steps(*pairs):
    """An action of (API call, statuses it ends in) steps."""
    def run(conn, sid):
        for call, want in pairs:
            call(conn.compute, sid)
            wait_status(conn, sid, want)
    return run


ACTIONS = {
    'stop and start': steps(
        (lambda c, s: c.stop_server(s), {'SHUTOFF'}),
        (lambda c, s: c.start_server(s), {'ACTIVE'})),
    'soft reboot': steps((lambda c, s: c.reboot_server(s, 'SOFT'),
                          {'ACTIVE'})),
    'hard reboot': steps((lambda c, s: c.reboot_server(s, 'HARD'),
                          {'ACTIVE'})),
    'pause and unpause': steps(
        (lambda c, s: c.pause_server(s), {'PAUSED'}),
        (lambda c, s: c.unpause_server(s), {'ACTIVE'})),
    'suspend and resume': steps(
        (lambda c, s: c.suspend_server(s), {'SUSPENDED'}),
        (lambda c, s: c.resume_server(s), {'ACTIVE'})),
    'rescue and unrescue': steps(
        (lambda c, s: c.rescue_server(s), {'RESCUE'}),
        (lambda c, s: c.unrescue_server(s), {'ACTIVE'})),
    'snapshot': snapshot,
    # offloaded after shelved_offload_time (aio.sh's nova.conf): either
    'shelve and unshelve': steps(
        (lambda c, s: c.shelve_server(s), {'SHELVED', 'SHELVED_OFFLOADED'}),
        (lambda c, s: c.unshelve_server(s), {'ACTIVE'})),
}


class Storm(object):
    """Workers taking free servers and the next action of one sequence
    until the time is up.
    """

    def __init__(self, servers, seconds, concurrency):
        self.free = list(servers)
        self.failed_servers = set()
        self.seconds, self.concurrency = seconds, concurrency
        order = sorted(ACTIONS)
        random.Random(SEED).shuffle(order)
        self.order = order
        self.next_action = 0
        self.lock = threading.Lock()
        self.done = collections.defaultdict(list)  # action: [seconds]
        self.failures = []  # (action, server, why)

    def take(self, rng):
        with self.lock:
            if not self.free:
                return None, None
            sid = self.free.pop(rng.randrange(len(self.free)))
            name = self.order[self.next_action % len(self.order)]
            self.next_action += 1
            return sid, name

    def worker(self, number, end):
        conn = openstack.connect(cloud=CLOUD)
        rng = random.Random(SEED + number)
        while time.monotonic() < end:
            sid, name = self.take(rng)
            if sid is None:
                time.sleep(1)
                continue
            t0 = time.monotonic()
            try:
                ACTIONS[name](conn, sid)
                # booted again (or still running): the next action's ACPI
                # button press must not meet a guest still booting
                wait_answer(conn, sid)
            except Exception as e:  # an API refusal, ERROR or time-out
                log('FAILED %s of %s: %s' % (name, sid, e))
                with self.lock:
                    self.failures.append((name, sid, str(e)))
                    self.failed_servers.add(sid)
                continue
            seconds = time.monotonic() - t0
            log('%s of %s: %.1f s' % (name, sid, seconds))
            with self.lock:
                self.done[name].append(seconds)
                self.free.append(sid)

    def run(self):
        end = time.monotonic() + self.seconds
        threads = [threading.Thread(target=self.worker, args=(n, end))
                   for n in range(self.concurrency)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()


class NovaCompute(object):
    """Both hosts' nova-compute processes, as aio.sh started them."""

    def __init__(self):
        self.pids = []
        for name in ('nova-compute', 'nova-compute2'):
            with open(os.path.join(STATE, 'run', name + '.pid')) as f:
                self.pids.append(int(f.read()))

    def cpu_seconds(self):
        total = 0
        for pid in self.pids:
            with open('/proc/%d/stat' % pid) as f:
                # utime and stime, after the command in parentheses
                fields = f.read().rsplit(')', 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        return total / os.sysconf('SC_CLK_TCK')

    def memory_mib(self, key):
        """VmRSS (now) or VmHWM (the peak) of both, in MiB."""
        total = 0
        for pid in self.pids:
            with open('/proc/%d/status' % pid) as f:
                total += next(int(line.split()[1]) for line in f
                              if line.startswith(key + ':'))
        return total / 1024.0


def ovs_ports():
    return set(subprocess.run(
        ['ovs-vsctl', '--timeout=10', 'list-ports', BRIDGE], check=True,
        stdout=subprocess.PIPE, text=True).stdout.split())


def guest_dir():
    return subprocess.run(
        ['bash', os.path.join(TOP, 'tools', 'guest-image', 'build.sh')],
        check=True, stdout=subprocess.PIPE, text=True).stdout.strip()


class Load(object):

    def __init__(self, args):
        self.args = args
        self.conn = openstack.connect(cloud=CLOUD)
        self.figures = []
        self.ids = []
        with open(os.path.join(STATE, 'computes')) as f:
            self.libvirt = [uri for _, _, uri in map(str.split, f)]

    def figure(self, name, value, unit):
        self.figures.append((name, value, unit))
        log('%s: %s %s' % (name, value, unit))

    def mine(self):
        return [s for s in self.conn.compute.servers()
                if s.name.startswith(PREFIX + '-')]

    def cleanup(self):
        """What an earlier run left (an interrupted one)."""
        left = self.mine()
        for server in left:
            log('deleting %s, left by an earlier run' % server.name)
            self.conn.compute.delete_server(server.id)
        for server in left:
            self.conn.compute.wait_for_delete(server, wait=WAIT)
        for image in self.conn.image.images():
            if image.name.startswith(PREFIX + '-snapshot-'):
                self.conn.image.delete_image(image.id)

    def prepare(self):
        c = self.conn
        if not c.image.find_image(IMAGE):
            log('uploading %s' % IMAGE)
            c.create_image(IMAGE, filename=os.path.join(
                guest_dir(), 'disk.qcow2'), disk_format='qcow2',
                container_format='bare', wait=True)
        if not c.compute.find_flavor(FLAVOR):
            c.compute.create_flavor(name=FLAVOR, ram=128, vcpus=1, disk=1)
        # room for them all in the admin project's quota
        project = c.current_project_id
        n = self.args.servers
        c.set_compute_quotas(project, instances=n + 10, cores=n + 10,
                             ram=(n + 10) * 512)

    def boot(self):
        c = self.conn
        n = self.args.servers
        t0 = time.monotonic()
        c.compute.create_server(
            name=PREFIX, image_id=c.image.find_image(IMAGE).id,
            flavor_id=c.compute.find_flavor(FLAVOR).id,
            networks=[{'uuid': c.network.find_network(NETWORK).id}],
            min_count=n, max_count=n)
        self.ids = [s.id for s in self.mine()]
        if len(self.ids) != n:
            raise Failed('%d servers made, not %d' % (len(self.ids), n))
        failed = set()
        for sid in self.ids:
            try:
                wait_status(c, sid, {'ACTIVE'}, WAIT * 3)
            except Failed as e:
                log('boot failed: %s' % e)
                failed.add(sid)
        self.figure('boot %d servers (all ACTIVE)' % n,
                    round(time.monotonic() - t0), 's')
        self.figure('boot failures', len(failed), 'servers')
        # many TCG guests booting at once share two CPUs here: minutes
        not_ready = self.wait_ready(
            [sid for sid in self.ids if sid not in failed], WAIT * 3)
        self.figure('boot %d servers (all guests answer)' % n,
                    round(time.monotonic() - t0), 's')
        return failed | not_ready

    def wait_ready(self, ids, seconds=WAIT):
        """The guests that do not answer ping within seconds."""
        addresses = {
            sid: self.conn.compute.get_server(sid).addresses[NETWORK][0][
                'addr'] for sid in ids}
        waiting = set(ids)
        end = time.monotonic() + seconds
        while waiting and time.monotonic() < end:
            waiting = {sid for sid in waiting
                       if not answers_ping(addresses[sid])}
            if waiting:
                time.sleep(5)
        for sid in sorted(waiting):
            log('the guest of %s does not answer at %s' % (
                sid, addresses[sid]))
        return waiting

    def delete(self):
        c = self.conn
        t0 = time.monotonic()
        for sid in self.ids:
            c.compute.delete_server(sid)
        for sid in self.ids:
            server = c.compute.find_server(sid, ignore_missing=True)
            if server is not None:
                c.compute.wait_for_delete(server, wait=WAIT)
        self.figure('delete %d servers' % len(self.ids),
                    round(time.monotonic() - t0), 's')

    def leftovers(self, ports_before):
        """What the deleted servers left, by kind."""
        c, ids = self.conn, set(self.ids)
        left = collections.Counter()
        for uri in self.libvirt:
            domains = subprocess.run(
                ['virsh', '-c', uri, 'list', '--all', '--uuid'], check=True,
                stdout=subprocess.PIPE, text=True).stdout.split()
            left['libvirt domains'] += len(ids & set(domains))
        instances = os.path.join(STATE, 'instances')
        left['instance directories'] = len(
            [d for d in os.listdir(instances) if d[:36] in ids])
        left['Neutron ports'] = len(
            [p for p in c.network.ports() if p.device_id in ids])
        for sid in ids:
            reply = c.placement.get('/allocations/%s' % sid)
            reply.raise_for_status()
            left['Placement allocations'] += len(
                reply.json()['allocations'])
        left['Open vSwitch ports'] = len(ovs_ports() - ports_before)
        left['snapshot images'] = len(
            [i for i in c.image.images()
             if i.name.startswith(PREFIX + '-snapshot-')])
        for kind, count in sorted(left.items()):
            if count:
                log('left: %d %s' % (count, kind))
        return sum(left.values())

    def run(self):
        args = self.args
        self.cleanup()
        self.prepare()
        compute = NovaCompute()
        ports_before = ovs_ports()
        cpu0 = compute.cpu_seconds()
        not_back = self.boot()
        storm = Storm([sid for sid in self.ids if sid not in not_back],
                      args.seconds, args.concurrency)
        cpu_storm = compute.cpu_seconds()
        log('the storm: %d workers, %d s' % (args.concurrency, args.seconds))
        storm.run()
        cpu_storm = compute.cpu_seconds() - cpu_storm
        completed = sum(len(v) for v in storm.done.values())
        for name in sorted(storm.done):
            self.figure('%s (median)' % name,
                        round(statistics.median(storm.done[name]), 1), 's')
        self.figure('storm actions completed', completed, 'actions')
        self.figure('storm actions failed', len(storm.failures), 'actions')
        alive = [sid for sid in self.ids
                 if sid not in not_back and sid not in storm.failed_servers]
        for sid in alive:
            try:
                wait_status(self.conn, sid, {'ACTIVE'}, 0)
            except Failed as e:
                log('after the storm: %s' % e)
                not_back.add(sid)
        not_back |= self.wait_ready(
            [sid for sid in alive if sid not in not_back])
        self.figure('guests not back (status, ping)',
                    len(not_back | storm.failed_servers), 'servers')
        # a failed action took CPU too
        attempted = completed + len(storm.failures)
        self.figure('nova-compute CPU a storm action',
                    round(cpu_storm * 1000 / max(attempted, 1)), 'ms')
        self.figure('nova-compute resident memory after the storm',
                    round(compute.memory_mib('VmRSS')), 'MiB')
        self.figure('nova-compute peak resident memory',
                    round(compute.memory_mib('VmHWM')), 'MiB')
        self.delete()
        self.figure('nova-compute CPU, whole load test',
                    round(compute.cpu_seconds() - cpu0), 's')
        left = self.leftovers(ports_before)
        self.figure('leftovers after the delete', left, 'items')
        for name, value, unit in self.figures:
            print('LOAD %s | %s | %s' % (name, value, unit))
        return 1 if storm.failures or not_back or left else 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--servers', type=int, default=50)
    parser.add_argument('--seconds', type=int, default=300)
    parser.add_argument('--concurrency', type=int, default=4)
    return Load(parser.parse_args()).run()


if __name__ == '__main__':
    sys.exit(main())
