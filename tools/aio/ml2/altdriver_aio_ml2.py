"""The all-in-one's ML2 mechanism driver: binds every port to OVS here.

The all-in-one runs no neutron agent. Open vSwitch runs on the host with the
userspace datapath (``netdev``: no kernel module is needed) and one
integration bridge that both compute hosts share, as hosts on one switch do.
This driver binds each port on a flat or VLAN segment to that bridge with
``vif_type`` ``ovs`` and marks it ACTIVE at once: nothing would report it up
later. Nothing programs OVS flows, so the bridge forwards like a plain
learning switch and security groups are not enforced.
"""

from neutron_lib.api.definitions import portbindings
from neutron_lib import constants
from neutron_lib.plugins.ml2 import api
from oslo_config import cfg
from oslo_log import log as logging

LOG = logging.getLogger(__name__)

OPTS = [
    cfg.StrOpt('integration_bridge', default='br-int',
               help='The OVS bridge guests are plugged into.'),
    cfg.StrOpt('datapath_type', default='netdev',
               help='The bridge\'s datapath, passed on to os-vif.'),
]
cfg.CONF.register_opts(OPTS, 'altdriver_aio')


class BindAllMechanismDriver(api.MechanismDriver):

    def initialize(self):
        conf = cfg.CONF.altdriver_aio
        self.vif_details = {
            portbindings.CAP_PORT_FILTER: False,
            portbindings.OVS_HYBRID_PLUG: False,
            portbindings.VIF_DETAILS_BRIDGE_NAME: conf.integration_bridge,
            portbindings.OVS_DATAPATH_TYPE: conf.datapath_type,
        }

    @property
    def connectivity(self):
        return portbindings.CONNECTIVITY_L2

    def bind_port(self, context):
        vnic_type = context.current.get(portbindings.VNIC_TYPE,
                                        portbindings.VNIC_NORMAL)
        if vnic_type != portbindings.VNIC_NORMAL:
            return
        for segment in context.segments_to_bind:
            if segment[api.NETWORK_TYPE] in (constants.TYPE_FLAT,
                                             constants.TYPE_VLAN):
                context.set_binding(segment[api.ID], portbindings.VIF_TYPE_OVS,
                                    self.vif_details,
                                    status=constants.PORT_STATUS_ACTIVE)
                LOG.debug('Bound port %s on host %s', context.current['id'],
                          context.host)
                return
