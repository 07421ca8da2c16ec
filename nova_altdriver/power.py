"""Power operations: stop, start, reboot, pause, suspend, host boot.

Starting is always a hard reboot: the domain is made again from nova's data,
which repairs a definition lost or damaged behind nova's back or a cached
base removed. UEFI variables survive (the definition is replaced, never
undefined with its NVRAM).
"""

import time

from nova.compute import power_state
from nova import exception
from oslo_log import log as logging

import nova.conf
from nova_altdriver import disks
from nova_altdriver import vifs

CONF = nova.conf.CONF
LOG = logging.getLogger(__name__)

_POLL_SECONDS = 0.2


class Power(object):

    def __init__(self, host, layout, lifecycle):
        self._host = host
        self._layout = layout
        self._lifecycle = lifecycle

    def power_off(self, instance, timeout=0, retry_interval=0):
        """With a timeout: ACPI power button, pressed again every
        retry_interval, then a hard stop once timeout runs out. Without
        one, or for a paused guest (it cannot answer), a hard stop at once.
        """
        guest = self._host.find_guest(instance.uuid)
        if guest is None:
            return  # nothing runs: off already
        if timeout and guest.power_state() == power_state.RUNNING:
            if self._clean_shutdown(instance, guest, timeout, retry_interval):
                return
            LOG.warning('Guest did not shut down within %d s; stopping it',
                        timeout, instance=instance)
        guest.hard_stop()

    @staticmethod
    def _clean_shutdown(instance, guest, timeout, retry_interval=0):
        """ACPI power button, pressed again every retry_interval; True once
        the guest is off (or its domain gone) within timeout.
        """
        now = time.monotonic()
        deadline, press_at = now + timeout, now
        while True:
            if now >= press_at:
                guest.shutdown()  # a guest gone meanwhile is off: fine
                press_at = now + (retry_interval or timeout)
            try:
                off = not guest.is_active()
            except exception.InstanceNotFound:
                off = True
            if off:
                LOG.info('Guest shut down cleanly', instance=instance)
                return True
            if now >= deadline:
                return False
            time.sleep(_POLL_SECONDS)
            now = time.monotonic()

    def hard_reboot(self, context, instance, network_info,
                    block_device_info=None):
        guest = self._host.stop_guest(instance.uuid)
        if guest is not None:
            guest.discard_saved_memory()  # stale once the guest restarts
        self._lifecycle.create_from_nova_data(
            context, instance, instance.image_meta, network_info,
            block_device_info, wait_for_vifs=False)
        # Leftovers of a rescue that never finished: the original runs now.
        disks.remove_rescue_files(self._layout, instance)

    def reboot(self, context, instance, network_info, reboot_type,
               block_device_info=None):
        """A soft reboot that cannot be (the guest is not running, or does
        not go down in time) is a hard one, as nova expects.
        """
        if reboot_type == 'SOFT' and self._soft_reboot(instance):
            return
        self.hard_reboot(context, instance, network_info, block_device_info)

    def _soft_reboot(self, instance):
        """ACPI shutdown, then start; False when the guest is not running
        or does not go down in time.
        """
        guest = self._host.find_guest(instance.uuid)
        if guest is None or guest.power_state() != power_state.RUNNING:
            return False
        timeout = CONF.altdriver.wait_soft_reboot_seconds
        if not self._clean_shutdown(instance, guest, timeout):
            LOG.warning('Guest did not shut down for a soft reboot within '
                        '%d s; rebooting it hard', timeout, instance=instance)
            return False
        guest.start()
        return True

    def pause(self, instance):
        self._host.get_guest(instance).pause()

    def unpause(self, instance):
        self._host.get_guest(instance).resume()

    def suspend(self, instance):
        self._host.get_guest(instance).save()

    def resume(self, instance, network_info):
        guest = self._host.get_guest(instance)
        vifs.plug(instance, network_info or [])
        guest.start()
        # A guest saved while paused comes back paused; nova wants it running
        if guest.power_state() == power_state.PAUSED:
            guest.resume()

    def resume_on_host_boot(self, context, instance, network_info,
                            block_device_info):
        guest = self._host.find_guest(instance.uuid)
        if guest is not None and guest.power_state() == power_state.RUNNING:
            return
        self.hard_reboot(context, instance, network_info, block_device_info)
