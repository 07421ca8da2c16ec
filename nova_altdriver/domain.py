"""The libvirt domain XML of an instance, built with lxml from nova's data.

Pure functions: nothing here talks to libvirt or touches files, so every
layout (boot, rescue, hard reboot) is built the same way and tested as text.
"""

import dataclasses
import time

from lxml import etree
from nova import exception
from nova.objects import fields
from nova import version
from nova.virt import hardware

import nova.conf

CONF = nova.conf.CONF

NOVA_NS = 'http://openstack.org/xmlns/libvirt/nova/1.1'

# Serial ports a guest may ask for: the in-tree driver's limit (QEMU's ISA
# bus has four, nova keeps one back), so a flavor means the same on both.
MAX_SERIAL_PORTS = 3


# libvirt's <iotune> limits a Cinder volume's QoS specs may set, as the
# in-tree driver passes them on; a flavor's quota:disk_* extra specs set the
# first six (nova validates no others).
IOTUNE = ('read_bytes_sec', 'read_iops_sec', 'write_bytes_sec',
          'write_iops_sec', 'total_bytes_sec', 'total_iops_sec',
          'read_bytes_sec_max', 'write_bytes_sec_max', 'total_bytes_sec_max',
          'read_iops_sec_max', 'write_iops_sec_max', 'total_iops_sec_max',
          'size_iops_sec')
_FLAVOR_IOTUNE = IOTUNE[:6]
# <cputune>'s quota:cpu_* extra specs, in libvirt's order
_CPUTUNE = ('shares', 'quota', 'period')


@dataclasses.dataclass(frozen=True)
class Rbd(object):
    """A Ceph RBD image, opened by QEMU's own librbd (no host device)."""
    name: str  # pool/image
    hosts: tuple = ()  # ((monitor address, port), ...)
    username: str = None  # cephx user; its key is libvirt secret secret_uuid
    secret_uuid: str = None


@dataclasses.dataclass(frozen=True)
class Disk(object):
    """One disk of the domain."""
    source: str  # a file, or None (an empty cdrom, a volume)
    format: str
    dev: str
    bus: str
    device: str = 'disk'
    boot_order: int = None  # only where it must be explicit (rescue)
    serial: str = None  # a volume's id, as the guest sees it
    rbd: Rbd = None  # a volume, instead of a file
    alias: str = None  # a user alias (ua-...): names a volume's device
    readonly: bool = False
    shareable: bool = False  # a multiattach volume
    iotune: tuple = ()  # ((IOTUNE name, value), ...): the disk's limits


# Device name prefix per bus, as guests name them.
_DEV_PREFIX = {'virtio': 'vd', 'scsi': 'sd', 'sata': 'sd', 'usb': 'sd',
               'ide': 'hd'}


_LETTERS = 'abcdefghijklmnopqrstuvwxyz'


def device_prefix(bus):
    """vd, sd or hd: how guests name the devices of a bus."""
    return device_name(bus, 0)[:-1]


def device_name(bus, index):
    """vda, vdb, ... sdc: the index-th device name on a bus."""
    if bus not in _DEV_PREFIX or index >= len(_LETTERS):
        # (nova gives up on a build that fails with InvalidInput, where it
        # would try other hosts in vain)
        raise exception.InvalidInput(
            reason='nova_altdriver has no device for disk %d on bus %s' % (
                index + 1, bus))
    return _DEV_PREFIX[bus] + _LETTERS[index]


def free_device_name(bus, used):
    """The first device name on bus that is not in used."""
    index = 0
    while device_name(bus, index) in used:
        index += 1
    return device_name(bus, index)


# an IDE controller has two channels of two devices
_IDE_DEVICES = 4


def last_free_device_name(bus, used):
    """The last device name on bus that is not in used (sdz, hdd): the
    config drive's, as in the in-tree driver. nova names a volume attached
    later after the disks it knows of, which the config drive is not one
    of: it would take sdb from a config drive on the root disk's bus.
    """
    index = (_IDE_DEVICES if bus == 'ide' else len(_LETTERS)) - 1
    while index >= 0 and device_name(bus, index) in used:
        index -= 1
    # (none left: device_name refuses an index past the last)
    return device_name(bus, index if index >= 0 else len(_LETTERS))


