"""Options of the ``[altdriver]`` group.

They are registered on nova's global CONF when this module is imported, and
listed for oslo-config-generator through the ``oslo.config.opts`` entry point.
"""

from oslo_config import cfg

import nova.conf

CONF = nova.conf.CONF

altdriver_group = cfg.OptGroup(
    'altdriver',
    title='nova_altdriver options',
    help='Options of the nova_altdriver virt driver '
         '(``compute_driver = nova_altdriver.AltDriver``).')

altdriver_opts = [
    cfg.StrOpt(
        'connection_uri',
        default='qemu:///system',
        help='libvirt connection URI of the hypervisor this compute host '
             'manages. Read once, when the driver is created.'),
    cfg.StrOpt(
        'virt_type',
        default='kvm',
        choices=[('kvm', 'hardware-accelerated guests (needs /dev/kvm)'),
                 ('qemu', 'software-emulated guests (TCG), for hosts '
                          'without usable KVM such as nested test VMs')],
        help='Domain type of the guests this host creates.'),
    cfg.StrOpt(
        'hypervisor_hostname',
        help='Name of this host\'s compute node (its resource provider in '
             'Placement). Defaults to the host name libvirt reports. Set it '
             'only when several compute services share one machine; never '
             'change it once the node exists, nova-compute refuses to start '
             'when its node was renamed.'),
    cfg.FloatOpt(
        'stopped_event_delay',
        default=15.0,
        min=0.0,
        help='Seconds a "guest stopped" event from libvirt is held back '
             'before nova sees it. A start event for the same guest within '
             'that time cancels it, so a reboot from inside the guest is not '
             'mistaken for a power off (which would make nova stop the '
             'instance).'),
    cfg.IntOpt(
        'wait_soft_reboot_seconds',
        default=120,
        min=1,
        help='Seconds a soft reboot waits for the guest to shut down after '
             'the ACPI power button before it falls back to a hard '
             'reboot.'),
    cfg.StrOpt(
        'rescue_image_id',
        help='Glance image booted by ``rescue`` when the request names no '
             'image that has an id. Unset: the instance\'s own image.'),
    cfg.StrOpt(
        'rescue_kernel_id',
        help='Kernel image of rescue guests. Unset: the instance\'s own '
             'kernel, if it boots from one.'),
    cfg.StrOpt(
        'rescue_ramdisk_id',
        help='Ramdisk image of rescue guests. Unset: the instance\'s own '
             'ramdisk, if it boots from one.'),
    cfg.StrOpt(
        'snapshot_image_format',
        default='qcow2',
        choices=[('qcow2', 'compact, grows as written'),
                 ('raw', 'a full-size image, fastest to boot from')],
        help='Disk format of snapshot and shelve images uploaded to '
             'Glance.'),
    cfg.BoolOpt(
        'snapshot_compression',
        default=False,
        help='Compress qcow2 snapshot images (smaller uploads, slower '
             'snapshots).'),
    cfg.StrOpt(
        'snapshots_directory',
        help='Where snapshots keep their temporary files (for a running '
             'guest, the overlay that takes its writes meanwhile; the image '
             'only when it cannot be streamed to Glance). They are removed '
             'in every outcome. '
             'Unset: ``snapshots`` in ``instances_path``.'),
    cfg.IntOpt(
        'device_detach_attempts',
        default=8,
        min=1,
        help='How many times the detach of a volume or a network '
             'interface asks a running guest to let the device go before '
             'it fails (the device then stays attached and usable).'),
    cfg.IntOpt(
        'device_detach_timeout',
        default=20,
        min=1,
        help='Seconds each of those requests waits for libvirt to report '
             'the device removed.'),
    cfg.StrOpt(
        'ceph_conf_dir',
        default='/etc/ceph',
        help='Where the Ceph keyrings of Cinder\'s RBD users are '
             '(``<cluster>.client.<user>.keyring``). A volume whose libvirt '
             'secret (Cinder\'s ``rbd_secret_uuid``) is not defined on this '
             'host gets one made from that keyring; a secret the operator '
             'defined is used as it is.'),
    cfg.StrOpt(
        'machine_type',
        help='QEMU machine type of new guests (for example ``pc`` or '
             '``q35``) unless the image sets ``hw_machine_type``. Unset: '
             'libvirt\'s default for the architecture.'),
    cfg.StrOpt(
        'cpu_mode',
        choices=[('host-model', 'a model close to the host CPU, migratable'),
                 ('host-passthrough', 'the host CPU exactly (fastest, '
                                      'not migratable across CPU models)'),
                 ('none', 'the hypervisor\'s default CPU model')],
        help='CPU model of the guests. Unset: ``host-model`` with '
             '``virt_type = kvm``, ``none`` with ``qemu`` (software '
             'emulation cannot pass the host CPU through).'),
    cfg.StrOpt(
        'disk_cache_mode',
        default='none',
        choices=['none', 'writethrough', 'writeback', 'directsync',
                 'unsafe'],
        help='Host page cache mode of instance disks. ``none`` (O_DIRECT) '
             'is safe and fast on most storage; ``writethrough`` works on '
             'filesystems without O_DIRECT such as tmpfs.'),
    cfg.StrOpt(
        'migration_inbound_addr',
        help='The address other compute hosts reach this one at for '
             'migrations: its libvirtd (at ``migration_uri``), the incoming '
             'memory stream of a live migration and the disk copies of a '
             'block migration. Unset: ``[DEFAULT] my_ip``.'),
    cfg.StrOpt(
        'migration_uri',
        default='qemu+tcp://%s/system',
        help='How this host reaches another host\'s libvirtd for a '
             'migration (its libvirtd for a live migration, nova-compute '
             'for the disks of a resize or cold migration); ``%s`` is the '
             'other host\'s ``migration_inbound_addr``. Use '
             '``qemu+tls://%s/system`` in production (libvirt\'s TLS '
             'certificates on every host); ``qemu+tcp`` without '
             'authentication is for tests on loopback only.'),
    cfg.IntOpt(
        'live_migration_completion_timeout',
        default=800,
        min=0,
        help='Seconds per GiB to move (the guest\'s memory and, in a block '
             'migration, its local disks; each counted as at least 2 GiB) '
             'a live migration may take before it is aborted, the guest '
             'running on at the source. 0: no limit.'),
    cfg.IntOpt(
        'live_migration_bandwidth',
        default=0,
        min=0,
        help='Most MiB/s a live migration may use (memory and disks). '
             '0: as fast as the network goes.'),
    cfg.BoolOpt(
        'live_migration_permit_post_copy',
        default=False,
        help='Whether forcing a live migration to complete switches it to '
             'post-copy (the guest runs on the destination at once and '
             'fetches the rest of its memory from the source; a network '
             'failure meanwhile loses the guest) rather than pausing the '
             'guest until its memory is across.'),
]


def register_opts(conf):
    conf.register_group(altdriver_group)
    conf.register_opts(altdriver_opts, group=altdriver_group)


def list_opts():
    return [(altdriver_group, altdriver_opts)]


register_opts(CONF)
