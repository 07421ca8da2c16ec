"""The DevStack plugin's phases against temporary config files, with
minimal stand-ins for DevStack's helpers."""

import configparser
import os
import subprocess
import sys

import fixtures
import testtools

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))))

STAND_INS = r'''
set -eu
is_service_enabled() { return 0; }
echo_summary() { :; }
iniset() {  # FILE SECTION OPTION VALUE, like DevStack's
    "$PY" - "$@" <<'END'
import configparser, sys
path, section, option, value = sys.argv[1:]
conf = configparser.ConfigParser(interpolation=None)
conf.read(path)
if section != 'DEFAULT' and not conf.has_section(section):
    conf.add_section(section)
conf.set(section, option, value)
with open(path, 'w') as f:
    conf.write(f)
END
}
source devstack/settings
'''


class DevstackPluginTest(testtools.TestCase):

    def setUp(self):
        super().setUp()
        tmp = self.useFixture(fixtures.TempDir()).path
        self.nova_conf = os.path.join(tmp, 'nova-cpu.conf')
        self.tempest_conf = os.path.join(tmp, 'tempest.conf')

    def run_phase(self, phase, **env):
        subprocess.run(
            ['bash', '-c', STAND_INS + 'source devstack/plugin.sh stack ' +
             phase], cwd=TOP, check=True,
            env=dict(os.environ, PY=sys.executable,
                     NOVA_CPU_CONF=self.nova_conf,
                     TEMPEST_CONFIG=self.tempest_conf, **env))

    def read(self, path):
        conf = configparser.ConfigParser(interpolation=None)
        conf.read(path)
        return conf

    def test_post_config_switches_nova_compute_to_the_driver(self):
        self.run_phase('post-config', LIBVIRT_TYPE='qemu',
                       ALTDRIVER_SNAPSHOT_IMAGE_FORMAT='raw',
                       ALTDRIVER_RESCUE_IMAGE_ID='rescue-image')
        conf = self.read(self.nova_conf)
        self.assertEqual('nova_altdriver.AltDriver',
                         conf['DEFAULT']['compute_driver'])
        self.assertEqual({'virt_type': 'qemu',
                          'snapshot_image_format': 'raw',
                          'rescue_image_id': 'rescue-image'},
                         {k: v for k, v in conf['altdriver'].items()
                          if k not in conf.defaults()})

    def test_an_explicit_virt_type_wins(self):
        self.run_phase('post-config', LIBVIRT_TYPE='qemu',
                       ALTDRIVER_VIRT_TYPE='kvm')
        self.assertEqual('kvm',
                         self.read(self.nova_conf)['altdriver']['virt_type'])

    def test_test_config_enables_what_the_driver_supports(self):
        self.run_phase('test-config')
        features = self.read(self.tempest_conf)['compute-feature-enabled']
        for feature in ('rescue', 'stable_rescue', 'snapshot', 'shelve',
                        'pause', 'suspend', 'resize', 'cold_migration',
                        'live_migration'):
            self.assertEqual('True', features[feature], feature)
        self.assertEqual('False', features['change_password'])
        self.assertEqual('True', features['swap_volume'])
        self.assertNotIn('volume_multiattach', features)  # DevStack's own
        self.assertEqual('True', self.read(self.tempest_conf)[
            'volume-feature-enabled']['extend_attached_volume'])

    def test_the_scripts_pass_shellcheck(self):
        subprocess.run(['shellcheck', '-s', 'bash', 'devstack/plugin.sh',
                        'devstack/settings'], cwd=TOP, check=True)
