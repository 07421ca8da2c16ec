"""Change password through nova's API (POST changePassword, ``openstack
server set --root-password``) on libvirt's test driver, whose domains take
any password: what nova is told and the server's state. A guest's agent
setting it for real: e2e tier (test_agent.py there).
"""

import fixtures
import libvirt
from nova.compute import instance_actions

from nova_altdriver.tests.functional import test_unsupported


class ChangePasswordTest(test_unsupported.UnsupportedTestCase):

    def setUp(self):
        super().setUp()
        self.compute = self.start_compute()
        self.agent_image_id = self.upload_image(
            self.make_qcow2('agent.qcow2'), hw_qemu_guest_agent='yes')

    def boot_with_agent(self, **properties):
        image_id = self.agent_image_id
        if properties:
            image_id = self.upload_image(self.make_qcow2('props.qcow2'),
                                         hw_qemu_guest_agent='yes',
                                         **properties)
        return self._create_server(image_uuid=image_id,
                                   flavor_id=self.flavor_id, networks='none')

    def change_password(self, server, password='n3w-pass'):
        return self.api.post_server_action(
            server['id'], {'changePassword': {'adminPass': password}})

    def agent_answers(self, answer):
        """libvirt's setUserPassword replaced by answer(user, password)."""
        self.useFixture(fixtures.MonkeyPatch(
            'libvirt.virDomain.setUserPassword',
            lambda dom, user, password, flags: answer(user, password)))

    def agent_fails(self, code):
        def fail(user, password):
            error = libvirt.libvirtError('agent trouble')
            error.err = (code, libvirt.VIR_FROM_QEMU, 'agent trouble', 2,
                         None, None, None, 0, 0)
            raise error
        self.agent_answers(fail)

    def test_the_password_goes_to_the_guest_agent(self):
        asked = []
        self.agent_answers(lambda user, password: asked.append(
            (user, password)) or 0)
        server = self.boot_with_agent()
        named = self.boot_with_agent(os_admin_user='cloud')
        self.change_password(server)
        self.change_password(named, 'other')
        for each in (server, named):
            event = self.action_event(each, instance_actions.CHANGE_PASSWORD,
                                      'compute_set_admin_password')
            self.assertEqual('Success', event['result'])
            self.assertUnchanged(each)
        self.assertEqual([('root', 'n3w-pass'), ('cloud', 'other')], asked)

    def test_an_image_without_the_agent_is_refused(self):
        server = self.boot()
        text = self.refused(409, self.change_password, server)
        self.assertIn('QEMU guest agent is not enabled', text)
        self.assertRefusedEvent(server, instance_actions.CHANGE_PASSWORD,
                                'compute_set_admin_password')
        self.assertUnchanged(server)

    def test_an_agent_that_does_not_answer(self):
        self.agent_fails(libvirt.VIR_ERR_AGENT_UNRESPONSIVE)
        server = self.boot_with_agent()
        text = self.refused(501, self.change_password, server)
        self.assertIn('Unable to set password on instance', text)
        self.assertUnchanged(server)

    def test_an_agent_that_cannot_set_it(self):
        self.agent_fails(libvirt.VIR_ERR_INTERNAL_ERROR)
        server = self.boot_with_agent()
        text = self.refused(409, self.change_password, server)
        self.assertIn('error setting admin password', text)
        self.assertNotIn('n3w-pass', text)
        self.assertUnchanged(server)

    def test_a_stopped_server_is_refused_by_nova(self):
        server = self.boot_with_agent()
        self._stop_server(server)
        self.refused(409, self.change_password, server)
        self.assertUnchanged(server, status='SHUTOFF')
