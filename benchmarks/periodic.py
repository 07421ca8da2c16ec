"""Cost of nova-compute's periodic driver calls as the host fills up.

``populate --uri URI --dir DIR --domains N`` makes the libvirtd at URI hold
exactly N defined, inactive nova-like guests (``instance-*``), each a qcow2
overlay in DIR on one shared base image, and lists them in DIR/domains.json.

``measure --driver alt|intree --uri URI --dir DIR --repeat R --out FILE``
loads one driver the way nova-compute does, times list_instance_uuids,
get_info (of every guest, one figure), get_available_resource and
update_provider_tree R times each, records the disk_available_least the
last get_available_resource reported, then the process RSS, and appends
one JSON line per measurement to FILE.
"""

import argparse
import concurrent.futures
import hashlib
import importlib
import json
import logging
import os
import shutil
import subprocess
import sys
import time
import uuid
from xml.sax import saxutils

import libvirt

import benchmarks

PREFIX = 'instance-'
IMAGE_ID = '8a3e0f6c-6a54-4f1e-9d4b-2f1b3c5d7e90'  # the guests' "Glance" image
NOVA_NS = 'http://openstack.org/xmlns/libvirt/nova/1.1'
CONF_GROUPS = {'alt': 'altdriver', 'intree': 'libvirt'}
DOMAIN_XML = """<domain type='qemu'>
  <name>{name}</name>
  <uuid>{uuid}</uuid>
  <metadata>
    <nova:instance xmlns:nova="{ns}">
      <nova:package version="34.0.0"/>
      <nova:name>bench-{name}</nova:name>
      <nova:creationTime>{created}</nova:creationTime>
      <nova:flavor name="bench.tiny" id="1">
        <nova:memory>128</nova:memory><nova:disk>1</nova:disk>
        <nova:swap>0</nova:swap><nova:ephemeral>0</nova:ephemeral>
        <nova:vcpus>1</nova:vcpus>
      </nova:flavor>
      <nova:owner>
        <nova:user uuid="{owner}">bench</nova:user>
        <nova:project uuid="{owner}">bench</nova:project>
      </nova:owner>
      <nova:root type="image" uuid="{image}"/>
    </nova:instance>
  </metadata>
  <memory unit='MiB'>128</memory>
  <vcpu>1</vcpu>
  <os><type>hvm</type><boot dev='hd'/></os>
  <devices>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2' cache='none'/>
      <source file='{dir}/{uuid}/disk'/>
      <target dev='vda' bus='virtio'/>
    </disk>
    <serial type='file'><source path='{dir}/{uuid}/console.log'/></serial>
  </devices>
</domain>
"""


class Failure(Exception):
    """A step went wrong: its message is all the user needs."""


def _qemu_img(*args):
    result = subprocess.run(('qemu-img', 'create', '-q', '-f', 'qcow2') +
                            args, capture_output=True, text=True)
    if result.returncode:
        raise Failure('qemu-img create %s: %s' % (args[-2],
                                                  result.stderr.strip()))


def _instances(conn):
    return sorted((d for d in conn.listAllDomains(0)
                   if d.name().startswith(PREFIX)), key=lambda d: d.name())


def populate(args):
    directory = os.path.abspath(args.dir)
    base = os.path.join(directory, '_base',
                        hashlib.sha1(IMAGE_ID.encode()).hexdigest())
    if not os.path.exists(base):
        os.makedirs(os.path.dirname(base), exist_ok=True)
        _qemu_img(base, '64M')
    conn = libvirt.open(args.uri)
    existing = _instances(conn)
    for dom in existing:
        if dom.isActive():
            dom.destroy()
    for dom in existing[args.domains:]:
        dom.undefineFlags(libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE |
                          libvirt.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA |
                          libvirt.VIR_DOMAIN_UNDEFINE_NVRAM)
        shutil.rmtree(os.path.join(directory, dom.UUIDString()),
                      ignore_errors=True)
    first = max((int(d.name()[len(PREFIX):], 16) for d in existing),
                default=0) + 1
    created = time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime())
    owner = uuid.uuid4().hex

    def add(number):
        instance_uuid = str(uuid.uuid4())
        os.makedirs(os.path.join(directory, instance_uuid))
        _qemu_img('-F', 'qcow2', '-b', base,
                  os.path.join(directory, instance_uuid, 'disk'), '1G')
        conn.defineXML(DOMAIN_XML.format(
            name='%s%08x' % (PREFIX, number), uuid=instance_uuid, ns=NOVA_NS,
            created=created, owner=owner, image=IMAGE_ID,
            dir=saxutils.escape(directory, {"'": '&apos;'})))

    # qemu-img is a process per disk: keep a few starting at once.
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        list(pool.map(add, range(first,
                                 first + args.domains - len(existing))))
    domains = [{'uuid': d.UUIDString(), 'name': d.name()}
               for d in _instances(conn)]
    with open(os.path.join(directory, 'domains.json'), 'w') as f:
        json.dump(domains, f, indent=1)
    print('%d domains on %s' % (len(domains), args.uri))


def _configure(args):
    from nova import conf
    from nova import objects
    from nova import rpc

    # The options' defaults, and nothing from this machine's /etc/nova.
    conf.CONF([], project='nova', default_config_files=[],
              default_config_dirs=[])
    objects.register_all()
    # As nova-compute's ComputeManager.init_host does, before the driver's.
    conf.neutron.register_dynamic_opts(conf.CONF)
    conf.devices.register_dynamic_opts(conf.CONF)
    # state_path holds the node identity file (compute_id) nova writes.
    for name in ('instances_path', 'state_path'):
        conf.CONF.set_override(name, os.path.abspath(args.dir))
    conf.CONF.set_override('host', 'bench')
    # As nova-compute does: the in-tree driver reports a failed libvirt
    # connection as a notification (sent nowhere: no notification driver).
    rpc.init(conf.CONF)
    group = CONF_GROUPS[args.driver]
    if args.driver == 'alt':
        # Imported only here: the in-tree driver's RSS must not include it.
        importlib.import_module('nova_altdriver.conf')
    conf.CONF.set_override('virt_type', 'qemu', group=group)
    conf.CONF.set_override('connection_uri', args.uri, group=group)


