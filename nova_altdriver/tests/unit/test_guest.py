from nova_altdriver import guest as guest_mod
from nova_altdriver.tests.unit import base

DISK_XML = """<domain><devices><disk type='file' device='disk'>
  <source file='/i/disk'/><target dev='vda' bus='virtio'/>%s
</disk></devices></domain>"""


class BlockJobDomain(object):
    """A domain in the middle of an active block commit (libvirt's test
    driver has no block jobs, and the race cannot be timed for real).
    """

    def __init__(self, cur, end, mirror):
        self.info = {'type': 4, 'bandwidth': 0, 'cur': cur, 'end': end}
        self.mirror = mirror

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

    def test_not_ready_while_copying_or_without_a_job(self):
        self.assertFalse(self.ready(
            50, 100, "<mirror type='file' job='active-commit' ready='yes'/>"))
        self.assertFalse(self.ready(0, 0, ''))
