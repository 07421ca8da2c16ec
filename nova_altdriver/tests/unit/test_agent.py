import uuid

from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives import serialization
import fixtures
import libvirt
from nova import exception
from nova import objects

from nova_altdriver import driver
from nova_altdriver.tests import libvirt_test_driver
from nova_altdriver.tests.unit import base


def rsa_public_key():
    """An OpenSSH RSA public key: only such a key pair gets the password
    encrypted for the metadata service.
    """
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.public_key().public_bytes(
        serialization.Encoding.OpenSSH,
        serialization.PublicFormat.OpenSSH).decode()


class AgentTest(base.TestCase):

    def setUp(self):
        super().setUp()
        self.driver = driver.AltDriver(virtapi=None)
        self.addCleanup(self.driver.cleanup_host, 'compute1')
        self.conn = self.driver.host.get_connection()
        self.passwords = []
        self.useFixture(fixtures.MonkeyPatch(
            'libvirt.virDomain.setUserPassword',
            lambda dom, user, new_pass, flags: self.passwords.append(
                (dom.UUIDString(), user, new_pass, flags)) or 0))

    def running(self, os_type=None, key_data=None, **properties):
        """A running guest's instance, its image with properties."""
        self.last_id = getattr(self, 'last_id', 0) + 1
        instance = objects.Instance(
            uuid=str(uuid.uuid4()), id=self.last_id, os_type=os_type,
            image_ref='',
            key_data=key_data, system_metadata={
                'image_' + name: value
                for name, value in properties.items()})
        self.conn.createXML(libvirt_test_driver.domain_xml(
            instance.uuid, instance.name))
        return instance

    def test_the_password_of_root_through_the_agent(self):
        instance = self.running(hw_qemu_guest_agent='yes')
        self.driver.set_admin_password(instance, 's3cret')
        self.assertEqual([(instance.uuid, 'root', 's3cret', 0)],
                         self.passwords)

    def test_the_user_the_image_names_or_windows_administrator(self):
        named = self.running(hw_qemu_guest_agent='yes',
                             os_admin_user='cloud')
        windows = self.running(os_type='windows', hw_qemu_guest_agent='yes')
        self.driver.set_admin_password(named, 'a')
        self.driver.set_admin_password(windows, 'b')
        self.assertEqual(['cloud', 'Administrator'],
                         [user for _, user, _, _ in self.passwords])

    def test_without_the_agent_in_the_image_nothing_is_asked(self):
        instance = self.running()
        self.assertRaises(exception.QemuGuestAgentNotEnabled,
                          self.driver.set_admin_password, instance, 's3cret')
        self.assertEqual([], self.passwords)

    def refusing(self, code):
        def refuse(dom, user, new_pass, flags):
            error = libvirt.libvirtError('agent said no')
            error.err = (code, libvirt.VIR_FROM_QEMU, 'agent said no', 2,
                         None, None, None, 0, 0)
            raise error
        self.useFixture(fixtures.MonkeyPatch(
            'libvirt.virDomain.setUserPassword', refuse))
        return self.running(hw_qemu_guest_agent='yes')

    def test_an_agent_that_does_not_answer_is_not_implemented(self):
        # (nova's manager: HTTP 501, the server ACTIVE, as in-tree)
        instance = self.refusing(libvirt.VIR_ERR_AGENT_UNRESPONSIVE)
        self.assertRaises(NotImplementedError,
                          self.driver.set_admin_password, instance, 's3cret')

    def test_an_agent_that_cannot_is_an_internal_error(self):
        instance = self.refusing(libvirt.VIR_ERR_INTERNAL_ERROR)
        e = self.assertRaises(exception.InternalError,
                              self.driver.set_admin_password, instance,
                              's3cret')
        self.assertIn("'root'", str(e))
        self.assertIn('agent said no', str(e))
        self.assertNotIn('s3cret', str(e))

    def test_a_guest_gone_is_instance_not_found(self):
        instance = self.running(hw_qemu_guest_agent='yes')
        self.conn.lookupByUUIDString(instance.uuid).destroy()
        self.assertRaises(exception.InstanceNotFound,
                          self.driver.set_admin_password, instance, 's3cret')

    def test_the_password_encrypted_for_an_rsa_key_pair(self):
        saved = []
        instance = self.running(hw_qemu_guest_agent='yes',
                                key_data=rsa_public_key())
        self.useFixture(fixtures.MonkeyPatch(
            'nova.objects.Instance.save', lambda inst: saved.append(
                dict(inst.system_metadata))))
        self.driver.set_admin_password(instance, 's3cret')
        self.assertEqual(1, len(saved))
        self.assertIn('password_0', saved[0])
        self.assertNotIn('s3cret', ''.join(saved[0].values()))
        # none for another kind of key, or none at all
        for key in ('ssh-ed25519 AAAAC3Nza', None):
            self.driver.set_admin_password(self.running(
                hw_qemu_guest_agent='yes', key_data=key), 's3cret')
        self.assertEqual(1, len(saved))

    def test_quiesce_needs_the_agent_in_the_image(self):
        instance = self.running()
        for call in (self.driver.quiesce, self.driver.unquiesce):
            self.assertRaises(exception.QemuGuestAgentNotEnabled, call,
                              None, instance, instance.image_meta)

    def test_quiesce_freezes_and_thaws_through_the_agent(self):
        calls = []
        for name in ('fsFreeze', 'fsThaw'):
            self.useFixture(fixtures.MonkeyPatch(
                'libvirt.virDomain.' + name,
                lambda dom, *args, name=name: calls.append(name) or 1))
        instance = self.running(hw_qemu_guest_agent='yes')
        self.driver.quiesce(None, instance, instance.image_meta)
        self.driver.unquiesce(None, instance, instance.image_meta)
        self.assertEqual(['fsFreeze', 'fsThaw'], calls)