def _with_unique_devices(disks):
    """disks with every disk that repeats an earlier disk's device name
    moved to the next name free on its bus.
    """
    used = set()
    unique = []
    for disk in disks:
        if disk.dev in used:
            disk = dataclasses.replace(
                disk, dev=free_device_name(disk.bus, used))
        used.add(disk.dev)
        unique.append(disk)
    return unique


def is_stable_rescue(rescue_props):
    """Whether a rescue image asks for stable device rescue."""
    return bool(rescue_props.get('hw_rescue_device') or
                rescue_props.get('hw_rescue_bus'))


def rescue_disks(rescue_disk, root, others, config_drive, rescue_props):
    """The disks of a rescue domain, in device order, from the rescue
    disk's file, the original's root Disk, its other Disks (used by stable
    device rescue only), the rescue's config drive ([Disk] or []) and the
    rescue image's properties.

    Stable device rescue: the original devices unchanged, the rescue disk
    added on the first free name of its bus with boot order 1. Legacy: the
    rescue disk where the root disk was, the root disk next, then the
    config drive (no repeated names: a vfat one is on the disk bus too).
    """
    if is_stable_rescue(rescue_props):
        disks = [root] + others + config_drive
        bus = rescue_props.get('hw_rescue_bus') or 'virtio'
        dev = free_device_name(bus, {d.dev for d in disks})
        return disks + [Disk(
            rescue_disk, 'qcow2', dev, bus,
            device=rescue_props.get('hw_rescue_device') or 'disk',
            boot_order=1)]
    bus = rescue_props.get('hw_disk_bus') or 'virtio'
    return _with_unique_devices(
        [Disk(rescue_disk, 'qcow2', device_name(bus, 0), bus), root] +
        config_drive)


def serial_port_count(flavor, image_meta):
    """How many TCP serial ports a guest gets: hw:serial_port_count,
    lowered by hw_serial_port_count, 1 by default (nova's rules); more
    than QEMU gives a guest is refused.
    """
    # (InvalidInput: nova gives up on the build, where it would try other
    # hosts in vain)
    try:
        count = hardware.get_number_of_serial_ports(flavor, image_meta)
    except (exception.ImageSerialPortNumberInvalid,
            exception.ImageSerialPortNumberExceedFlavorValue) as e:
        raise exception.InvalidInput(reason=e.format_message())
    if count > MAX_SERIAL_PORTS:
        raise exception.InvalidInput(
            reason='nova_altdriver gives a guest at most %d serial ports; '
                   'hw:serial_port_count or hw_serial_port_count asks for '
                   '%d' % (MAX_SERIAL_PORTS, count))
    return count


def _extra_specs(flavor, prefix, names):
    """((name, value), ...) of the extra specs prefix + name the flavor
    has, in the order of names. Values go to libvirt as the flavor spells
    them: nova's API validated them (libvirt judges what older API
    versions let through).
    """
    specs = flavor.extra_specs
    return tuple((name, specs[prefix + name]) for name in names
                 if prefix + name in specs)


def cputune(flavor):
    """((name, value), ...) of the flavor's <cputune>: only what its
    quota:cpu_* extra specs say. No default shares: the in-tree driver
    stopped giving 1024 a vCPU, which cgroups v2 (cpu.weight, at most
    10000) refuses for a large guest.
    """
    return _extra_specs(flavor, 'quota:cpu_', _CPUTUNE)


def _sub(parent, tag, text=None, **attrs):
    el = etree.SubElement(parent, tag,
                          {k: str(v) for k, v in attrs.items()
                           if v is not None})
    if text is not None:
        el.text = str(text)
    return el


def _settings(parent, tag, settings):
    """<tag><name>value</name>...</tag> of settings ((name, value), ...),
    unless there are none.
    """
    if settings:
        el = _sub(parent, tag)
        for name, value in settings:
            _sub(el, name, value)


def _nova_metadata(parent, instance, image_meta):
    meta = etree.SubElement(_sub(parent, 'metadata'),
                            '{%s}instance' % NOVA_NS, nsmap={'nova': NOVA_NS})
    nova = '{%s}' % NOVA_NS
    _sub(meta, nova + 'package', version=version.version_string_with_package())
    _sub(meta, nova + 'name', instance.display_name)
    _sub(meta, nova + 'creationTime',
         time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime()))
    flavor = instance.flavor
    fl = _sub(meta, nova + 'flavor', name=flavor.name, id=flavor.flavorid)
    for tag, field in (('memory', 'memory_mb'), ('disk', 'root_gb'),
                       ('swap', 'swap'), ('ephemeral', 'ephemeral_gb'),
                       ('vcpus', 'vcpus')):
        _sub(fl, nova + tag, getattr(flavor, field))
    owner = _sub(meta, nova + 'owner')
    _sub(owner, nova + 'user', instance.user_id, uuid=instance.user_id)
    _sub(owner, nova + 'project', instance.project_id,
         uuid=instance.project_id)
    if image_meta.obj_attr_is_set('id'):
        _sub(meta, nova + 'root', type='image', uuid=image_meta.id)


