import fixtures
from oslo_config import fixture as config_fixture
import testtools

from nova_altdriver import conf
from nova_altdriver import imagecache
from nova_altdriver import paths
from nova_altdriver.tests import libvirt_test_driver


class NoSleep(fixtures.MonkeyPatch):
    """Retries and polls without waiting."""

    def __init__(self):
        super().__init__('time.sleep', lambda seconds: None)


class TestCase(testtools.TestCase):
    """Fast tier: a private libvirt test-driver hypervisor per test."""

    def setUp(self):
        super().setUp()
        self.conf = self.useFixture(config_fixture.Config(conf.CONF))
        conf.CONF([], project='nova', default_config_files=[])
        self.tmp = self.useFixture(fixtures.TempDir()).path
        self.uri = libvirt_test_driver.node_uri(self.tmp, cpus=6,
                                                memory_mb=12288)
        self.flags(connection_uri=self.uri, virt_type='qemu',
                   stopped_event_delay=0.3, group='altdriver')
        self.flags(instances_path=self.tmp)
        self.layout = paths.Layout.from_config()
        self.cache = imagecache.ImageCache(self.layout)

    def flags(self, group=None, **kw):
        self.conf.config(group=group, **kw)
