"""What a user gets through nova's API when asking for what this driver
does not do (yet): a clear answer (an HTTP error, or a failed instance
action event naming nova_altdriver) and the server left as it was; and the
few small calls it does answer.
"""

import time
import uuid

import libvirt
from lxml import etree
from nova.compute import instance_actions
from nova.compute import task_states
from nova import context as nova_context
from nova import objects
from nova.tests import fixtures as nova_fixtures
from nova.tests.functional.api import client
from nova import utils

from nova_altdriver.tests.functional import base

VOLUME = nova_fixtures.CinderFixture.IMAGE_BACKED_VOL


class UnsupportedTestCase(base.TestCase):

    def setUp(self):
        super().setUp()
        self.image_id = self.upload_image(self.make_qcow2())
        self.flavor_id = self.small_flavor()

    def boot(self, host=None, networks='none'):
        return self._create_server(image_uuid=self.image_id,
                                   flavor_id=self.flavor_id,
                                   networks=networks, host=host)

    def refused(self, expected_code, call, *args, **kwargs):
        """The text of the HTTP error call(*args, **kwargs) answers."""
        ex = self.assertRaises(client.OpenStackApiException,
                               call, *args, **kwargs)
        self.assertEqual(expected_code, ex.response.status_code,
                         ex.response.text)
        return ex.response.text

    def action_event(self, server, action, event):
        """The finished event of the server's latest action named action."""
        def finished():
            actions = [a for a in self.admin_api.get_instance_actions(
                server['id']) if a['action'] == action]
            self.assertTrue(actions, 'no %s action yet' % action)
            events = self.admin_api.get_instance_action_details(
                server['id'], actions[0]['request_id'])['events']
            done = [e for e in events if e['event'] == event and e['result']]
            self.assertTrue(done, events)
            return done[0]
        return self._wait_for_assert(finished,
                                     max_retries=self.STATE_WAIT_RETRIES)

    def assertRefusedEvent(self, server, action, event, *words):
        found = self.action_event(server, action, event)
        self.assertEqual('Error', found['result'])
        for word in words:
            self.assertIn(word, found['details'])

    def assertUnchanged(self, server, status='ACTIVE', host=None):
        expected = {'status': status, 'OS-EXT-STS:task_state': None}
        if host:
            expected['OS-EXT-SRV-ATTR:host'] = host
        return self._wait_for_server_parameter(server, expected)

    def assertStillWorks(self, server):
        self._stop_server(server)
        self._start_server(server)


class VolumeTest(UnsupportedTestCase):
    """Volumes other than Ceph RBD ones (the fixture's are of a kind
    nobody attaches): refused by name, the volume available again.
    """

    def setUp(self):
        super().setUp()
        # The base harness keeps no handle on its Cinder fixture.
        self.cinder = self.useFixture(nova_fixtures.CinderFixture(self))
        self.compute = self.start_compute()
        self.server = self.boot()

    def assertNotAttached(self):
        self.assertEqual({}, self.cinder.volume_to_attachment[VOLUME])
        self.assertEqual('available',
                         self.cinder.fake_get(None, VOLUME)['status'])
        self.assertEqual([], self.api.get_server_volumes(self.server['id']))
        self.assertEqual(
            1, len(self.domain_xml(self.compute, self.server).findall(
                'devices/disk')))

    def test_attach_fails_visibly_and_the_volume_stays_available(self):
        # 2.101 and later: 202, the attach runs afterwards.
        self.api.post_server_volume(
            self.server['id'], {'volumeAttachment': {'volumeId': VOLUME}})
        self.assertRefusedEvent(self.server, instance_actions.ATTACH_VOLUME,
                                'compute_attach_volume', 'nova_altdriver',
                                'Ceph RBD volumes only')
        self.assertUnchanged(self.server)
        self.assertNotAttached()
        self.assertStillWorks(self.server)

    def test_attach_with_an_older_microversion(self):
        # Before 2.101 nova answers with the device name it reserved, before
        # the compute host attaches.
        with utils.temporary_mutation(self.api, microversion='2.100'):
            attachment = self.api.post_server_volume(
                self.server['id'], {'volumeAttachment': {'volumeId': VOLUME}}
            ).body['volumeAttachment']
        self.assertEqual(VOLUME, attachment['volumeId'])
        self.assertRefusedEvent(self.server, instance_actions.ATTACH_VOLUME,
                                'compute_attach_volume', 'nova_altdriver')
        self.assertUnchanged(self.server)
        self.assertNotAttached()

    def test_detach_and_swap_of_a_volume_never_attached(self):
        # Such a volume never gets attached, so it never reaches the
        # driver's detach, swap or extend: nova itself answers.
        self.refused(404, self.api.delete_server_volume,
                     self.server['id'], VOLUME)
        self.refused(404, self.admin_api.put_server_volume,
                     self.server['id'], VOLUME,
                     nova_fixtures.CinderFixture.SWAP_NEW_VOL)
        self.assertUnchanged(self.server)

    def test_boot_from_volume_names_the_driver(self):
        body = self._build_server(image_uuid='', flavor_id=self.flavor_id,
                                  networks='none')
        body['block_device_mapping_v2'] = [{
            'boot_index': 0, 'uuid': VOLUME, 'source_type': 'volume',
            'destination_type': 'volume'}]
        server = self.api.post_server({'server': body})
        # A build that cannot start ends in ERROR, as with any driver.
        server = self._wait_for_state_change(server, 'ERROR')
        self.assertIn('nova_altdriver attaches Ceph RBD volumes only',
                      server['fault']['message'])
        self.assertEqual({}, self.cinder.volume_to_attachment[VOLUME])

    def test_a_volume_attached_while_offloaded_fails_the_unshelve(self):
        # nova attaches to a shelved-offloaded server without any compute
        # host; the driver only meets the volume at unshelve.
        self._shelve_server(self.server)
        self.api.post_server_volume(
            self.server['id'], {'volumeAttachment': {'volumeId': VOLUME}})
        self.api.post_server_action(self.server['id'], {'unshelve': None})
        self.assertRefusedEvent(self.server, instance_actions.UNSHELVE,
                                'compute_unshelve_instance', 'nova_altdriver')
        self.assertUnchanged(self.server, 'SHELVED_OFFLOADED')
        # The way out: detach, unshelve.
        self.api.delete_server_volume(self.server['id'], VOLUME)
        self._unshelve_server(self.server)


