import errno
import uuid

import libvirt
from nova import exception

from nova_altdriver import domain
from nova_altdriver import guest as guest_mod
from nova_altdriver.tests import builders
from nova_altdriver.tests import libvirt_test_driver
from nova_altdriver.tests.unit import base
from nova_altdriver import volumes

DISK_XML = """<domain><devices><disk type='file' device='disk'>
  <source file='/i/disk'/><target dev='vda' bus='virtio'/>%s
</disk></devices></domain>"""


class DisksTest(base.TestCase):

    def test_the_disks_a_definition_was_built_with(self):
        disks = [domain.Disk('/i/disk', 'qcow2', 'vda', 'virtio'),
                 domain.Disk('/i/disk.local', 'raw', 'sda', 'scsi'),
                 domain.Disk(None, 'raw', 'hda', 'ide', device='cdrom')]
        xml = domain.build(builders.instance(), builders.image_meta(), disks)
        self.assertEqual(disks, guest_mod.disks_of(xml))
        self.assertFalse(guest_mod.is_rescue_definition(xml))

    def test_volumes_as_they_were_built(self):
        disks = [volumes.volume_disk(builders.rbd_connection_info(
            'a1b2c3d4-0000-4000-8000-00000000000%d' % n, multiattach=n > 1,
            access_mode='ro' if n > 2 else 'rw',
            qos_specs={'total_iops_sec': 100} if n == 2 else None),
            'vd' + 'abc'[n - 1], 'virtio', boot_order=n) for n in (1, 2, 3)]
        xml = domain.build(builders.instance(), builders.image_meta(), disks)
        self.assertEqual(disks, guest_mod.disks_of(xml))

    def test_a_rescue_definition_by_its_disk_files_only(self):
        instance = builders.instance()
        instance.display_name = 'disk.rescue'
        rescue = domain.Disk('/i/disk.rescue', 'qcow2', 'vda', 'virtio')
        root = domain.Disk('/i/disk', 'qcow2', 'vdb', 'virtio')
        self.assertTrue(guest_mod.is_rescue_definition(domain.build(
            instance, builders.image_meta(), [rescue, root])))
        self.assertFalse(guest_mod.is_rescue_definition(domain.build(
            instance, builders.image_meta(), [root])))


class BlockJobDomain(object):
    """A domain in the middle of an active block commit (libvirt's test
    driver has no block jobs, and the race cannot be timed for real).
    """

    def __init__(self, cur, end, mirror):
        self.info = {'type': 4, 'bandwidth': 0, 'cur': cur, 'end': end}
        self.mirror = mirror

    def UUIDString(self):
        return '8b4e7a53-9f0c-4b8e-9a51-2f6d3c1e0a77'

    def blockJobInfo(self, target, flags):
        return self.info

    def XMLDesc(self, flags):
        return DISK_XML % self.mirror


class BlockJobReadyTest(base.TestCase):

    def ready(self, cur, end, mirror):
        return guest_mod.Guest(BlockJobDomain(cur, end, mirror)) \
            .block_job_ready('vda')

    def test_copied_is_not_yet_ready_for_pivot(self):
        # cur == end comes before QEMU switches the job to ready: pivoting
        # then fails with "not ready for pivot yet" (nova bug 1530275)
        self.assertFalse(self.ready(
            100, 100, "<mirror type='file' job='active-commit'/>"))
        self.assertFalse(self.ready(
            100, 100, "<mirror type='file' job='active-commit' ready='no'/>"))

    def test_ready_when_libvirt_says_so(self):
        self.assertTrue(self.ready(
            100, 100,
            "<mirror type='file' job='active-commit' ready='yes'/>"))

    def test_not_ready_while_copying(self):
        self.assertFalse(self.ready(
            50, 100, "<mirror type='file' job='active-commit' ready='yes'/>"))
        self.assertFalse(self.ready(0, 0, ''))

    def test_a_job_that_ended_without_getting_ready_is_an_error(self):
        # An aborted or failed commit leaves no job: waiting for it to be
        # ready would never end.
        domain = BlockJobDomain(0, 0, '')
        domain.info = {}
        self.assertRaises(guest_mod.BlockJobEnded,
                          guest_mod.Guest(domain).block_job_ready, 'vda')


