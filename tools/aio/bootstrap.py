"""What the all-in-one's cloud needs before it serves anyone, for aio.sh:

    bootstrap.py clouds-yaml CLOUD AUTH_URL FILE...
        the admin's entry CLOUD in each clouds.yaml FILE (others kept)
    bootstrap.py catalog CLOUD
        the service project, the services' users and the service catalog
    bootstrap.py network CLOUD NAME CIDR GATEWAY
        the shared network servers boot on, and its subnet
    bootstrap.py volume-backend CLOUD SECONDS
        waits that long at most for Cinder's scheduler to know a pool of
        a volume backend (its driver set up, its capacity reported); prints
        the pools, exits 1 if there is none
    bootstrap.py tempest-resources CLOUD IMAGE_FILE
        the two images (one file twice) and two flavors tempest boots
        servers from, and the volume type of multiattach volumes; prints
        IMAGE_REF, IMAGE_REF_ALT, FLAVOR_REF and FLAVOR_REF_ALT as NAME=ID
        lines

The password of the admin and of the services' users is AIO_PASSWORD from
the environment (never on a command line); catalog and network reach the
cloud as CLOUD of the clouds.yaml that OS_CLIENT_CONFIG_FILE names, and
make only what is not there yet.
"""

import argparse
import os
import sys
import time

import openstack
import yaml

REGION = 'RegionOne'
CINDER = 'http://127.0.0.1:8776/v3'
# the service's user, its name in the catalog, its type, the endpoint URL.
# Cinder twice: nova looks for volumev3, tempest and the SDK for
# block-storage (Horizon takes either)
SERVICES = (('nova', 'nova', 'compute', 'http://127.0.0.1:8774/v2.1'),
            ('placement', 'placement', 'placement', 'http://127.0.0.1:8778'),
            ('glance', 'glance', 'image', 'http://127.0.0.1:9292'),
            ('neutron', 'neutron', 'network', 'http://127.0.0.1:9696'),
            ('cinder', 'cinderv3', 'volumev3', CINDER),
            ('cinder', 'cinder', 'block-storage', CINDER))


def clouds_yaml(args):
    entry = {'auth': {'auth_url': args.auth_url, 'username': 'admin',
                      'password': os.environ['AIO_PASSWORD'],
                      'project_name': 'admin',
                      'user_domain_name': 'Default',
                      'project_domain_name': 'Default'},
             'region_name': REGION, 'identity_api_version': 3,
             'compute_api_version': '2.95'}
    for path in args.files:
        data = {}
        if os.path.exists(path):
            with open(path) as f:
                data = yaml.safe_load(f) or {}
        data.setdefault('clouds', {})[args.cloud] = entry
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, 'w') as f:
            yaml.safe_dump(data, f, default_flow_style=False)


def catalog(args):
    identity = openstack.connect(cloud=args.cloud).identity
    domain = identity.find_domain('default')
    project = (identity.find_project('service', domain_id=domain.id) or
               identity.create_project(name='service', domain_id=domain.id))
    roles = (identity.find_role('admin'),
             identity.find_role('service') or
             identity.create_role(name='service'))
    for name in sorted({user for user, _, _, _ in SERVICES}):
        user = (identity.find_user(name, domain_id=domain.id) or
                identity.create_user(name=name,
                                     password=os.environ['AIO_PASSWORD'],
                                     domain_id=domain.id,
                                     default_project_id=project.id))
        for role in roles:
            identity.assign_project_role_to_user(project, user, role)
    for _, name, kind, url in SERVICES:
        service = (identity.find_service(name) or
                   identity.create_service(name=name, type=kind))
        have = {e.interface for e in identity.endpoints(service_id=service.id)}
        for interface in ('public', 'internal', 'admin'):
            if interface not in have:
                identity.create_endpoint(service_id=service.id,
                                         interface=interface, url=url,
                                         region_id=REGION)


def network(args):
    cloud = openstack.connect(cloud=args.cloud)
    net = cloud.network.find_network(args.name) or \
        cloud.network.create_network(
            name=args.name, is_shared=True, provider_network_type='flat',
            provider_physical_network='aio')
    subnet = args.name + '-subnet'
    if not cloud.network.find_subnet(subnet, network_id=net.id):
        # no DHCP agent: guests take their address from the config drive
        cloud.network.create_subnet(name=subnet, network_id=net.id,
                                    ip_version=4, cidr=args.cidr,
                                    gateway_ip=args.gateway,
                                    is_dhcp_enabled=False)


def volume_backend(args):
    cloud = openstack.connect(cloud=args.cloud)
    deadline = time.monotonic() + args.seconds
    while True:
        try:
            pools = [p.name for p in cloud.block_storage.backend_pools()]
        except openstack.exceptions.SDKException as e:
            pools, error = [], e
        else:
            error = 'no pool reported yet'
        if pools:
            print(' '.join(pools))
            return
        if time.monotonic() >= deadline:
            sys.exit('no volume backend after %d s: %s'
                     % (args.seconds, error))
        time.sleep(2)


# tempest's flavors: flavor_ref_alt is what its resizes go to, so bigger
TEMPEST_FLAVORS = (('FLAVOR_REF', 'tempest-small', 256, 1),
                   ('FLAVOR_REF_ALT', 'tempest-big', 320, 2))
# tempest.conf names it too
TEMPEST_MULTIATTACH_TYPE = 'multiattach'


def tempest_resources(args):
    cloud = openstack.connect(cloud=args.cloud)
    for key, name in (('IMAGE_REF', 'tempest-guest'),
                      ('IMAGE_REF_ALT', 'tempest-guest-alt')):
        image = cloud.image.find_image(name)
        if image is not None and image.status != 'active':
            cloud.image.delete_image(image)  # an upload cut short
            image = None
        if image is None:
            image = cloud.create_image(
                name, filename=args.image_file, disk_format='qcow2',
                container_format='bare', visibility='public', wait=True)
        print('%s=%s' % (key, image.id))
    for key, name, ram, disk in TEMPEST_FLAVORS:
        flavor = (cloud.compute.find_flavor(name) or
                  cloud.compute.create_flavor(name=name, ram=ram, vcpus=1,
                                              disk=disk))
        print('%s=%s' % (key, flavor.id))
    # Cinder makes multiattach volumes only of a type that says so
    if not cloud.block_storage.find_type(TEMPEST_MULTIATTACH_TYPE):
        cloud.block_storage.create_type(
            name=TEMPEST_MULTIATTACH_TYPE,
            extra_specs={'multiattach': '<is> True'})


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest='command', required=True)
    command = commands.add_parser('clouds-yaml')
    command.set_defaults(run=clouds_yaml)
    command.add_argument('cloud')
    command.add_argument('auth_url')
    command.add_argument('files', nargs='+')
    command = commands.add_parser('catalog')
    command.set_defaults(run=catalog)
    command.add_argument('cloud')
    command = commands.add_parser('network')
    command.set_defaults(run=network)
    for arg in ('cloud', 'name', 'cidr', 'gateway'):
        command.add_argument(arg)
    command = commands.add_parser('volume-backend')
    command.set_defaults(run=volume_backend)
    command.add_argument('cloud')
    command.add_argument('seconds', type=int)
    command = commands.add_parser('tempest-resources')
    command.set_defaults(run=tempest_resources)
    command.add_argument('cloud')
    command.add_argument('image_file')
    args = parser.parse_args()
    args.run(args)


if __name__ == '__main__':
    main()
