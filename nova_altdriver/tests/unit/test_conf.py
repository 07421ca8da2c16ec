from importlib import metadata
import os
import subprocess
import sys

import fixtures
import testtools

from nova_altdriver import conf

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))))


class OptionsTest(testtools.TestCase):

    def test_options_are_listed_through_the_entry_point(self):
        entry_point, = metadata.entry_points(
            group='oslo.config.opts', name='nova_altdriver')
        (group, opts), = entry_point.load()()
        self.assertEqual('altdriver', group.name)
        names = {o.name for o in opts}
        self.assertLessEqual({'connection_uri', 'virt_type'}, names)
        self.assertEqual('qemu:///system', conf.CONF.altdriver.connection_uri)

    def test_sample_config_is_current(self):
        out = os.path.join(self.useFixture(fixtures.TempDir()).path,
                           'sample.conf')
        subprocess.run(
            [os.path.join(os.path.dirname(sys.executable),
                          'oslo-config-generator'),
             '--config-file', 'etc/nova-altdriver-config-generator.conf',
             '--output-file', out], cwd=TOP, check=True)
        with open(out) as generated, open(os.path.join(
                TOP, 'etc', 'nova-altdriver.conf.sample')) as committed:
            self.assertEqual(
                generated.read(), committed.read(),
                'etc/nova-altdriver.conf.sample is stale: run '
                'tox -e genconfig')