class InterfaceTest(UnsupportedTestCase):
    """Interfaces where libvirt has no hot plug (its test driver): the
    attach and the detach fail visibly, the server and its ports as they
    were. The e2e tier attaches and detaches for real.
    """

    def setUp(self):
        super().setUp()
        self.compute = self.start_compute()
        self.port = self.neutron_port()
        self.server = self.boot(networks=[{'port': self.port['id']}])

    def nics(self, inactive=False):
        dom = self.hypervisor_of(self.compute).lookupByUUIDString(
            self.server['id'])
        return etree.fromstring(dom.XMLDesc(
            libvirt.VIR_DOMAIN_XML_INACTIVE if inactive else 0)).findall(
                'devices/interface')

    def cached_ports(self):
        instance = objects.Instance.get_by_uuid(
            nova_context.get_admin_context(), self.server['id'])
        return [vif['id'] for vif in instance.get_network_info()]

    def test_an_attach_libvirt_refuses_gives_the_port_back(self):
        other = self.neutron_port(mac='fa:16:3e:00:56:78')
        text = self.refused(500, self.api.attach_interface, self.server['id'],
                            {'interfaceAttachment': {'port_id': other['id']}})
        self.assertIn('Failed to attach network adapter', text)
        self.assertIn('virDomainAttachDeviceFlags', self.stdlog.logger.output)
        self.assertEqual([self.port['id']], self.cached_ports())
        self.assertEqual('', self.neutron.show_port(
            other['id'])['port']['device_id'])
        self.assertEqual(1, len(self.nics()))
        self.assertEqual(1, len(self.nics(inactive=True)))
        self.assertUnchanged(self.server)
        self.assertStillWorks(self.server)

    def test_a_detach_libvirt_refuses_keeps_the_port(self):
        self.api.detach_interface(self.server['id'], self.port['id'])
        self.assertRefusedEvent(
            self.server, instance_actions.DETACH_INTERFACE,
            'compute_detach_interface', 'Failed to detach network adapter')
        self.assertIn('virDomainDetachDeviceFlags', self.stdlog.logger.output)
        self.assertUnchanged(self.server)
        self.assertEqual([self.port['id']], self.cached_ports())
        self.assertEqual(1, len(self.nics()))
        self.assertEqual(1, len(self.nics(inactive=True)))
        self.assertStillWorks(self.server)

    def test_a_port_deleted_in_neutron_stays_while_the_guest_has_it(self):
        # nova forgets a port Neutron deleted once the driver took it out
        # of the guest; here libvirt cannot, so the server keeps both.
        self.admin_api.create_server_external_events([{
            'name': 'network-vif-deleted', 'server_uuid': self.server['id'],
            'tag': self.port['id']}])
        self._wait_for_assert(lambda: self.assertIn(
            'Detach interface failed, port_id=%s' % self.port['id'],
            self.stdlog.logger.output), max_retries=self.STATE_WAIT_RETRIES)
        self.assertEqual([self.port['id']], self.cached_ports())
        self.assertEqual(1, len(self.nics()))
        self.assertUnchanged(self.server)


