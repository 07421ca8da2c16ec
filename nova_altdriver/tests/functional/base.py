"""Functional tier: nova's own functional harness driving this driver.

Real nova API, conductor, scheduler and compute manager in one process,
with real Placement, over libvirt's built-in test driver: every compute host
gets a private hypervisor of its own.
"""

import copy
import os
import subprocess
import sys
import uuid

import fixtures
from lxml import etree
from nova.tests.functional import integrated_helpers

from nova_altdriver import conf  # noqa: F401 (registers [altdriver])
from nova_altdriver.tests import libvirt_test_driver


class TestCase(integrated_helpers.ProviderUsageBaseTestCase):

    compute_driver = 'nova_altdriver.AltDriver'
    # libvirt's test driver hypervisor of each compute host
    HOST_CPUS = 8
    HOST_MEMORY_MB = 16384
    # nova's helpers wait 5 s for a state change; a busy 2-core machine
    # needs more (0.5 s a retry).
    STATE_WAIT_RETRIES = 60

    def setUp(self):
        # The nova wheel installs its api-paste.ini under <prefix>/etc/nova,
        # not where the API fixture looks (beside nova's source tree).
        self.flags(api_paste_config=os.path.join(
            sys.prefix, 'etc', 'nova', 'api-paste.ini'), group='wsgi')
        super().setUp()
        self._keep_uploaded_image_data()
        self.instances_path = self.useFixture(fixtures.TempDir()).path
        self.flags(instances_path=self.instances_path)
        self.flags(virt_type='qemu', stopped_event_delay=0.2,
                   group='altdriver')
        self._state_dir = self.useFixture(fixtures.TempDir()).path
        # nova's fixtures forbid reading /sys: a host with cgroups' CPU
        # controller, as nova's own functional tests have
        self.useFixture(fixtures.MockPatch(
            'nova_altdriver.host.Host.has_cpu_controller',
            return_value=True))

    def _wait_for_server_parameter(self, server, expected_params,
                                   max_retries=None, **kwargs):
        return super()._wait_for_server_parameter(
            server, expected_params,
            max_retries=max_retries or self.STATE_WAIT_RETRIES, **kwargs)

    def _wait_for_state_change(self, server, expected_status,
                               max_retries=None, **kwargs):
        return super()._wait_for_state_change(
            server, expected_status, max_retries=max_retries, **kwargs)

    def _keep_uploaded_image_data(self):
        """nova's Glance fixture drops the bytes of image uploads (its fake
        drivers upload none); keep them, as Glance would, in image_data
        ({image id: bytes}), which downloads read first: snapshot and shelve
        images can be inspected, replaced and booted.
        """
        glance, self.image_data = self.glance, {}
        update, download = glance.update, glance.download

        def update_keeping_data(context, image_id, metadata, data=None,
                                purge_props=False):
            image = update(context, image_id, metadata,
                           purge_props=purge_props)
            if data is not None:
                self.image_data[image_id] = data.read()
                glance.images[image_id]['size'] = len(
                    self.image_data[image_id])
            return image

        def download_kept(context, image_id, data=None, dst_path=None,
                          trusted_certs=None):
            if image_id not in self.image_data:
                return download(context, image_id, data=data,
                                dst_path=dst_path, trusted_certs=trusted_certs)
            glance.show(context, image_id)  # ImageNotFound once deleted
            if data is None:
                with open(dst_path, 'wb') as f:
                    f.write(self.image_data[image_id])
            else:
                data.write(self.image_data[image_id])

        glance.update = update_keeping_data
        glance.download = download_kept

    def hypervisor_uri(self):
        """The URI of a new private test-driver hypervisor."""
        return libvirt_test_driver.node_uri(
            self._state_dir, cpus=self.HOST_CPUS,
            memory_mb=self.HOST_MEMORY_MB)

    def start_compute(self, host='compute1', uri=None, nodename=None,
                      instances_path=None, migration_addr=None):
        """Starts nova-compute on a hypervisor of its own, its node named
        like the host unless told otherwise ('' for the driver's default).

        The driver reads these options once, when it is created, so several
        compute services in one process each keep their own.
        """
        self.flags(connection_uri=uri or self.hypervisor_uri(),
                   hypervisor_hostname=host if nodename is None else nodename,
                   migration_inbound_addr=migration_addr, group='altdriver')
        self.flags(instances_path=instances_path or self.instances_path)
        with self._node_identity(host):
            self.computes[host] = self.start_service('compute', host=host)
        return self.computes[host]

    def _keep_hypervisor_state(self, compute):
        """The test driver forgets its guests with the connection that
        stopping the service closes; a libvirtd would not: write them down
        for the next connection.
        """
        host = self.driver_of(compute).host
        if host.uri.startswith('test://'):
            libvirt_test_driver.persist_domains(host.get_connection(),
                                                host.uri)

    def stop_compute(self, compute):
        self._keep_hypervisor_state(compute)
        compute.stop()

    def restart_compute_service(self, compute, keep_hypervisor_state=True):
        if keep_hypervisor_state:
            self._keep_hypervisor_state(compute)
        with self._node_identity(compute.host):
            return super().restart_compute_service(compute,
                                                   keep_hypervisor_state)

    def force_down(self, host):
        """What an operator does to a dead compute host (and evacuation
        requires).
        """
        service = self.admin_api.get_services(host=host,
                                              binary='nova-compute')[0]
        self.admin_api.api_put('/os-services/%s' % service['id'],
                               {'forced_down': True})

    @staticmethod
    def _node_identity(host):
        """Each host its own node identity (a file on a real host)."""
        return fixtures.MockPatch(
            'nova.virt.node.get_local_node_uuid',
            return_value=str(uuid.uuid5(uuid.NAMESPACE_DNS, host)))

    @staticmethod
    def driver_of(compute):
        return compute.manager.driver

    def hypervisor_of(self, compute):
        """The libvirt connection a compute service's driver uses."""
        return self.driver_of(compute).host.get_connection()

    def domain_xml(self, compute, server):
        """The live domain XML of a server (lxml)."""
        dom = self.hypervisor_of(compute).lookupByUUIDString(server['id'])
        return etree.fromstring(dom.XMLDesc(0))

    def upload_image(self, path, disk_format='qcow2', **properties):
        """A Glance image holding the bytes of file path; returns its id."""
        with open(path, 'rb') as data:
            image = self.glance.create(None, {
                'name': os.path.basename(path),
                'status': 'active',
                'disk_format': disk_format,
                # Glance's rule: an Amazon disk format, the same container
                'container_format': (disk_format if disk_format in (
                    'ami', 'aki', 'ari') else 'bare'),
                'size': os.path.getsize(path),
                'min_disk': 0, 'min_ram': 0,
                'visibility': 'public',
                'properties': properties,
            }, data=data)
        return image['id']

    def make_qcow2(self, name='image.qcow2', size='64M', *options):
        """A small, valid (empty) qcow2 image file."""
        path = os.path.join(self._state_dir, name)
        subprocess.run(['qemu-img', 'create', '-q', '-f', 'qcow2'] +
                       [o for opt in options for o in ('-o', opt)] +
                       [path, size], check=True)
        return path

    def small_flavor(self, ephemeral=0, swap=0, extra_spec=None):
        """256 MiB, one vCPU, 1 GiB root disk: enough for the test guest."""
        return self._create_flavor(memory_mb=256, vcpu=1, disk=1,
                                   ephemeral=ephemeral, swap=swap,
                                   extra_spec=extra_spec)

    def neutron_port(self, vif_type='tap', status='ACTIVE',
                     mac='fa:16:3e:00:12:34'):
        """A port of the Neutron fixture bound with vif_type."""
        port = copy.deepcopy(self.neutron.port_1)
        del port['id']
        port.update({'binding:vif_type': vif_type,
                     'mac_address': mac, 'status': status})
        new = self.neutron.create_port()['port']
        return self.neutron.update_port(new['id'], {'port': port})['port']

    def create_snapshot(self, server, name='snapshot'):
        """Snapshots server through the API; returns the active image."""
        image_id = self.api.post_server_action(
            server['id'], {'createImage': {'name': name}})['image_id']
        self._wait_for_assert(lambda: self.assertEqual(
            'active', self.glance.show(None, image_id)['status']),
            max_retries=self.STATE_WAIT_RETRIES)
        self._wait_for_assert(lambda: self.assertIn(
            image_id, self.image_data),
            max_retries=self.STATE_WAIT_RETRIES)
        return self.glance.show(None, image_id)

    def instance_dir(self, server):
        return os.path.join(self.instances_path, server['id'])

    def base_dir(self):
        return os.path.join(self.instances_path, '_base')

    @staticmethod
    def observe_lifecycle_events(compute):
        """[(instance uuid, event name)] the compute manager receives from
        now on; the real handler still runs (the service dies with the
        test, so the observer needs no removal).
        """
        received = []
        handle = compute.manager.handle_lifecycle_event

        def record(event):
            received.append((event.get_instance_uuid(), event.get_name()))
            return handle(event)

        compute.manager.handle_lifecycle_event = record
        return received
