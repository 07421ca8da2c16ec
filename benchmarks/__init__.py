# nova runs in native threading mode, set up (as for the tests) before
# anything can import eventlet.
from nova_altdriver import tests  # noqa: F401
