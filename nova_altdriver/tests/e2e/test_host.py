"""nova-compute with this driver on the real libvirtd + QEMU."""

import os
import subprocess
import uuid

from lxml import etree
from nova import context as nova_context
import os_resource_classes as orc

from nova_altdriver.tests.e2e import base


class RealHostTest(base.TestCase):

    def boot_guest_directly(self, guest_uuid):
        """Starts the test guest behind nova's back (spawn comes later) and
        returns its console log path.
        """
        name = 'altdriver-e2e-%s' % guest_uuid[:8]
        disk = os.path.join(self.instances_path, name + '.qcow2')
        subprocess.run(
            ['qemu-img', 'create', '-q', '-f', 'qcow2', '-F', 'qcow2', '-b',
             os.path.join(base.GUEST_DIR, 'disk.qcow2'), disk], check=True)
        console = self.console_log_path(name)
        domain = etree.fromstring("""
<domain type='qemu'>
  <name>%s</name><uuid>%s</uuid>
  <memory unit='MiB'>256</memory><vcpu>1</vcpu>
  <os><type arch='x86_64' machine='pc'>hvm</type></os>
  <features><acpi/></features>
  <devices>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='%s'/><target dev='vda' bus='virtio'/>
    </disk>
    <serial type='file'><source path='%s'/></serial>
  </devices>
</domain>""" % (name, guest_uuid, disk, console))
        self.remove_domain_at_cleanup(guest_uuid)
        self.conn.createXML(etree.tostring(domain, encoding='unicode'))
        return console

    def test_compute_reports_the_real_hypervisor(self):
        self.start_compute(nodename='')  # the name libvirt reports
        node_info = self.conn.getInfo()
        nodename = self.conn.getHostname()

        hypervisors = self.admin_api.api_get(
            '/os-hypervisors/detail').body['hypervisors']
        self.assertEqual([nodename],
                         [h['hypervisor_hostname'] for h in hypervisors])
        self.assertEqual('QEMU', hypervisors[0]['hypervisor_type'])
        self.assertEqual(self.conn.getVersion(),
                         hypervisors[0]['hypervisor_version'])

        inventory = self._get_provider_inventory(
            self._get_provider_uuid_by_name(nodename))
        self.assertEqual(node_info[2], inventory[orc.VCPU]['total'])
        self.assertEqual(node_info[1], inventory[orc.MEMORY_MB]['total'])

    def test_driver_survives_a_libvirtd_restart(self):
        compute = self.start_compute()
        driver = self.driver_of(compute)
        ctxt = nova_context.get_admin_context()
        compute.manager.update_available_resource(ctxt)
        received = self.observe_lifecycle_events(compute)

        base.restart_libvirtd()
        self.conn = self.useFixture(base.Connection()).conn

        # The next calls reconnect, and events flow on the new connection.
        self.assertEqual([], driver.list_instance_uuids())
        compute.manager.update_available_resource(ctxt)
        guest_uuid = str(uuid.uuid4())
        console = self.boot_guest_directly(guest_uuid)
        self._wait_for_assert(lambda: self.assertIn(
            (guest_uuid, 'Started'), received), max_retries=40)
        self.assertEqual([guest_uuid], driver.list_instance_uuids())
        self.wait_for_console(console, 'ALTDRIVER-READY')

    def test_guest_power_off_reaches_nova_as_an_event(self):
        compute = self.start_compute()
        received = self.observe_lifecycle_events(compute)
        guest_uuid = str(uuid.uuid4())
        console = self.boot_guest_directly(guest_uuid)
        self.wait_for_console(console, 'ALTDRIVER-READY')

        # The guest answers the ACPI power button by powering itself off.
        self.conn.lookupByUUIDString(guest_uuid).shutdown()
        self.wait_for_console(console, 'ALTDRIVER-ACPI-POWER')
        # (QEMU guests also report Resumed when their vCPUs first run.)
        self._wait_for_assert(lambda: self.assertEqual(
            [(guest_uuid, 'Started'), (guest_uuid, 'Stopped')],
            [e for e in received if e[1] in ('Started', 'Stopped')]),
            max_retries=40)
