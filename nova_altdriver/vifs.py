"""Guest network interfaces, described to libvirt as ``<interface>``s, and
their hot plug and unplug (nova's attach_interface / detach_interface).

Supported VIF types: ``ovs`` (neutron's OVS and OVN backends: plugged on the
host through os-vif) and ``tap`` (a plain tap device libvirt creates). Linux
bridge ports never reach a driver: nova 34 itself refuses them.

An interface attached or detached here lasts: nova keeps the port in the
instance's network info, from which every later definition of the guest
(hard reboot, rescue, unshelve, evacuation, migration) is built.
"""

import os
import threading

from lxml import etree
from nova.compute import power_state
from nova import exception
from nova.network import model as network_model
from nova.network import os_vif_util
import os_vif
from os_vif.objects import vif as osv_vifs
from oslo_log import log as logging

from nova_altdriver import conf

CONF = conf.CONF
LOG = logging.getLogger(__name__)

_os_vif_lock = threading.Lock()
_os_vif_ready = False


def _to_os_vif(vif):
    """The os-vif object of a nova VIF (None where os-vif has no plugin)."""
    global _os_vif_ready
    with _os_vif_lock:
        if not _os_vif_ready:
            os_vif.initialize()  # loads plugins, registers os-vif objects
            _os_vif_ready = True
    return os_vif_util.nova_to_osvif_vif(vif)


def _each_os_vif(instance, network_info):
    info = None
    for vif in network_info:
        if vif['type'] == network_model.VIF_TYPE_TAP:
            continue  # libvirt creates the tap itself
        osvif = _to_os_vif(vif)
        if osvif is None:
            continue
        if info is None:
            info = os_vif_util.nova_to_osvif_instance(instance)
        yield osvif, info


def plug(instance, network_info):
    for osvif, info in _each_os_vif(instance, network_info):
        try:
            os_vif.plug(osvif, info)
        except Exception as e:
            raise exception.VirtualInterfacePlugException(
                'Plugging %s failed: %s' % (osvif.vif_name, e))


def unplug(instance, network_info):
    """Unplugs what can be unplugged; a VIF already gone is no error.

    An instance evacuated away (cleaned up here when this host comes back)
    has the same device names on its new host. A device that still exists
    once this host's domain is gone (libvirt removes the taps it made) is
    that host's, on a switch both hosts share: unplugging it would cut the
    evacuated guest off.
    """
    moved_away = instance.host not in (None, CONF.host)
    for osvif, info in _each_os_vif(instance, network_info):
        if moved_away and os.path.exists('/sys/class/net/' + osvif.vif_name):
            LOG.info('Leaving %s alone: it belongs to host %s now',
                     osvif.vif_name, instance.host, instance=instance)
            continue
        try:
            os_vif.unplug(osvif, info)
        except Exception as e:
            LOG.warning('Unplugging %s failed: %s', osvif.vif_name, e,
                        instance=instance)


def _bandwidth(el, flavor):
    """The ``<bandwidth>`` of the flavor's quota:vif_* extra specs
    (kilobytes a second, a burst in kilobytes): a direction only with its
    average, as the in-tree driver.

    libvirt adds this driver's Open vSwitch ports to the switch (an
    openvswitch virtualport), and there it makes the inbound average OVS's
    ``min-rate``, a guarantee, and only a peak its ``max-rate``: an average
    alone would limit nothing. The in-tree driver has os-vif add them (an
    ethernet interface), where libvirt's ``tc`` makes the average the cap.
    So does this driver, unless the flavor names a peak.
    """
    specs = flavor.extra_specs
    bandwidth = None
    for direction in ('inbound', 'outbound'):
        prefix = 'quota:vif_%s_' % direction
        if prefix + 'average' not in specs:
            continue
        if bandwidth is None:
            bandwidth = etree.SubElement(el, 'bandwidth')
        limits = {name: specs[prefix + name]
                  for name in ('average', 'peak', 'burst')
                  if prefix + name in specs}
        if direction == 'inbound':
            limits.setdefault('peak', limits['average'])
        etree.SubElement(bandwidth, direction, limits)


