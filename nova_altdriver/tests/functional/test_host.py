"""nova-compute starts with the driver and reports its host."""

import os
import uuid

import os_resource_classes as orc

from nova_altdriver.tests.functional import base
from nova_altdriver.tests import libvirt_test_driver


class HostReportTest(base.TestCase):

    def test_compute_reports_the_hypervisor_to_nova_and_placement(self):
        self.flags(cpu_allocation_ratio=4.0, reserved_host_memory_mb=512)
        compute = self.start_compute(nodename='node1')
        self.assertIsInstance(self.driver_of(compute),
                              __import__('nova_altdriver').driver.AltDriver)

        services = self.admin_api.get_services(binary='nova-compute')
        self.assertEqual(['up'], [s['state'] for s in services])
        hypervisors = self.admin_api.api_get(
            '/os-hypervisors/detail').body['hypervisors']
        self.assertEqual(['node1'],
                         [h['hypervisor_hostname'] for h in hypervisors])

        rp_uuid = self._get_provider_uuid_by_name('node1')
        inventory = self._get_provider_inventory(rp_uuid)
        self.assertEqual(self.HOST_CPUS, inventory[orc.VCPU]['total'])
        self.assertEqual(4.0, inventory[orc.VCPU]['allocation_ratio'])
        self.assertEqual(self.HOST_MEMORY_MB,
                         inventory[orc.MEMORY_MB]['total'])
        self.assertEqual(512, inventory[orc.MEMORY_MB]['reserved'])
        st = os.statvfs(self.instances_path)
        self.assertEqual(st.f_frsize * st.f_blocks // 2 ** 30,
                         inventory[orc.DISK_GB]['total'])
        # The capabilities the driver declares become traits.
        self.assertIn('COMPUTE_IMAGE_TYPE_QCOW2',
                      self._get_provider_traits(rp_uuid))

    def test_restart_keeps_the_same_node(self):
        compute = self.start_compute(nodename='node1')
        rp_uuid = self._get_provider_uuid_by_name('node1')

        self.restart_compute_service(compute, keep_hypervisor_state=False)

        self.assertEqual(rp_uuid, self._get_provider_uuid_by_name('node1'))
        hypervisors = self.admin_api.api_get(
            '/os-hypervisors').body['hypervisors']
        self.assertEqual(1, len(hypervisors))
        services = self.admin_api.get_services(binary='nova-compute')
        self.assertEqual(['up'], [s['state'] for s in services])

    def test_lifecycle_events_reach_the_compute_manager(self):
        compute = self.start_compute()
        received = self.observe_lifecycle_events(compute)
        conn = self.driver_of(compute).host.get_connection()
        guest_uuid = str(uuid.uuid4())
        dom = conn.defineXML(
            libvirt_test_driver.domain_xml(guest_uuid, 'instance-0000abcd'))
        dom.create()
        dom.destroy()

        self._wait_for_assert(lambda: self.assertEqual(
            [(guest_uuid, 'Started'), (guest_uuid, 'Stopped')], received))
