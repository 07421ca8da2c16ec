"""The all-in-one cloud's server and volume operations through Horizon, in
a browser.

Run by `aio.sh browser-tour [--ci] [OUTDIR]`: headless Chromium (Debian's
chromium and chromedriver, nothing downloaded) logs in to Horizon, launches
the test guest with the Launch Instance wizard and walks it through the
actions of the Instances table (resized and reverted, resized and confirmed,
then migrated and live-migrated from the admin's Instances table, which shows
the host; the Console tab, Attach and Detach Interface); then launches it
again from a new volume (Horizon's default), attaches, extends and detaches a
blank volume (Instances and Volumes tables) and rescues and shelves the
volume-backed server. With --ci, CI's subset (Tour.steps): every page and
form once, each mission operation once. Every step is checked by the status
Horizon shows and by the marker lines the guest prints on its console, read
on the instance's Log tab (tools/guest-image/README.md; parsed by the e2e
tests' markers.py). One screenshot per step goes to OUTDIR, plus the page's
HTML when the step failed. Prints a table `step | result | seconds`; exits
non-zero if a step failed. The servers, volumes and the snapshot it made are
deleted at the end, also after a failure.

The steps and their checks are here, the pages they use in horizon_pages.py.
"""

import datetime
import functools
import itertools
import os
import re
import subprocess
import sys
import time

import openstack
from selenium.common import exceptions as sel_exc

import horizon_pages as pages
from probe import answers_ping
from probe import markers
from probe import TOP

STATE = os.environ.get('AIO_STATE', '/var/lib/nova-altdriver-aio')
HORIZON = os.environ.get('AIO_HORIZON_URL', 'http://127.0.0.1:8080')
CLOUD = 'altdriver-aio'
PASSWORD = os.environ.get('AIO_PASSWORD', 'altdriver')
NETWORK = os.environ.get('AIO_NETWORK', 'aio-net')
# the host's side of the network (tools/aio/network.sh)
BRIDGE = os.environ.get('AIO_BRIDGE', 'br-int')
WAIT = int(os.environ.get('TOUR_WAIT', '300'))
# the CLI tour's images and flavor (tour.sh): reused if there
IMAGE = 'aio-tour-guest'
RESCUE = 'aio-tour-rescue'
# stable device rescue: a volume-backed server's disks stay in place
RESCUE_STABLE = 'aio-tour-rescue-stable'
FLAVOR = 'aio-tour-flavor'
# what the server is resized to: more memory, a bigger disk
FLAVOR_BIG = 'aio-tour-flavor-big'
# flavor name: memory MiB, vCPUs, disk GB
FLAVORS = {FLAVOR: (256, 1, 1), FLAVOR_BIG: (320, 1, 2)}
# image name: its file (tools/guest-image) and properties
IMAGES = {
    IMAGE: ('disk.qcow2', {'hw_qemu_guest_agent': 'yes'}),
    RESCUE: ('rescue.qcow2', {}),
    RESCUE_STABLE: ('rescue.qcow2', {'hw_rescue_bus': 'virtio',
                                     'hw_rescue_device': 'disk'}),
}
SERVER = 'aio-browser-server'
SNAPSHOT = 'aio-browser-snapshot'
# booted from a new volume, which is deleted with it
VSERVER = 'aio-browser-volume-server'
# a blank volume hot-plugged into VSERVER
VOLUME = 'aio-browser-volume'
GIB = 1 << 30

IPV4 = re.compile(r'\b\d+\.\d+\.\d+\.\d+\b')


