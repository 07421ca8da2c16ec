"""Evacuation on real QEMU: two libvirt daemons on this machine sharing the
instances directory; the guest's data survives and the returning host
removes its stale guest but not the shared disk."""

import os

import libvirt

from nova_altdriver.tests.e2e import base


class EvacuateTest(base.TestCase):

    def test_evacuate_a_real_guest_on_shared_storage(self):
        uri2 = self.second_libvirt_host()
        compute1 = self.start_compute('compute1')
        flavor = self.small_flavor()
        server = self.boot(self.upload_guest_image(), flavor)
        self.remove_domain_at_cleanup(server['id'], uri=uri2)
        self.wait_for_guest(server, 'ALTDRIVER-READY bootcount=1')
        root = os.path.join(self.instance_dir(server), 'disk')

        # compute1's host dies, and its guest with it.
        compute1.stop()
        self.force_down('compute1')
        self.conn.lookupByUUIDString(server['id']).destroy()
        self.start_compute('compute2', uri=uri2)

        self._evacuate_server(server, expected_host='compute2')
        self._start_server(server)
        # The guest boots on the second daemon from the very same disk: its
        # boot counter goes on.
        self.wait_for_guest(server, 'ALTDRIVER-READY bootcount=2')
        conn2 = libvirt.open(uri2)
        self.addCleanup(conn2.close)
        self.assertTrue(conn2.lookupByUUIDString(server['id']).isActive())

        # compute1 comes back: its stale guest goes, the shared disk stays.
        self.restart_compute_service(compute1)
        self.assertRaises(libvirt.libvirtError, self.conn.lookupByUUIDString,
                          server['id'])
        self.assertTrue(os.path.exists(root))
        self.assertTrue(conn2.lookupByUUIDString(server['id']).isActive())
