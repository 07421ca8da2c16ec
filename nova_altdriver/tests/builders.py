"""What tests of every tier build their cases from: nova objects of a
representative server, and what a test reads back from the host.
"""

import json
import subprocess

from nova.network import model as network_model
from nova import objects

from nova_altdriver import imagecache

INSTANCE_UUID = 'f0b9b3f6-9f7e-4f0f-8a54-2a0c2b1c0d11'
IMAGE_UUID = '6b0a1e2c-3a6e-4a8a-9c2f-1b2c3d4e5f60'
CEPH_SECRET_UUID = '3f5a4c5e-2b3c-4d5e-8f90-123456789abc'


def instance(memory_mb=512, vcpus=1, root_gb=1, ephemeral_gb=0, swap=0,
             extra_specs=None):
    flavor = objects.Flavor(name='m1.test', flavorid='42',
                            memory_mb=memory_mb, vcpus=vcpus,
                            root_gb=root_gb, ephemeral_gb=ephemeral_gb,
                            swap=swap, extra_specs=extra_specs or {})
    return objects.Instance(uuid=INSTANCE_UUID, id=1, display_name='golden',
                            user_id='user-1', project_id='project-1',
                            flavor=flavor)


def image_meta(**properties):
    return objects.ImageMeta.from_dict(
        {'id': IMAGE_UUID, 'disk_format': 'qcow2', 'properties': properties})


def vif(vif_type, **details):
    return network_model.VIF(
        id='5c1d0f2a-7e3b-4c1d-9a8b-0e1f2a3b4c5d', address='fa:16:3e:00:00:01',
        type=vif_type, devname='tap5c1d0f2a-7e', details=details,
        network=network_model.Network(
            id='1f6a1c2e-0b1d-4c8e-9f00-aa55aa55aa55', bridge='br-int',
            meta={'mtu': 1450}))


def rbd_connection_info(volume_id, multiattach=False, access_mode='rw',
                        qos_specs=None):
    """What Cinder's RBD driver answers for a volume (cinder 29)."""
    return {'driver_volume_type': 'rbd',
            'data': {'name': 'volumes/volume-' + volume_id,
                     'hosts': ['127.0.0.1'], 'ports': ['6789'],
                     'cluster_name': 'ceph', 'auth_enabled': True,
                     'auth_username': 'cinder', 'secret_type': 'ceph',
                     'secret_uuid': CEPH_SECRET_UUID,
                     'volume_id': volume_id, 'discard': True,
                     'qos_specs': qos_specs, 'access_mode': access_mode,
                     'encrypted': False, 'cacheable': False},
            'status': 'attaching', 'volume_id': volume_id,
            'serial': volume_id, 'multiattach': multiattach}


def base_name(image_id):
    """The name of an image's base file in the image cache."""
    return imagecache.image_base_name(image_id)


def backing_file(path):
    """The backing file of a disk, as qemu-img sees it (None for none)."""
    info = subprocess.run(['qemu-img', 'info', '--output=json', path],
                          capture_output=True, text=True, check=True).stdout
    return json.loads(info).get('backing-filename')