def _os(parent, instance, image_meta, kernel, ramdisk):
    props = image_meta.properties
    os_el = _sub(parent, 'os')
    if props.get('hw_firmware_type') == fields.FirmwareType.UEFI:
        # libvirt picks OVMF and keeps the NVRAM beside its own state.
        os_el.set('firmware', 'efi')
    _sub(os_el, 'type', 'hvm',
         arch=props.get('hw_architecture') or 'x86_64',
         machine=props.get('hw_machine_type') or
         CONF.altdriver.machine_type)
    if kernel:
        _sub(os_el, 'kernel', kernel)
        if ramdisk:
            _sub(os_el, 'initrd', ramdisk)
        _sub(os_el, 'cmdline', props.get('os_command_line') or
             'root=/dev/vda console=tty0 console=ttyS0')
    _sub(os_el, 'smbios', mode='sysinfo')


def _sysinfo(parent, instance):
    system = _sub(_sub(parent, 'sysinfo', type='smbios'), 'system')
    for name, value in (('manufacturer', 'OpenStack Foundation'),
                        ('product', 'OpenStack Nova'),
                        ('version', version.version_string_with_package()),
                        ('serial', instance.uuid),
                        ('uuid', instance.uuid),
                        ('family', 'Virtual Machine')):
        _sub(system, 'entry', value, name=name)


def disk_element(disk):
    """The <disk> element of one Disk, as a device of its own (for an
    attach or a detach of a running guest).
    """
    el = etree.Element('disk', type='network' if disk.rbd else 'file',
                       device=disk.device)
    # a disk two guests share is never cached by either host's QEMU
    _sub(el, 'driver', name='qemu', type=disk.format,
         cache='none' if disk.shareable else CONF.altdriver.disk_cache_mode,
         discard='unmap')
    if disk.alias:
        _sub(el, 'alias', name=disk.alias)
    if disk.rbd:
        source = _sub(el, 'source', protocol='rbd', name=disk.rbd.name)
        for host, port in disk.rbd.hosts:
            _sub(source, 'host', name=host, port=port)
        if disk.rbd.username:
            _sub(_sub(el, 'auth', username=disk.rbd.username), 'secret',
                 type='ceph', uuid=disk.rbd.secret_uuid)
    elif disk.source is not None:
        _sub(el, 'source', file=disk.source)
    _sub(el, 'target', dev=disk.dev, bus=disk.bus)
    if disk.device == 'cdrom' or disk.readonly:
        _sub(el, 'readonly')
    if disk.shareable:
        _sub(el, 'shareable')
    if disk.boot_order:
        _sub(el, 'boot', order=disk.boot_order)
    if disk.serial:
        _sub(el, 'serial', disk.serial)
    _settings(el, 'iotune', disk.iotune)
    return el


def _serial_devices(devices, console_log, serial_ports):
    if not serial_ports:
        # readable as a pty, logged by virtlogd
        serial = _sub(devices, 'serial', type='pty')
        if console_log:
            _sub(serial, 'log', file=console_log, append='on')
        _sub(devices, 'console', type='pty')
        return
    # Listening on TCP for nova-serialproxy; the first port, the guest's
    # ttyS0 where the kernel writes, is logged for the console log. (libvirt
    # adds the <console> alias of the first port itself.)
    for index, (host, port) in enumerate(serial_ports):
        serial = _sub(devices, 'serial', type='tcp')
        _sub(serial, 'source', mode='bind', host=host, service=port)
        if console_log and index == 0:
            _sub(serial, 'log', file=console_log, append='on')
        _sub(serial, 'target', port=index)