class GuestTest(UnsupportedTestCase):

    def setUp(self):
        super().setUp()
        self.compute = self.start_compute()
        self.server = self.boot()

    def console(self, protocol, console_type):
        return self.api.api_post(
            '/servers/%s/remote-consoles' % self.server['id'],
            {'remote_console': {'protocol': protocol, 'type': console_type}})

    def test_other_consoles_are_refused(self):
        self.flags(enabled=True, group='mks')
        text = self.refused(400, self.console, 'mks', 'webmks')
        self.assertIn('nova_altdriver offers no MKS console', text)
        # RDP is gone from nova itself.
        self.refused(400, self.console, 'rdp', 'rdp-html5')
        self.assertUnchanged(self.server)

    def test_trigger_crash_dump_sends_an_nmi(self):
        self.api.post_server_action(self.server['id'],
                                    {'trigger_crash_dump': None})
        event = self.action_event(self.server,
                                  instance_actions.TRIGGER_CRASH_DUMP,
                                  'compute_trigger_crash_dump')
        self.assertEqual('Success', event['result'])
        self.assertUnchanged(self.server)

    def test_crash_dump_of_a_guest_not_running_says_so(self):
        self.admin_api.post_server_action(self.server['id'], {
            'os-resetState': {'state': 'error'}})
        self.hypervisor_of(self.compute).lookupByUUIDString(
            self.server['id']).destroy()
        self.api.post_server_action(self.server['id'],
                                    {'trigger_crash_dump': None})
        self.assertRefusedEvent(self.server,
                                instance_actions.TRIGGER_CRASH_DUMP,
                                'compute_trigger_crash_dump', 'is not running')
        self.assertUnchanged(self.server, 'ERROR')

    def test_inject_network_info_has_nothing_to_inject(self):
        # The guest reads its network configuration from DHCP, the metadata
        # service or the config drive: nothing to push (the in-tree libvirt
        # driver does nothing either). nova records no action for it.
        results = []
        inject = self.compute.manager.inject_network_info

        def recorded(context, instance):
            try:
                results.append(inject(context, instance))
            except Exception as e:
                results.append(e)
                raise

        self.compute.manager.inject_network_info = recorded
        self.admin_api.post_server_action(self.server['id'],
                                          {'injectNetworkInfo': None})
        self._wait_for_assert(lambda: self.assertEqual([None], results),
                              max_retries=self.STATE_WAIT_RETRIES)
        self.assertUnchanged(self.server)
        self.assertEqual([], objects.InstanceFaultList.get_by_instance_uuids(
            nova_context.get_admin_context(), [self.server['id']]).objects)

    def test_shares_are_refused_up_front(self):
        self._stop_server(self.server)
        text = self.refused(409, self.api.post_server_share,
                            self.server['id'],
                            {'share': {'share_id': str(uuid.uuid4())}})
        self.assertIn('not configured correctly', text)
        self.assertUnchanged(self.server, 'SHUTOFF')

    def test_soft_delete_and_restore_power_off_and_on(self):
        self.flags(reclaim_instance_interval=3600)
        self.api.delete_server(self.server['id'])
        self._wait_for_state_change(self.server, 'SOFT_DELETED')
        self.assertFalse(self.hypervisor_of(self.compute).lookupByUUIDString(
            self.server['id']).isActive())
        self.api.post_server_action(self.server['id'], {'restore': None})
        self._wait_for_state_change(self.server, 'ACTIVE')
        self.assertTrue(self.hypervisor_of(self.compute).lookupByUUIDString(
            self.server['id']).isActive())

    def test_a_long_reboot_is_left_to_the_manager(self):
        # reboot_timeout: the manager asks the driver about reboots running
        # longer; a reboot here is one synchronous manager call, so there is
        # nothing to do.
        self.flags(reboot_timeout=1)
        ctxt = nova_context.get_admin_context()
        instance = objects.Instance.get_by_uuid(ctxt, self.server['id'])
        instance.task_state = task_states.REBOOTING
        instance.save()
        time.sleep(1.5)  # older than reboot_timeout
        self.compute.manager._poll_rebooting_instances(ctxt)
        self._wait_for_server_parameter(
            self.server, {'status': 'REBOOT',
                          'OS-EXT-STS:task_state': 'rebooting'})


class HostTest(UnsupportedTestCase):

    def setUp(self):
        super().setUp()
        self.compute = self.start_compute()
        self.admin_api.microversion = '2.42'  # os-hosts went away in 2.43

    def test_host_power_and_maintenance_actions_answer_501(self):
        for action in ('reboot', 'shutdown', 'startup'):
            self.refused(501, self.admin_api.api_get,
                         '/os-hosts/%s/%s' % (self.compute.host, action))
        self.refused(501, self.admin_api.api_put,
                     '/os-hosts/%s' % self.compute.host,
                     {'maintenance_mode': 'enable'})
