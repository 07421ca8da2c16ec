"""The test guest's console markers, read one way for every reader: the e2e
tests, and the all-in-one's tours (tools/aio/tour.sh, browser_tour.py).

The guest (tools/guest-image/init) prints marker lines ``ALTDRIVER-<NAME>
...`` on its serial console; tools/guest-image/README.md lists them. The
firmware's and the kernel's lines around them and carriage returns are
skipped; a marker may follow other output on its line.

This module imports nothing but the standard library: the tours load it by
its path (nova_altdriver.tests imports nova, which takes seconds) and
tour.sh runs it as a script::

    python3 markers.py FIELD... < CONSOLE

prints those fields of the latest boot (Boot's attributes: ready,
bootcount, net_ip, uptime, ...), one a line, empty when not known.
"""

import collections
import json
import sys

PREFIX = 'ALTDRIVER-'

# DISKRATE, RXRATE: the guest read this many bytes (of a disk with O_DIRECT,
# of a TCP stream) in ms
Rate = collections.namedtuple('Rate', 'bytes ms')


class Boot(object):
    """What the guest said during one boot."""

    def __init__(self, number):
        self.number = number    # 1 for the first boot in the text
        self.role = None        # SELF: guest or rescue (None: no self)
        self.marker = None      # MARKER: marker.txt on self
        self.net_ip = None      # NET: the address it configured
        self.ready = None       # the READY line (each boot's is its own)
        self.bootcount = None   # READY: the boot count on self
        self.found = None       # HB-FOUND: the heartbeat found on self
        self.beats = []         # HB: heartbeats written to self
        self.ticks = []         # TICK: its uptime while it runs
        self.disks = []         # DISKS: its disks now (after hot plugs)
        self.nics = []          # NICS: its NICs' MACs now (after hot plugs)
        self.sizes = {}         # SIZES: {disk: sectors, 'memory': KiB}
        self.agent = None       # AGENT: started, or failed and why
        self.passwords = []     # PASSWORD: (user, crypted) as it changed
        self.fsfreeze = []      # FSFREEZE: the agent's freeze and thaw
        self.nmis = 0           # NMI: the NMIs it took since it booted
        self.pci = {}           # PCI: {MAC or disk: its PCI address}
        self.metadata = None    # METADATA: meta_data.json, with device tags
        self.diskrates = {}     # DISKRATE: {disk: Rate} read at boot
        self.rx_port = None     # RXPORT: the TCP port it times streams on
        self.rxrates = []       # RXRATE: a Rate for each stream received

    @property
    def uptime(self):
        """The uptime in its latest TICK, None before the first."""
        return self.ticks[-1] if self.ticks else None

    @property
    def rx_bytes_per_s(self):
        """The latest stream's bytes a second, None before the first."""
        if not self.rxrates:
            return None
        rate = self.rxrates[-1]
        return rate.bytes * 1000 // max(rate.ms, 1)

    @property
    def root_password(self):
        """root's crypted password as it last changed, None if it did not."""
        return next((crypted for user, crypted in reversed(self.passwords)
                     if user == 'root'), None)


def boots(text):
    """The guest's boots in TEXT (its console), oldest first.

    Each begins with its ALTDRIVER-BOOT line; markers before the first
    one (a console whose beginning was cut off) make a boot of their own.
    """
    found = []
    for line in text.splitlines():
        start = line.find(PREFIX)
        if start < 0:
            continue
        line = line[start:].rstrip()
        name, _, rest = line[len(PREFIX):].partition(' ')
        words = rest.split()
        if name == 'BOOT' or not found:
            found.append(Boot(len(found) + 1))
        boot = found[-1]
        if name == 'SELF' and len(words) > 1:
            boot.role = words[1].partition('=')[2]
        elif name == 'MARKER' and words:
            boot.marker = ' '.join(words)
        elif (name == 'NET' and len(words) > 1 and
                words[1].startswith('ip=') and words[-1] != 'failed'):
            boot.net_ip = words[1][len('ip='):]
        elif name == 'READY':
            boot.ready = line
            count = words[0].partition('bootcount=')[2] if words else ''
            if count.isdigit():
                boot.bootcount = int(count)
        elif name == 'HB-FOUND' and words and words[0].isdigit():
            boot.found = int(words[0])
        elif name == 'HB' and words and words[0].isdigit():
            boot.beats.append(int(words[0]))
        elif name == 'DISKS':
            boot.disks = words
        elif name == 'NICS':
            boot.nics = [w.partition('=')[2] for w in words]
        elif name == 'SIZES':
            for word in words:
                key, _, value = word.partition('=')
                if value.isdigit():
                    boot.sizes[key] = int(value)
        elif name == 'AGENT' and words:
            boot.agent = rest.strip()
        elif name == 'PASSWORD' and words and '=' in words[0]:
            boot.passwords.append(tuple(words[0].split('=', 1)))
        elif name == 'FSFREEZE' and words:
            boot.fsfreeze.append(words[0])
        elif name == 'PCI':
            boot.pci = dict(w.split('=', 1) for w in words if '=' in w)
        elif name == 'METADATA':
            try:
                boot.metadata = json.loads(rest)
            except ValueError:
                pass  # a line torn by other output
        elif name == 'DISKRATE' and _rate(words[1:]):
            boot.diskrates[words[0]] = _rate(words[1:])
        elif name == 'RXPORT' and words and words[0].isdigit():
            boot.rx_port = int(words[0])
        elif name == 'RXRATE' and _rate(words):
            boot.rxrates.append(_rate(words))
        elif name == 'NMI' and words:
            count = words[0].partition('count=')[2]
            if count.isdigit():
                boot.nmis = int(count)
        elif name == 'TICK' and words:
            try:
                boot.ticks.append(float(words[0]))
            except ValueError:
                pass  # a line torn by other output
    return found


def _rate(words):
    """The Rate of the words ``bytes=<n> ms=<m>``, None if they are not."""
    if len(words) != 2:
        return None
    fields = dict(word.partition('=')[::2] for word in words)
    if not all(fields.get(k, '').isdigit() for k in ('bytes', 'ms')):
        return None
    return Rate(int(fields['bytes']), int(fields['ms']))


def link_local(mac):
    """The IPv6 link-local address (EUI-64) of the guest's NIC with this
    MAC, which it brings up (as the README says) and answers ping on.
    """
    octets = [int(part, 16) for part in mac.split(':')]
    octets[0] ^= 0x02
    eui = octets[:3] + [0xff, 0xfe] + octets[3:]
    return 'fe80::' + ':'.join('%x' % (eui[i] << 8 | eui[i + 1])
                               for i in range(0, 8, 2))


def latest(text):
    """The guest's latest boot in TEXT; one that knows nothing if none."""
    found = boots(text)
    return found[-1] if found else Boot(0)


def main():
    # the console as bytes: a firmware's or a torn line is no UTF-8
    boot = latest(sys.stdin.buffer.read().decode('utf-8', 'replace'))
    for field in sys.argv[1:]:
        value = getattr(boot, field)
        print('' if value is None else value)


if __name__ == '__main__':
    main()
