"""Where this host keeps its instances: nova's ``instances_path``.

Read through here, never from CONF directly: the driver pins the value it
was created with for the length of each of its calls, so that several
compute services in one process (nova's functional tests: two hosts that
share an instances path, or do not) each keep their own, as separate hosts
would.
"""

import contextlib
import functools
import os
import threading

import nova.conf

CONF = nova.conf.CONF

_pinned = threading.local()


def instances_path():
    return getattr(_pinned, 'path', None) or CONF.instances_path


def snapshots_directory():
    return (CONF.altdriver.snapshots_directory or
            os.path.join(instances_path(), 'snapshots'))


@contextlib.contextmanager
def pinned(path):
    previous = getattr(_pinned, 'path', None)
    _pinned.path = path
    try:
        yield
    finally:
        _pinned.path = previous


def pin_per_instance(cls):
    """Class decorator: every public method of cls runs with the
    instances path held in the instance's ``_instances_path``.
    """
    def wrap(method):
        @functools.wraps(method)
        def pinned_method(self, *args, **kwargs):
            with pinned(self._instances_path):
                return method(self, *args, **kwargs)
        return pinned_method

    for name, attr in list(vars(cls).items()):
        if callable(attr) and not name.startswith('_'):
            setattr(cls, name, wrap(attr))
    return cls
