"""What the CLI tour reads from the cloud again and again, through
openstacksdk: an `openstack` command spends about two seconds starting up
on this machine, and the tour polls servers, consoles and volumes hundreds
of times. The tour's actions stay on the CLI; its checks read here (the
same API calls the CLI makes).

    probe.py show SERVER PATH...     the server's fields (compute API 2.47),
                                     one line, space-separated; a PATH is
                                     keys and list indexes joined by dots
                                     (OS-EXT-SRV-ATTR:host, flavor.ram,
                                     addresses.aio-net.0.addr)
    probe.py wait-status SERVER STATUS SECONDS
                                     until the server has STATUS and no task
                                     (exit 0), goes to ERROR (1) or the time
                                     is up (2); prints what it saw last
    probe.py console SERVER          its console log
    probe.py volume-status VOLUME    the volume's status (exit 1: no volume)

SERVER and VOLUME are names or ids. Exit 3: no such server.

The Python tours (browser_tour.py, load.py) import the guest's console
parser (``markers``) and ``answers_ping`` from here.
"""

import importlib.util
import os
import subprocess
import sys
import time

import openstack

CLOUD = 'altdriver-aio'
TOP = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))


def load_by_path(path):
    """The module in PATH, not imported through its package."""
    spec = importlib.util.spec_from_file_location(
        os.path.splitext(os.path.basename(path))[0], path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# the e2e tests' parser of the guest's console, for the Python tours (its
# package would import nova)
markers = load_by_path(os.path.join(TOP, 'nova_altdriver', 'tests', 'e2e',
                                    'markers.py'))


def answers_ping(address, attempts=1):
    """Whether the guest at address answers one of attempts pings."""
    return any(subprocess.run(['ping', '-c', '1', '-W', '2', address],
                              stdout=subprocess.DEVNULL).returncode == 0
               for _ in range(attempts))


def server_id(conn, name_or_id):
    server = conn.compute.find_server(name_or_id, ignore_missing=True)
    if server is None:
        print('no server %s' % name_or_id, file=sys.stderr)
        sys.exit(3)
    return server.id


def details(conn, sid):
    # 2.47: the server's own copy of its flavor (name, memory) in the reply
    reply = conn.compute.get('/servers/%s' % sid, microversion='2.47')
    if reply.status_code == 404:
        sys.exit(3)
    reply.raise_for_status()
    return reply.json()['server']


def field(server, path):
    value = server
    for key in path.split('.'):
        value = value[int(key)] if isinstance(value, list) else value[key]
    return value


def show(conn, name, *paths):
    server = details(conn, server_id(conn, name))
    print(' '.join(str(field(server, p)) for p in paths))


def wait_status(conn, name, want, seconds):
    sid = server_id(conn, name)
    end = time.monotonic() + float(seconds)
    while True:
        server = details(conn, sid)
        status, task = server['status'], server['OS-EXT-STS:task_state']
        if status == 'ERROR':
            print('%s went to ERROR: %s' % (name, server.get('fault')))
            return 1
        if status == want and task is None:
            print('%s is %s' % (name, status))
            return 0
        if time.monotonic() > end:
            print('%s: still status=%s task=%s after %s s (wanted %s)' % (
                name, status, task, seconds, want))
            return 2
        time.sleep(1)


def console(conn, name):
    sys.stdout.write(conn.compute.get_server_console_output(
        server_id(conn, name))['output'])


def volume_status(conn, name):
    volume = conn.block_storage.find_volume(name, ignore_missing=True)
    if volume is None:
        return 1
    print(volume.status)


COMMANDS = {'show': show, 'wait-status': wait_status, 'console': console,
            'volume-status': volume_status}


def main():
    os.environ.setdefault('OS_CLIENT_CONFIG_FILE', os.path.join(
        os.environ.get('AIO_STATE', '/var/lib/nova-altdriver-aio'),
        'clouds.yaml'))
    command, args = sys.argv[1], sys.argv[2:]
    return COMMANDS[command](openstack.connect(cloud=CLOUD), *args) or 0


if __name__ == '__main__':
    sys.exit(main())