def interface(vif, image_meta, flavor):
    """The ``<interface>`` element of a nova VIF for a guest of flavor."""
    vif_type = vif['type']
    model = image_meta.properties.get('hw_vif_model') or 'virtio'
    if vif_type == network_model.VIF_TYPE_TAP:
        el = etree.Element('interface', type='ethernet')
    elif vif_type == network_model.VIF_TYPE_OVS:
        osvif = _to_os_vif(vif)
        el = etree.Element('interface', type='bridge')
        etree.SubElement(el, 'source', bridge=osvif.bridge_name)
        if isinstance(osvif, osv_vifs.VIFOpenVSwitch):
            port = etree.SubElement(el, 'virtualport', type='openvswitch')
            etree.SubElement(port, 'parameters', interfaceid=vif['id'])
    else:
        raise exception.VirtualInterfaceCreateException(
            'nova_altdriver cannot plug VIF type %r of port %s' % (
                vif_type, vif['id']))
    etree.SubElement(el, 'mac', address=vif['address'])
    etree.SubElement(el, 'model', type=model)
    if vif.get('devname'):  # else libvirt names the device itself
        etree.SubElement(el, 'target', dev=vif['devname'])
    mtu = vif['network'].get_meta('mtu') if vif.get('network') else None
    if mtu:
        etree.SubElement(el, 'mtu', size=str(mtu))
    # (the in-tree driver limits no tap port: its XML for them has none)
    if vif_type == network_model.VIF_TYPE_OVS:
        _bandwidth(el, flavor)
    return el


class Interfaces(object):
    """Hot plug and unplug of a guest's network interfaces."""

    def __init__(self, host):
        self._host = host

    def attach(self, instance, image_meta, vif):
        """Plugs the port on the host and adds its interface to the
        definition and, while the guest runs or is paused, to the guest
        itself (a stopped guest sees it when it starts). On failure the
        port is unplugged again and nova gives it back to neutron.
        """
        guest = self._host.get_guest(instance)
        element = etree.tostring(interface(vif, image_meta, instance.flavor),
                                 encoding='unicode')
        plug(instance, [vif])
        try:
            guest.attach_device(element)
        except Exception as e:
            LOG.error('Attaching port %s failed: %s', vif['id'], e,
                      instance=instance)
            unplug(instance, [vif])
            raise exception.InterfaceAttachFailed(instance_uuid=instance.uuid)
        LOG.info('Port %s attached as %s', vif['id'], vif['address'],
                 instance=instance)

    def detach(self, instance, vif):
        """Takes the interface out of the running guest once it lets go
        (DeviceDetachFailed, the interface kept, when it does not or when
        the guest is paused and cannot), then out of the definition, then
        unplugs the port on the host. An interface or guest gone already is
        fine.
        """
        mac = vif['address']
        guest = self._host.find_guest(instance.uuid)
        if guest is not None:
            try:
                self._detach_from(guest, mac)
            except (exception.DeviceDetachFailed, exception.InstanceNotFound):
                raise
            except Exception as e:
                # nova's compute manager expects its own exceptions here:
                # the interface then stays, in nova and in the guest
                raise exception.DeviceDetachFailed(device=mac, reason=e)
        unplug(instance, [vif])
        LOG.info('Port %s (%s) detached', vif['id'], mac, instance=instance)

    def _detach_from(self, guest, mac):
        running = guest.interface(mac) if guest.is_active() else None
        if running is not None:
            if guest.power_state() == power_state.PAUSED:
                raise exception.DeviceDetachFailed(
                    device=mac, reason='a paused guest cannot let it go: '
                    'unpause the server first')
            xml, alias = running
            self._host.unplug_from_running(
                guest, mac, alias,
                ask=lambda: guest.detach_device(xml, live=True),
                present=lambda: guest.interface(mac) is not None,
                attempts=CONF.altdriver.device_detach_attempts,
                seconds=CONF.altdriver.device_detach_timeout)
        defined = guest.interface(mac, inactive=True)
        if defined is not None:
            guest.detach_device(defined[0], live=False)
