import json
import os

# nova runs in native threading mode, set up (as for the tests) before
# anything can import eventlet.
from nova_altdriver import tests  # noqa: F401

# The compared drivers, by the name run.py gives them.
COMPUTE_DRIVERS = {'alt': 'nova_altdriver.AltDriver',
                   'intree': 'libvirt.LibvirtDriver'}
# The processes of the one-node Ceph (tools/ceph), by their names.
CEPH_DAEMONS = ('ceph-mon', 'ceph-mgr', 'ceph-osd')


def append_records(path, driver, rows):
    """Appends (group, figure, value, unit) rows of one driver to the JSON
    lines file run.py reads.
    """
    with open(path, 'a') as f:
        for group, figure, value, unit in rows:
            f.write(json.dumps({'group': group, 'figure': figure,
                                'driver': driver, 'value': value,
                                'unit': unit}) + '\n')


def rss_mib(pid='self', proc='/proc'):
    """The resident memory of a process, in MiB."""
    with open(os.path.join(proc, str(pid), 'status')) as f:
        kib = next(line.split()[1] for line in f if line.startswith('VmRSS:'))
    return int(kib) / 1024.0


def ceph_rss_mib(proc='/proc'):
    """The resident memory of the Ceph daemons together, in MiB: what
    volumes on Ceph add to a one-machine cloud.
    """
    found = {}
    for pid in filter(str.isdigit, os.listdir(proc)):
        try:
            with open(os.path.join(proc, pid, 'comm')) as f:
                name = f.read().strip()
            if name in CEPH_DAEMONS:
                found[name] = found.get(name, 0.0) + rss_mib(pid, proc)
        except (FileNotFoundError, ProcessLookupError):
            continue  # ended meanwhile
    missing = set(CEPH_DAEMONS) - set(found)
    if missing:
        # a sum without one of them would pass for Ceph's whole footprint
        raise RuntimeError('Ceph daemons not running: %s' % ', '.join(
            sorted(missing)))
    return sum(found.values())
