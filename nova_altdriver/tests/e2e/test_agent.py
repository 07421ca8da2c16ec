"""The guest's QEMU agent on real QEMU: nova's change password sets root's
password inside the guest, and a snapshot its image requires quiesced is
made (one boot for both).
"""

import subprocess

from nova_altdriver.tests.e2e import base
from nova_altdriver.tests.e2e import markers

PASSWORD = 'n3w pass:w0rd'


def crypt_like(password, crypted):
    """password crypted with the method and salt of crypted ($6$salt$...:
    SHA-512, what the guest's chpasswd makes; Python's crypt module is gone
    from 3.13).
    """
    salt = crypted.split('$')[2]
    return subprocess.run(['openssl', 'passwd', '-6', '-salt', salt,
                           '-stdin'], input=password, capture_output=True,
                          text=True, check=True).stdout.strip()


class GuestAgentTest(base.TestCase):

    def test_password_and_quiesced_snapshot_through_the_agent(self):
        self.start_compute()
        image_id = self.upload_guest_image(hw_qemu_guest_agent='yes',
                                           os_require_quiesce='yes')
        server = self.boot(image_id, self.small_flavor())
        self.wait_for_guest(server, 'ALTDRIVER-AGENT started')

        self.api.post_server_action(
            server['id'], {'changePassword': {'adminPass': PASSWORD}})
        console = self.wait_for_guest(server, 'ALTDRIVER-PASSWORD root=')
        (user, crypted), = markers.latest(console).passwords
        self.assertEqual('root', user)
        self.assertTrue(crypted.startswith('$6$'), crypted)
        self.assertEqual(crypted, crypt_like(PASSWORD, crypted))
        self.assertNotEqual(crypted, crypt_like('other', crypted))
        self._wait_for_server_parameter(server, {
            'status': 'ACTIVE', 'OS-EXT-STS:task_state': None})

        # libvirt asks the agent to freeze for the snapshot (its hook runs;
        # the FAT cannot be frozen, nothing is: no thaw follows)
        image = self.create_snapshot(server)
        self.assertEqual('active', image['status'])
        boots = markers.boots(self.console(server))
        self.assertEqual(1, len(boots))
        self.assertEqual(['freeze'], boots[0].fsfreeze)
