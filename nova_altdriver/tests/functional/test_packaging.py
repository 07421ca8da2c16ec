"""The driver loads the way nova-compute loads it, from a wheel and from an
editable install (``compute_driver = nova_altdriver.AltDriver``).
"""

import os
import subprocess
import sys
import sysconfig
import zipfile

import fixtures
import testtools

import nova_altdriver

TOP = os.path.dirname(os.path.dirname(os.path.abspath(
    nova_altdriver.__file__)))

# What nova-compute does: threading mode, then load_compute_driver().
LOAD_DRIVER = """
import sys
from nova import monkey_patch
monkey_patch.patch(backend='threading')
import nova.conf
from nova.virt import driver
CONF = nova.conf.CONF
CONF(['--config-file', sys.argv[1]], project='nova')
compute_driver = driver.load_compute_driver(None)
assert type(compute_driver).__name__ == 'AltDriver', compute_driver
print(sys.modules['nova.virt.nova_altdriver'].__file__)
print(sys.modules[type(compute_driver).__module__].__file__)
"""


class LoadingTest(testtools.TestCase):

    def setUp(self):
        super().setUp()
        self.tmp = self.useFixture(fixtures.TempDir()).path
        self.conf_file = os.path.join(self.tmp, 'nova.conf')
        with open(self.conf_file, 'w') as f:
            f.write('[DEFAULT]\ncompute_driver = nova_altdriver.AltDriver\n'
                    '[altdriver]\nconnection_uri = test:///default\n')

    def load_driver(self, python):
        """Paths of the shim and of the driver module nova loaded.
"""
        out = subprocess.run(
            [python, '-c', LOAD_DRIVER, self.conf_file], cwd=self.tmp,
            env=dict(os.environ, OS_NOVA_DISABLE_EVENTLET_PATCHING='true'),
            capture_output=True, text=True, check=True).stdout
        return out.split()

    def test_editable_install_loads_this_checkout(self):
        shim, module = self.load_driver(sys.executable)
        self.assertEqual(os.path.join(TOP, 'nova_altdriver', 'driver.py'),
                         os.path.realpath(module))
        self.assertEqual(
            os.path.join(TOP, 'nova', 'virt', 'nova_altdriver',
                         '__init__.py'), os.path.realpath(shim))

    def test_wheel_installs_beside_nova_and_loads(self):
        subprocess.run(
            [sys.executable, '-m', 'pip', 'wheel', '-q', '--no-deps',
             '--no-build-isolation', '-w', self.tmp, TOP],
            check=True, capture_output=True)
        wheel = [f for f in os.listdir(self.tmp) if f.endswith('.whl')][0]
        names = zipfile.ZipFile(os.path.join(self.tmp, wheel)).namelist()
        nova_files = [n for n in names if n.startswith('nova/')]
        # Only the shim: nova's own nova/__init__.py and nova/virt/__init__.py
        # must never be overwritten by this package.
        self.assertEqual(['nova/virt/nova_altdriver/__init__.py'], nova_files)
        self.assertIn('nova_altdriver/driver.py', names)

        # A copy of this environment (hard links: instant, and pip only adds
        # or unlinks files) with the wheel in place of the editable install.
        venv = os.path.join(self.tmp, 'venv')
        subprocess.run(['cp', '-al', sys.prefix, venv], check=True)
        python = os.path.join(venv, 'bin', 'python')
        site = sysconfig.get_path('purelib', vars={'base': venv})
        os.unlink(os.path.join(site, 'nova', 'virt', 'nova_altdriver'))
        subprocess.run([python, '-m', 'pip', 'uninstall', '-q', '-y',
                        'nova-altdriver'], check=True, capture_output=True)
        subprocess.run([python, '-m', 'pip', 'install', '-q', '--no-deps',
                        os.path.join(self.tmp, wheel)],
                       check=True, capture_output=True)

        shim, module = self.load_driver(python)
        self.assertEqual(
            os.path.join(site, 'nova', 'virt', 'nova_altdriver',
                         '__init__.py'), shim)
        self.assertEqual(os.path.join(site, 'nova_altdriver', 'driver.py'),
                         module)
