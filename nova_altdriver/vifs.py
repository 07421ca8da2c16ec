"""Guest network interfaces, described to libvirt as ``<interface>``s.

Supported VIF types: ``ovs`` (neutron's OVS and OVN backends: plugged on the
host through os-vif) and ``tap`` (a plain tap device libvirt creates). Linux
bridge ports never reach a driver: nova 34 itself refuses them.
"""

import os
import threading

from lxml import etree
from nova import exception
from nova.network import model as network_model
from nova.network import os_vif_util
import os_vif
from os_vif.objects import vif as osv_vifs
from oslo_log import log as logging

import nova.conf

CONF = nova.conf.CONF
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
    """
    specs = flavor.extra_specs
    bandwidth = None
    for direction in ('inbound', 'outbound'):
        prefix = 'quota:vif_%s_' % direction
        if prefix + 'average' not in specs:
            continue
        if bandwidth is None:
            bandwidth = etree.SubElement(el, 'bandwidth')
        etree.SubElement(bandwidth, direction, {
            name: specs[prefix + name] for name in ('average', 'peak', 'burst')
            if prefix + name in specs})


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
