import os

# nova-compute 34 runs in native threading mode; the tests run nova the same
# way, set up as nova's own test packages do, before anything can import
# eventlet (which the threading mode then forbids).
os.environ.setdefault('OS_NOVA_DISABLE_EVENTLET_PATCHING', 'true')
from nova import monkey_patch  # noqa: E402
monkey_patch.patch()

from nova import objects  # noqa: E402
objects.register_all()