class Tour(object):

    def __init__(self, outdir):
        self.outdir = outdir
        self.cloud = openstack.connect(cloud=CLOUD)
        # Horizon in the browser and its pages, from the login on
        self.horizon = self.instances = self.log_tab = self.images = None
        self.admin_instances = None
        self.volumes = self.action_log = self.console_tab = None
        # the interface attached to the server: its MAC and address
        self.nic = None
        self.server_id = None
        self.last_ready = None
        # the host the server was on and its last READY line before a
        # resize (for the revert), the host a resize or migration took it to
        self.before_resize = self.moved_to = None
        # the server's flavor, as the moving steps leave it
        self.flavor = FLAVOR
        # VSERVER's boot volume, the blank VOLUME and its disk in the guest
        self.boot_volume = self.volume_id = self.guest_disk = None
        # the guest's disks as it listed them last (ALTDRIVER-DISKS)
        self.disks = []
        # the compute hosts' libvirt (aio.sh writes them): host -> URI
        with open(os.path.join(STATE, 'computes')) as f:
            self.libvirt = {h: uri for h, _, uri in map(str.split, f)}
        self.results = []

    # ------------------------------------------------------- the cloud
    def prepare(self):
        """The CLI tour's images and flavor; made as it makes them if gone."""
        c = self.cloud
        self.cleanup()
        missing = [n for n in IMAGES if not c.image.find_image(n)]
        if missing:
            build = os.path.join(TOP, 'tools', 'guest-image', 'build.sh')
            out = subprocess.check_output(['bash', build], text=True).strip()
            for name in missing:
                pages.log('uploading %s' % name)
                disk, properties = IMAGES[name]
                c.create_image(name, filename=os.path.join(out, disk),
                               disk_format='qcow2', container_format='bare',
                               visibility='public', wait=True, **properties)
        for name, (ram, vcpus, disk) in FLAVORS.items():
            if not c.compute.find_flavor(name):
                c.compute.create_flavor(name=name, ram=ram, vcpus=vcpus,
                                        disk=disk)

    def cleanup(self):
        c = self.cloud
        volumes = {v.id for v in c.block_storage.volumes(name=VOLUME)}
        for server in c.compute.servers(name='^(%s|%s)$' % (SERVER, VSERVER)):
            # its boot volume, should the server not take it along
            volumes.update(a.volume_id
                           for a in c.compute.volume_attachments(server))
            pages.log('deleting server %s' % server.id)
            c.compute.delete_server(server)
            c.compute.wait_for_delete(server, wait=WAIT)
        for volume_id in volumes:
            self.delete_volume(volume_id)
        for image in c.image.images(name=SNAPSHOT):
            pages.log('deleting image %s' % image.id)
            c.image.delete_image(image)

    def delete_volume(self, volume_id):
        """Deletes the volume unless it is gone or going, and waits until it
        is gone. One a tour left attached to no server is reset first.
        """
        storage = self.cloud.block_storage
        volume = storage.find_volume(volume_id)
        if volume is None:
            return
        pages.log('deleting volume %s (%s)' % (volume.id, volume.status))
        if volume.status not in ('available', 'error', 'deleting'):
            storage.reset_volume_status(volume, status='available',
                                        attach_status='detached')
        if volume.status != 'deleting':
            storage.delete_volume(volume)
        storage.wait_for_delete(volume, wait=WAIT)

    def qemu_capacity(self, volume_id):
        """The bytes QEMU gives the volume's disk in the server's domain on
        its host (virsh domblkinfo), None if the domain has no such disk.
        """
        uri = self.libvirt[self.cloud.compute.get_server(
            self.server_id).compute_host]
        for line in subprocess.check_output(
                ['virsh', '-c', uri, 'domblklist', self.server_id],
                text=True).splitlines():
            if line.split()[1:] == ['volumes/volume-%s' % volume_id]:
                info = subprocess.check_output(
                    ['virsh', '-c', uri, 'domblkinfo', self.server_id,
                     line.split()[0]], text=True)
                return int(re.search(r'^Capacity:\s+(\d+)', info,
                                     re.M).group(1))
        return None

    def domain_macs(self):
        """The MACs of the interfaces of the server's domain on its host
        (virsh domiflist).
        """
        uri = self.libvirt[self.cloud.compute.get_server(
            self.server_id).compute_host]
        return {line.split()[4] for line in subprocess.check_output(
            ['virsh', '-c', uri, 'domiflist', self.server_id],
            text=True).splitlines()[2:] if len(line.split()) == 5}

    def domain_memory(self):
        """{host: KiB of memory} of the hosts whose libvirtd has the
        server's domain.
        """
        found = {}
        for host, uri in self.libvirt.items():
            info = subprocess.run(['virsh', '-c', uri, 'dominfo',
                                   self.server_id], capture_output=True,
                                  text=True)
            if info.returncode == 0:
                found[host] = int(re.search(r'^Max memory:\s+(\d+)',
                                            info.stdout, re.M).group(1))
        return found

    # ------------------------------------------------------------ checks
    def wait_status(self, *wanted):
        state = {}

        def reached():
            state.update(self.instances.cells(self.server_id) or
                         {'Status': '(no row)'})
            if state['Status'] == 'Error':
                raise pages.StepFailed('the instance went to Error: %s'
                                       % self.horizon.messages())
            return state['Status'] in wanted and state.get('Task') == 'None'
        try:
            pages.wait_for('status %s' % ' or '.join(wanted), reached, WAIT)
        except pages.StepFailed as e:
            raise pages.StepFailed('%s (last: status %s, task %s)'
                                   % (e, state.get('Status'),
                                      state.get('Task')))
        pages.log('status %s' % state['Status'])

    def wait_volume(self, volume_id, wanted):
        """The volume's row on the Volumes page shows WANTED, {column: text}.
        """
        state = {}

        def reached():
            state.update(self.volumes.cells(volume_id) or
                         {'Status': '(no row)'})
            if state['Status'].startswith('Error'):
                raise pages.StepFailed('the volume went to %s: %s'
                                       % (state['Status'],
                                          self.horizon.messages()))
            return all(state.get(k) == v for k, v in wanted.items())
        try:
            pages.wait_for('volume %s' % wanted, reached, WAIT)
        except pages.StepFailed as e:
            raise pages.StepFailed('%s (last: %s)' % (e, {
                k: state.get(k) for k in wanted}))
        pages.log('volume %s: %s' % (volume_id, wanted))

    def console(self):
        return self.log_tab.text(self.server_id)

    def host(self):
        """The server's host, as the admin's Instances table shows it."""
        return (self.admin_instances.cells(self.server_id) or {}).get('Host')

    def placed(self, host, flavor):
        """The admin's Instances table shows the server on HOST (None:
        any) with FLAVOR, and the domain is on that host only, with the
        flavor's memory. The host.
        """
        cells = self.admin_instances.cells(self.server_id) or {}
        shown = (cells.get('Host'), cells.get('Flavor'))
        if shown != (host or shown[0], flavor):
            raise pages.StepFailed('Horizon shows host %s, flavor %s; '
                                   'expected %s, %s' % (shown + (
                                       host or 'any', flavor)))
        memory = self.domain_memory()
        wanted = {shown[0]: FLAVORS[flavor][0] * 1024}
        if memory != wanted:
            raise pages.StepFailed('the domain, by host (KiB of memory): %s, '
                                   'not %s' % (memory, wanted))
        pages.log('on %s with %s (%d KiB)' % (shown + (memory[shown[0]],)))
        return shown[0]

    def disk_change(self):
        """The guest lists its disks anew (ALTDRIVER-DISKS, printed on every
        hot plug and unplug): the disks it gained and lost.
        """
        before = self.disks

        def changed():
            # none: the console's last lines hold no DISKS line
            now = markers.latest(self.console()).disks
            return now != before and now
        self.disks = pages.wait_for('ALTDRIVER-DISKS other than %s'
                                    % ' '.join(before), changed, WAIT)
        pages.log('console: ALTDRIVER-DISKS %s' % ' '.join(self.disks))
        return set(self.disks) - set(before), set(before) - set(self.disks)

    def wait_console(self, pattern):
        regex = re.compile(pattern)

        def last_match():
            return next((x for x in reversed(self.console().splitlines())
                         if regex.search(x)), None)
        line = pages.wait_for('console line /%s/' % pattern, last_match, WAIT)
        pages.log('console: %s' % line)

    def wait_boot(self, count):
        """A new ALTDRIVER-READY line, with boot count COUNT."""
        def new_boot():
            boot = markers.latest(self.console())
            return boot if boot.ready and boot.ready != self.last_ready \
                else None
        boot = pages.wait_for('a new ALTDRIVER-READY line', new_boot, WAIT)
        self.last_ready = boot.ready
        pages.log('console: %s' % boot.ready)
        if boot.bootcount != count:
            raise pages.StepFailed('expected bootcount=%d: %s'
                                   % (count, boot.ready))

    def ticks(self, advancing):
        """The guest's uptime (its ALTDRIVER-TICK lines) goes on or not."""
        before = markers.latest(self.console()).uptime
        time.sleep(4)
        boot = markers.latest(self.console())
        if (before != boot.uptime) != advancing or boot.uptime is None:
            raise pages.StepFailed('the guest should %s, its uptime: %s / %s'
                                   % ('run' if advancing else 'stand still',
                                      before, boot.uptime))
        if advancing and boot.ready != self.last_ready:
            raise pages.StepFailed('the guest booted again')
        pages.log('console: uptime %s' % boot.uptime)

    def network_ok(self):
        """The guest's latest boot configured the address Horizon shows for
        it (from the config drive) and the host reaches it over the bridge.
        """
        shown = IPV4.findall((self.instances.cells(self.server_id) or
                              {}).get('IP Address', ''))
        configured = markers.latest(self.console()).net_ip
        if not shown or configured != shown[0]:
            raise pages.StepFailed('Horizon shows address %s, the guest\'s '
                                   'last boot configured: %s'
                                   % (shown, configured))
        for _ in range(15):
            if subprocess.run(['ping', '-c', '1', '-W', '2', shown[0]],
                              stdout=subprocess.DEVNULL).returncode == 0:
                pages.log('guest answers ping at %s' % shown[0])
                return
        raise pages.StepFailed('no answer to ping from %s' % shown[0])

    # ------------------------------------------------------------- steps
    def action(self, name, fill=None):
        self.instances.action(self.server_id, name, fill)

    def login(self):
        self.horizon = pages.Horizon(HORIZON)
        self.instances = pages.InstancesPage(self.horizon)
        self.log_tab = pages.LogTab(self.horizon)
        self.images = pages.ImagesPage(self.horizon)
        self.volumes = pages.VolumesPage(self.horizon)
        self.admin_instances = pages.AdminInstancesPage(self.horizon)
        self.action_log = pages.ActionLogTab(self.horizon)
        self.console_tab = pages.ConsoleTab(self.horizon)
        pages.LoginPage(self.horizon).log_in('admin', PASSWORD, 'Default')

    def fill_wizard(self, name, new_volume, attempts=2):
        """Details, Source, Flavor, Networks of the Launch Instance wizard:
        the image, into a new volume (Horizon's default; deleted with the
        server) or not (an image-backed server).

        Now and then the wizard's network tables stay empty although
        Horizon fetched the network: the wizard is then opened again.
        """
        wizard = self.instances.launch_wizard()
        wizard.name(name)
        wizard.go_to('Source')
        pages.wait_for('image %s offered' % IMAGE,
                       lambda: wizard.allocate(IMAGE), 30)
        if not wizard.create_volume(new_volume) and new_volume:
            raise pages.StepFailed('the wizard offers no Create New Volume')
        if new_volume:
            pages.wait_for('Delete Volume on Instance Delete offered',
                           lambda: wizard.delete_volume_on_delete(True), 10)
        wizard.go_to('Flavor')
        pages.wait_for('flavor %s offered' % FLAVOR,
                       lambda: wizard.allocate(FLAVOR), 30)
        wizard.go_to('Networks')
        try:
            pages.wait_for('network %s offered' % NETWORK,
                           lambda: wizard.allocate(NETWORK), 20)
        except pages.StepFailed:
            if attempts == 1:
                raise
            pages.log('the wizard offers no network: opening it again')
            self.horizon.save(os.path.join(self.outdir,
                                           'wizard-without-networks'))
            wizard.cancel()
            return self.fill_wizard(name, new_volume, attempts - 1)
        return wizard

    def launch(self, name, new_volume):
        wizard = self.fill_wizard(name, new_volume)
        wizard.go_to('Configuration')
        config_drive = wizard.config_drive()
        wizard.launch()
        self.server_id = pages.wait_for('the new instance listed',
                                        lambda: self.instances.find(name),
                                        60)
        pages.log('instance %s' % self.server_id)
        self.last_ready = None
        self.wait_status('Active')
        self.wait_boot(1)
        if config_drive:
            self.wait_console('ALTDRIVER-CONFIGDRIVE')
        self.network_ok()

    def launch_volume_backed(self):
        """The guest boots from the new volume (vda), which the Volumes page
        shows attached and bootable.
        """
        self.launch(VSERVER, new_volume=True)
        self.wait_console('ALTDRIVER-SELF vda role=guest')
        self.disks = markers.latest(self.console()).disks
        attached = '/dev/vda on %s' % VSERVER
        self.boot_volume = pages.wait_for(
            'a volume %s' % attached, lambda: next((
                v for v, cells in self.volumes.all_cells().items()
                if cells.get('Attached To') == attached), None), 60)
        self.wait_volume(self.boot_volume, {'Status': 'In-use',
                                            'Bootable': 'Yes'})

    def stop(self):
        self.action('stop')
        self.wait_status('Shutoff')
        self.wait_console('ALTDRIVER-ACPI-POWER')

    def power_on(self, action, count):
        self.action(action)
        self.wait_status('Active')
        self.wait_boot(count)
        self.network_ok()

    def pause(self):
        self.action('pause')
        self.wait_status('Paused')
        self.ticks(advancing=False)

    def suspend(self):
        self.action('suspend')
        self.wait_status('Suspended')

    def resume(self, action):
        self.action(action)
        self.wait_status('Active')
        self.ticks(advancing=True)

    def rescue(self, image, disk=r'\w+'):
        """Rescued with IMAGE: its guest writes to the server's DISK."""
        self.action('rescue', lambda: self.horizon.choose('id_image', image))
        self.wait_status('Rescue')
        self.wait_console(r'ALTDRIVER-SELF \w+ role=rescue')
        self.wait_console(r'ALTDRIVER-OTHER %s marker=' % disk)
        self.wait_console(r'ALTDRIVER-RESCUE-WROTE %s' % disk)
        self.wait_boot(1)  # the rescue disk's own first boot

    def unrescue(self, count):
        self.power_on('unrescue', count)
        self.wait_console('ALTDRIVER-RESCUED rescued-by-rescue-image')

    def snapshot(self):
        self.action('snapshot',
                    lambda: self.horizon.type_into('id_name', SNAPSHOT))
        self.wait_status('Active')  # nova has uploaded the snapshot
        pages.wait_for('snapshot %s Active on the Images page' % SNAPSHOT,
                       lambda: self.images.active(SNAPSHOT), WAIT)

    def shelve(self):
        self.action('shelve')
        # Horizon offers Unshelve only to offloaded servers: nova offloads
        # shelved ones after the all-in-one's shelved_offload_time (30 s)
        self.wait_status('Shelved', 'Shelved Offloaded')
        self.wait_status('Shelved Offloaded')

    def rebuild(self):
        self.action('rebuild', lambda: self.horizon.choose('id_image', IMAGE))
        self.wait_status('Active')
        self.wait_boot(1)  # a new disk: counting starts over
        self.network_ok()

    # ---------------------------------------------------- moving steps
    def resize(self, count):
        """To the bigger flavor (Resize Instance), on the host the scheduler
        picks (either: allow_resize_to_same_host): the guest boots its
        disk's copy there, whose boot count goes on.
        """
        self.before_resize = (self.host(), self.last_ready)
        self.action('resize',
                    lambda: self.horizon.choose('id_flavor', FLAVOR_BIG))
        self.wait_status('Confirm or Revert Resize/Migrate')
        self.flavor = FLAVOR_BIG
        self.moved_to = self.placed(None, FLAVOR_BIG)
        self.wait_boot(count)
        self.network_ok()

    def revert_resize(self, count):
        """Revert Resize/Migrate: the disk set aside on the old host comes
        back and the guest boots it there.
        """
        host, self.last_ready = self.before_resize
        self.action('revert')
        self.wait_status('Active')
        self.flavor = FLAVOR
        self.placed(host, FLAVOR)
        self.wait_boot(count)
        self.network_ok()

    def confirm(self):
        """Confirm Resize/Migrate: the server stays where it went."""
        self.action('confirm')
        self.wait_status('Active')
        self.placed(self.moved_to, self.flavor)
        self.ticks(advancing=True)

    def other_host(self):
        return next(h for h in self.libvirt if h != self.host())

    def migrate(self, count):
        """Migrate Instance (admin): nova picks the other host, where the
        guest boots.
        """
        self.moved_to = self.other_host()
        self.admin_instances.action(self.server_id, 'migrate')
        self.wait_status('Confirm or Revert Resize/Migrate')
        self.placed(self.moved_to, self.flavor)
        self.wait_boot(count)
        self.network_ok()

    def live_migrate(self):
        """Live Migrate Instance (admin) to the other host: the guest runs
        on without a boot, its port works from the new host.
        """
        target = self.other_host()
        self.admin_instances.action(
            self.server_id, 'live_migrate',
            lambda: self.horizon.choose('id_host', target))
        self.wait_status('Active')
        self.placed(target, self.flavor)
        self.ticks(advancing=True)  # and no new READY line
        self.network_ok()

    # ---------------------------------------------- console, interfaces
    def vnc_console(self):
        """The Console tab: noVNC in its frame connects through
        nova-novncproxy to the guest's VNC server and draws its screen.
        """
        url = self.console_tab.open(self.server_id)
        pages.log('console frame: %s' % url.split('?')[0])
        state = {}

        def drawn():
            state.update(self.console_tab.state())
            return (state['status'].startswith('Connected') and
                    state['width'] and state['height'] and state['varied'])
        try:
            pages.wait_for('noVNC connected, the screen drawn', drawn, 60)
        except pages.StepFailed as e:
            raise pages.StepFailed('%s (last: %s)' % (e, state))
        pages.log('noVNC: %s, canvas %dx%d' % (
            state['status'], state['width'], state['height']))

    def nic_change(self, before):
        """The guest lists its NICs anew (ALTDRIVER-NICS, printed when they
        change): the MACs it gained and lost.
        """
        def changed():
            now = markers.latest(self.console()).nics
            return now != before and now
        now = pages.wait_for('ALTDRIVER-NICS other than %s' % before,
                             changed, WAIT)
        pages.log('console: ALTDRIVER-NICS %s' % ' '.join(now))
        return set(now) - set(before), set(before) - set(now)

    def attach_interface(self):
        """Attach Interface by network: nova makes a port there and
        hot-plugs it; the guest lists a NIC more and brings it up, the host
        reaches its IPv6 link-local address over the bridge.
        """
        before = markers.latest(self.console()).nics

        def fill():
            self.horizon.choose('id_specification_method',
                                'by Network (and IP address)')
            self.horizon.choose('id_network', NETWORK)
        self.action('attach_interface', fill)
        added, gone = self.nic_change(before)
        if len(added) != 1 or gone:
            raise pages.StepFailed('the guest gained %s and lost %s, not one '
                                   'NIC' % (sorted(added), sorted(gone)))
        mac = added.pop()
        port = next((p for p in self.cloud.network.ports(
            device_id=self.server_id) if p.mac_address == mac), None)
        if port is None:
            raise pages.StepFailed('no port of the server has %s' % mac)
        self.nic = (mac, port.id, port.fixed_ips[0]['ip_address'])
        pages.log('port %s: %s, %s' % (port.id, mac, self.nic[2]))
        if mac not in self.domain_macs():
            raise pages.StepFailed('the domain has no interface %s' % mac)
        address = '%s%%%s' % (markers.link_local(mac), BRIDGE)
        if not answers_ping(address, 15):
            raise pages.StepFailed('no answer to ping from %s' % address)
        pages.log('the new NIC answers ping at %s' % address)

    def detach_interface(self):
        """Detach Interface (the port by its address): the guest lists the
        NIC no more and runs on, the domain has no such interface, nova
        deletes the port it made.
        """
        mac, port_id, ip = self.nic
        before = markers.latest(self.console()).nics
        self.action('detach_interface',
                    lambda: self.horizon.choose('id_port', ip))
        added, gone = self.nic_change(before)
        if added or gone != {mac}:
            raise pages.StepFailed('the guest gained %s and lost %s, not %s'
                                   % (sorted(added), sorted(gone), mac))
        pages.wait_for('the domain without %s' % mac,
                       lambda: mac not in self.domain_macs(), WAIT)
        address = markers.link_local(mac)
        if answers_ping('%s%%%s' % (address, BRIDGE), 1):
            raise pages.StepFailed('%s still answers' % address)
        pages.wait_for('port %s deleted' % port_id,
                       lambda: not self.cloud.network.find_port(port_id),
                       WAIT)
        pages.log('port %s deleted' % port_id)
        self.ticks(advancing=True)
        self.network_ok()

    def delete(self):
        self.action('delete')
        pages.wait_for('the instance leaves the table',
                       lambda: self.instances.row(self.server_id) is None,
                       WAIT)
        self.server_id = None

    def delete_volume_backed(self):
        self.delete()
        pages.wait_for('its boot volume leaves the Volumes page',
                       lambda: self.volumes.row(self.boot_volume) is None,
                       WAIT)
        pages.log('volume %s deleted with it' % self.boot_volume)

    # ---------------------------------------------------- volume steps
    def create_volume(self):
        """A blank volume of 1 GiB (Project > Volumes > Create Volume)."""
        def fill():
            self.horizon.type_into('id_name', VOLUME)
            self.horizon.type_into('id_size', '1')
        self.volumes.table_action('create', fill)
        self.volume_id = pages.wait_for('volume %s listed' % VOLUME,
                                        lambda: self.volumes.find(VOLUME), 60)
        self.wait_volume(self.volume_id, {'Status': 'Available',
                                          'Size': '1GiB'})

    def attach_volume(self):
        """Hot-plugged: the guest sees one disk more, empty and 1 GiB."""
        self.action('attach_volume',
                    lambda: self.horizon.choose('id_volume', VOLUME))
        self.wait_volume(self.volume_id, {'Status': 'In-use'})
        added, gone = self.disk_change()
        if len(added) != 1 or gone:
            raise pages.StepFailed('the guest gained %s and lost %s, not one '
                                   'disk' % (sorted(added), sorted(gone)))
        self.guest_disk = added.pop()
        # 1 GiB in sectors of 512 bytes, no file system on it
        self.wait_console('ALTDRIVER-EXTRA %s size=2097152 fs=none'
                          % self.guest_disk)

    def extend_volume(self):
        """Extended to 2 GiB while attached: Cinder tells nova, which has
        the driver grow QEMU's disk under the running guest.
        """
        self.volumes.action(self.volume_id, 'extend',
                            lambda: self.horizon.type_into('id_new_size', '2'))
        self.wait_volume(self.volume_id, {'Status': 'In-use', 'Size': '2GiB'})

        def extended():
            found = [a for a in self.action_log.actions(self.server_id)
                     if a.get('Action') == 'extend_volume']
            if found and found[0].get('Message') == 'Error':
                raise pages.StepFailed('extend_volume failed: %s' % found[0])
            return found
        found = pages.wait_for('extend_volume in the Action Log', extended,
                               60)
        pages.log('Action Log: extend_volume %s' % found[0].get('Request ID'))
        pages.wait_for("QEMU's disk of 2 GiB",
                       lambda: self.qemu_capacity(self.volume_id) == 2 * GIB,
                       WAIT)
        pages.log("QEMU's disk has 2 GiB")

    def detach_volume(self):
        """Unplugged: the guest lost that disk and runs on."""
        self.action('detach_volume',
                    lambda: self.horizon.choose('id_volume', VOLUME))
        added, gone = self.disk_change()
        if added or gone != {self.guest_disk}:
            raise pages.StepFailed('the guest gained %s and lost %s, not %s'
                                   % (sorted(added), sorted(gone),
                                      self.guest_disk))
        self.wait_volume(self.volume_id, {'Status': 'Available'})
        self.ticks(advancing=True)

    def volume_delete(self):
        self.volumes.action(self.volume_id, 'delete')
        pages.wait_for('the volume leaves the table',
                       lambda: self.volumes.row(self.volume_id) is None,
                       WAIT)

    # ------------------------------------------------------------ runner
    def steps(self, full=True):
        """The tour's steps, in order. Without FULL, CI's subset: every page
        and form of Horizon the tour uses once, and each mission operation
        once (the CLI tour and the e2e tier run the rest of the actions on
        real QEMU already).
        """
        # the boot counts are taken in the steps' order, as the list is made
        later = functools.partial
        boots = itertools.count(2)  # the server's disk: the launch was 1
        steps = [
            ('log in', self.login),
            ('launch instance (no volume)',
             lambda: self.launch(SERVER, new_volume=False)),
            ('shut off', self.stop),
            ('start', later(self.power_on, 'start', next(boots))),
        ]
        if full:
            steps += [
                ('soft reboot',
                 later(self.power_on, 'soft_reboot', next(boots))),
                ('hard reboot', later(self.power_on, 'reboot', next(boots))),
                ('pause', self.pause),
                ('resume (from pause)', lambda: self.resume('pause')),
                ('suspend', self.suspend),
                ('resume (from suspend)', lambda: self.resume('suspend')),
            ]
        steps += [
            ('rescue (rescue image)', lambda: self.rescue(RESCUE)),
            ('unrescue', later(self.unrescue, next(boots))),
            ('create snapshot', self.snapshot),
            ('shelve (offloaded by nova)', self.shelve),
            ('unshelve', later(self.power_on, 'shelve', next(boots))),
            ('rebuild', self.rebuild),
        ]
        boots = itertools.count(2)  # the rebuild's new disk was 1
        if full:
            # the resized copy of the disk goes on from the disk's count;
            # the revert boots the disk set aside, whose count goes on too
            resized = next(boots)
            steps += [
                ('resize (bigger flavor)', later(self.resize, resized)),
                ('revert resize', later(self.revert_resize, resized)),
                ('resize (again)', later(self.resize, next(boots))),
                ('confirm resize', self.confirm),
                ('migrate (admin)', later(self.migrate, next(boots))),
                ('confirm migration', self.confirm),
            ]
        steps.append(('live migrate (admin)', self.live_migrate))
        if full:
            steps.append(('live migrate back (admin)', self.live_migrate))
        steps += [
            ('console (noVNC)', self.vnc_console),
            ('attach interface', self.attach_interface),
            ('detach interface', self.detach_interface),
            ('delete', self.delete),
            # Horizon's default launch: the image into a new volume, which
            # the guest boots; a blank volume goes in and out of it
            ('launch instance (new volume)', self.launch_volume_backed),
            ('create volume', self.create_volume),
            ('attach volume', self.attach_volume),
            ('extend volume (attached)', self.extend_volume),
            ('detach volume', self.detach_volume),
        ]
        boots = itertools.count(2)  # the boot volume's first boot was 1
        if full:
            steps += [
                # stable device rescue: the boot volume stays vda
                ('rescue (volume-backed)',
                 lambda: self.rescue(RESCUE_STABLE, 'vda')),
                ('unrescue (volume-backed)',
                 later(self.unrescue, next(boots))),
            ]
        steps += [
            # nova offloads a volume-backed server at once
            ('shelve (volume-backed)', self.shelve),
            ('unshelve (volume-backed)',
             later(self.power_on, 'shelve', next(boots))),
            ('delete (its volume too)', self.delete_volume_backed),
            ('delete volume', self.volume_delete),
        ]
        return steps

    def run_step(self, number, name, function):
        pages.log('== %s' % name)
        t0 = time.time()
        base = os.path.join(self.outdir, '%02d-%s' % (
            number, re.sub(r'[^a-z0-9]+', '-', name.lower()).strip('-')))
        try:
            function()
            result = 'ok'
        except Exception as e:
            result = 'FAILED'
            # Selenium's messages end in the driver's stack trace
            msg = getattr(e, 'msg', None) or str(e)
            pages.log('!! %s FAILED: %s: %s' % (name, type(e).__name__, msg))
            if self.horizon and self.horizon.messages():
                pages.log('!! Horizon says: %s' % self.horizon.messages())
        if self.horizon:
            try:
                self.horizon.save(base, html=result != 'ok')
            except sel_exc.WebDriverException as e:
                pages.log('no screenshot: %s' % e)
        self.results.append((name, result, time.time() - t0))
        return result == 'ok'

    def run(self, full):
        t0 = time.time()
        steps = self.steps(full)
        try:
            self.prepare()
            for number, (name, function) in enumerate(steps, 1):
                if not self.run_step(number, name, function):
                    break  # the server is in no state for the next action
        finally:
            if self.horizon:
                self.horizon.quit()
            self.cleanup()
        done = [r[0] for r in self.results]
        skipped = [(n, 'skipped', 0) for n, _ in steps if n not in done]
        print('\n%-34s | %-7s | %s' % ('step', 'result', 'seconds'))
        print('-' * 35 + '+' + '-' * 9 + '+' + '-' * 8)
        for name, result, seconds in self.results + skipped:
            print('%-34s | %-7s | %d' % (name, result, seconds))
        ok = not skipped and all(r[1] == 'ok' for r in self.results)
        print('browser tour: %d s, %s; screenshots in %s' % (
            time.time() - t0, 'all steps passed' if ok else 'FAILURES',
            self.outdir))
        return 0 if ok else 1


def main():
    os.environ.setdefault('OS_CLIENT_CONFIG_FILE',
                          os.path.join(STATE, 'clouds.yaml'))
    args = sys.argv[1:]
    full = '--ci' not in args
    args = [a for a in args if a != '--ci']
    outdir = args[0] if args else os.path.join(
        STATE, 'browser-tour',
        datetime.datetime.now().strftime('%Y%m%d-%H%M%S'))
    os.makedirs(outdir, exist_ok=True)
    print(outdir, flush=True)
    return Tour(outdir).run(full)


if __name__ == '__main__':
    sys.exit(main())