class BusyDomain(BlockJobDomain):
    """QEMU stuck in I/O: destroy fails with EBUSY a few times (cannot be
    brought about on purpose).
    """

    def __init__(self, failures):
        super().__init__(0, 0, '')
        self.failures = failures
        self.calls = 0

    def destroy(self):
        self.calls += 1
        if self.calls <= self.failures:
            error = libvirt.libvirtError('Failed to terminate process')
            error.err = (libvirt.VIR_ERR_SYSTEM_ERROR, libvirt.VIR_FROM_QEMU,
                         'Device or resource busy', 2, None, None, None,
                         errno.EBUSY, 0)
            raise error


class GoneGuestTest(base.TestCase):

    def setUp(self):
        super().setUp()
        self.useFixture(base.NoSleep())
        self.conn = libvirt.open(self.uri)
        self.addCleanup(self.conn.close)
        self.uuid = str(uuid.uuid4())
        self.dom = self.conn.defineXML(libvirt_test_driver.domain_xml(
            self.uuid, 'instance-1'))
        self.guest = guest_mod.Guest(self.dom)

    def test_a_guest_deleted_meanwhile_is_instance_not_found(self):
        self.dom.undefine()
        for call in (self.guest.power_state, self.guest.start,
                     self.guest.xml, self.guest.disks):
            e = self.assertRaises(exception.InstanceNotFound, call)
            self.assertIn(self.uuid, str(e))

    def test_stopping_and_removing_a_guest_gone_is_fine(self):
        self.dom.undefine()
        self.guest.hard_stop()
        self.guest.shutdown()
        self.guest.undefine()

    def test_destroy_retries_while_qemu_is_busy(self):
        domain = BusyDomain(failures=2)
        guest_mod.Guest(domain).hard_stop()
        self.assertEqual(3, domain.calls)

    def test_destroy_gives_up_when_qemu_stays_busy(self):
        domain = BusyDomain(failures=10)
        self.assertRaises(libvirt.libvirtError,
                          guest_mod.Guest(domain).hard_stop)
        self.assertEqual(guest_mod._DESTROY_ATTEMPTS, domain.calls)


def _libvirt_error(code):
    error = libvirt.libvirtError('no counts')
    error.err = (code, libvirt.VIR_FROM_QEMU, 'no counts', 2, None, None,
                 None, 0, 0)
    return error


class UncountedDomain(BlockJobDomain):
    """A hypervisor that answers every counter with error code (libvirt's
    test driver keeps them all).
    """

    def __init__(self, code):
        super().__init__(0, 0, '')
        self.code = code

    def _refuse(self, *args):
        raise _libvirt_error(self.code)

    vcpus = memoryStats = blockStats = _refuse


class CountersTest(base.TestCase):

    def test_what_libvirt_does_not_count_is_left_out(self):
        # the guest stopped meanwhile, a hypervisor or a device not counted
        for code in (libvirt.VIR_ERR_OPERATION_INVALID,
                     libvirt.VIR_ERR_NO_SUPPORT,
                     libvirt.VIR_ERR_OPERATION_UNSUPPORTED,
                     libvirt.VIR_ERR_INVALID_ARG):
            guest = guest_mod.Guest(UncountedDomain(code))
            self.assertEqual([], guest.vcpu_times())
            self.assertEqual({}, guest.memory_stats())
            self.assertEqual([], guest.disk_counters())

    def test_other_errors_are_not_hidden(self):
        # a failure, not a missing count: nova shows the server's fault
        guest = guest_mod.Guest(UncountedDomain(
            libvirt.VIR_ERR_INTERNAL_ERROR))
        for call in (guest.vcpu_times, guest.memory_stats,
                     guest.disk_counters):
            self.assertRaises(libvirt.libvirtError, call)