def _spice(devices):
    """The SPICE server of [spice], as the in-tree driver configures it,
    and the channel of the guest's SPICE agent.
    """
    opts = CONF.spice
    graphics = _sub(devices, 'graphics', type='spice', autoport='yes',
                    listen=opts.server_listen)
    for tag, value in (('image', opts.image_compression),
                       ('jpeg', opts.jpeg_compression),
                       ('zlib', opts.zlib_compression)):
        if value is not None:
            _sub(graphics, tag, compression=value)
    if opts.playback_compression is not None:
        _sub(graphics, 'playback',
             compression='on' if opts.playback_compression else 'off')
    if opts.streaming_mode is not None:
        _sub(graphics, 'streaming', mode=opts.streaming_mode)
    if opts.require_secure:
        for channel in ('main', 'display', 'inputs', 'cursor', 'playback',
                        'record', 'smartcard', 'usbredir'):
            _sub(graphics, 'channel', name=channel, mode='secure')
    if opts.agent_enabled:
        agent = _sub(devices, 'channel', type='spicevmc')
        _sub(agent, 'target', type='virtio', name='com.redhat.spice.0')


def build(instance, image_meta, disks, interfaces=(), console_log=None,
          kernel=None, ramdisk=None, serial_ports=()):
    """The domain XML (text) of instance.

    :param disks: [Disk] in the guest's device order; the disks of this
        host's files take the flavor's limits (a volume's come with it)
    :param interfaces: lxml <interface> elements (vifs.py)
    :param console_log: file the serial console is logged to
    :param kernel, ramdisk: paths for direct kernel boot
    :param serial_ports: [(address, port)] of TCP serial ports; none: one
        pty serial port
    """
    props = image_meta.properties
    flavor = instance.flavor
    dom = etree.Element('domain', type=CONF.altdriver.virt_type)
    _sub(dom, 'name', instance.name)
    _sub(dom, 'uuid', instance.uuid)
    _nova_metadata(dom, instance, image_meta)
    _sub(dom, 'memory', flavor.memory_mb * 1024, unit='KiB')
    _sub(dom, 'vcpu', flavor.vcpus)
    _settings(dom, 'cputune', cputune(flavor))
    _sysinfo(dom, instance)
    _os(dom, instance, image_meta, kernel, ramdisk)
    features = _sub(dom, 'features')
    _sub(features, 'acpi')
    _sub(features, 'apic')
    cpu_mode = CONF.altdriver.cpu_mode or (
        'host-model' if CONF.altdriver.virt_type == 'kvm' else 'none')
    if cpu_mode != 'none':
        _sub(dom, 'cpu', mode=cpu_mode)
    clock = _sub(dom, 'clock', offset='utc')
    _sub(clock, 'timer', name='pit', tickpolicy='delay')
    _sub(clock, 'timer', name='rtc', tickpolicy='catchup')
    _sub(clock, 'timer', name='hpet', present='no')
    for event, action in (('on_poweroff', 'destroy'),
                          ('on_reboot', 'restart'),
                          ('on_crash', 'destroy')):
        _sub(dom, event, action)

    devices = _sub(dom, 'devices')
    if any(d.bus == 'scsi' for d in disks):
        _sub(devices, 'controller', type='scsi', model='virtio-scsi')
    local_iotune = _extra_specs(flavor, 'quota:disk_', _FLAVOR_IOTUNE)
    for disk in disks:
        if not disk.rbd:
            disk = dataclasses.replace(disk, iotune=local_iotune)
        devices.append(disk_element(disk))
    for interface in interfaces:
        devices.append(interface)
    _serial_devices(devices, console_log, serial_ports)
    vnc, spice = CONF.vnc.enabled, CONF.spice.enabled
    # SPICE's agent moves the pointer itself; VNC needs the tablet.
    if vnc or (spice and not CONF.spice.agent_enabled):
        _sub(devices, 'input', type='tablet', bus='usb')
    if vnc:
        _sub(devices, 'graphics', type='vnc', autoport='yes',
             listen=CONF.vnc.server_listen)
    if spice:
        _spice(devices)
    if vnc or spice:
        # QXL: SPICE's own display device (the in-tree driver's default)
        _sub(_sub(devices, 'video'), 'model',
             type=props.get('hw_video_model') or
             ('qxl' if spice else 'virtio'))
    if props.get('hw_qemu_guest_agent'):
        agent = _sub(devices, 'channel', type='unix')
        _sub(agent, 'target', type='virtio', name='org.qemu.guest_agent.0')
    balloon = _sub(devices, 'memballoon', model='virtio')
    _sub(balloon, 'stats', period=10)
    return etree.tostring(dom, encoding='unicode', pretty_print=True)
