import json

# nova runs in native threading mode, set up (as for the tests) before
# anything can import eventlet.
from nova_altdriver import tests  # noqa: F401

# The compared drivers, by the name run.py gives them.
COMPUTE_DRIVERS = {'alt': 'nova_altdriver.AltDriver',
                   'intree': 'libvirt.LibvirtDriver'}


def append_records(path, driver, rows):
    """Appends (group, figure, value, unit) rows of one driver to the JSON
    lines file run.py reads.
    """
    with open(path, 'a') as f:
        for group, figure, value, unit in rows:
            f.write(json.dumps({'group': group, 'figure': figure,
                                'driver': driver, 'value': value,
                                'unit': unit}) + '\n')