def _without_database():
    """Empty answers from nova's database (nova-conductor, in
    nova-compute) about the guests: the true ones here, minus a conductor
    round trip. The guests are no instances of nova's, and no volumes are
    attached. The in-tree driver's get_available_resource asks for their
    instances and block devices, to leave volumes out of the disk
    overcommit sum; this driver's init_host asks for their instances, to
    find unfinished evacuations.
    """
    from nova import objects

    objects.InstanceList.get_by_filters = classmethod(
        lambda cls, *args, **kwargs: cls(objects=[]))
    objects.BlockDeviceMappingList.bdms_by_instance_uuid = classmethod(
        lambda cls, *args, **kwargs: {})


def _intree_without_conn_event_thread(drv):
    """Keeps the in-tree driver from starting the thread that, each time
    the libvirt connection opens or breaks, records the compute service as
    enabled or not in the database (not part of the calls timed). It never
    ends either, and the interpreter's exit would wait for it.
    """
    drv._host._conn_event_thread = lambda: None


def _timed(what, call):
    """(call's result, seconds it took); any error becomes a Failure."""
    start = time.perf_counter()
    try:
        result = call()
    except Exception as e:
        raise Failure('%s failed: %s: %s' % (what, type(e).__name__, e))
    return result, time.perf_counter() - start


def measure(args):
    _configure(args)
    from nova.compute import provider_tree
    from nova import objects
    from nova.virt import driver as virt_driver
    from nova.virt import virtapi

    with open(os.path.join(args.dir, 'domains.json')) as f:
        domains = json.load(f)
    # Both drivers' get_info read the uuid only; the id makes instance.name
    # (in their error messages) the domain's name.
    instances = [objects.Instance(uuid=d['uuid'],
                                  id=int(d['name'][len(PREFIX):], 16))
                 for d in domains]
    # No event listener: the guests never run, and nothing would use one.
    drv = virt_driver.load_compute_driver(
        virtapi.VirtAPI(), benchmarks.COMPUTE_DRIVERS[args.driver])
    _without_database()
    if args.driver == 'intree':
        _intree_without_conn_event_thread(drv)
    _timed('init_host', lambda: drv.init_host('bench'))
    seen, _ = _timed('list_instance_uuids', drv.list_instance_uuids)
    missing = {d['uuid'] for d in domains} - set(seen)
    if missing:
        raise Failure('%d guests of domains.json are not on %s, populate '
                      'again' % (len(missing), args.uri))
    nodes, _ = _timed('get_nodenames_by_uuid', drv.get_nodenames_by_uuid)
    (node_uuid, nodename), = nodes.items()
    tree = provider_tree.ProviderTree()
    tree.new_root(nodename, node_uuid)

    def get_info_all():
        for instance in instances:
            drv.get_info(instance)

    resources = {}  # the last get_available_resource's report
    calls = (
        ('list_instance_uuids', drv.list_instance_uuids),
        ('get_info', get_info_all),
        ('get_available_resource',
         lambda: resources.update(drv.get_available_resource(nodename))),
        ('update_provider_tree',
         lambda: drv.update_provider_tree(tree, nodename)),
    )
    n = len(domains)
    results = [('periodic', '%s @%d' % (name, n), _timed(name, call)[1], 's')
               for _ in range(args.repeat) for name, call in calls]
    # Not a time: on the same guests both drivers should report the same
    # free space less disk over-commit, as nova stores it (the in-tree
    # driver's is a float, ComputeNode keeps its integer part).
    results.append(('periodic', 'disk_available_least @%d' % n,
                    int(resources['disk_available_least']), 'GiB'))
    results.append(('memory', 'compute RSS @%d domains' % n,
                    benchmarks.rss_mib(), 'MiB'))
    benchmarks.append_records(args.out, args.driver, results)
    for _group, figure, value, unit in results:
        print('%s %s: %.4f %s' % (args.driver, figure, value, unit))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest='command', required=True)
    pop = commands.add_parser('populate', help='define N inactive guests')
    pop.add_argument('--domains', type=int, required=True)
    mea = commands.add_parser('measure', help='time the periodic calls')
    mea.add_argument('--driver', choices=sorted(CONF_GROUPS), required=True)
    mea.add_argument('--repeat', type=int, default=3)
    mea.add_argument('--out', required=True)
    for sub in (pop, mea):
        sub.add_argument('--uri', required=True)
        sub.add_argument('--dir', required=True)
    args = parser.parse_args()
    if getattr(args, 'domains', 0) < 0 or getattr(args, 'repeat', 1) < 1:
        parser.error('--domains must be >= 0 and --repeat >= 1')
    logging.basicConfig(level=logging.WARNING,
                        format='%(levelname)s %(name)s: %(message)s')
    # libvirt would print every error it raises to stderr as well.
    libvirt.registerErrorHandler(lambda opaque, error: None, None)
    try:
        (populate if args.command == 'populate' else measure)(args)
    except (Failure, libvirt.libvirtError, OSError) as e:
        sys.exit('periodic %s: %s' % (args.command, e))


if __name__ == '__main__':
    main()
