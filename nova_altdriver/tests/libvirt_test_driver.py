"""Private hypervisors from libvirt's built-in test driver (no daemon).

``test:///<node file>`` gives every connection its own state, so each test
(and each compute host of a test) gets a hypervisor of its own.
"""

import os
import uuid

import libvirt
from lxml import etree

NODE_XML = """<node>
  <cpu>
    <mhz>2400</mhz><model>x86_64</model><active>%(cpus)d</active>
    <nodes>1</nodes><sockets>1</sockets><cores>%(cpus)d</cores>
    <threads>1</threads>
  </cpu>
  <memory>%(memory_kib)d</memory>
</node>
"""


def node_uri(directory, cpus=8, memory_mb=16384):
    """A test:/// URI for a fresh private hypervisor described in directory.
"""
    path = os.path.join(directory, 'node-%s.xml' % uuid.uuid4().hex[:8])
    with open(path, 'w') as f:
        f.write(NODE_XML % {'cpus': cpus, 'memory_kib': memory_mb * 1024})
    return 'test://' + path


def domain_xml(instance_uuid, name, memory_mb=128, vcpus=1):
    """A minimal domain the test driver accepts."""
    domain = etree.Element('domain', type='test')
    etree.SubElement(domain, 'name').text = name
    etree.SubElement(domain, 'uuid').text = instance_uuid
    etree.SubElement(domain, 'memory', unit='MiB').text = str(memory_mb)
    etree.SubElement(domain, 'vcpu').text = str(vcpus)
    os_el = etree.SubElement(domain, 'os')
    etree.SubElement(os_el, 'type').text = 'hvm'
    return etree.tostring(domain, encoding='unicode')


def persist_domains(conn, uri):
    """Writes the domains of conn into the node file of test URI uri, so
    that the next connection (a restarted compute service) finds them,
    as a real libvirtd would.
    """
    path = uri[len('test://'):]
    node = etree.parse(path).getroot()
    for old in node.findall('domain'):
        node.remove(old)
    for dom in conn.listAllDomains():
        node.append(etree.fromstring(dom.XMLDesc(
            libvirt.VIR_DOMAIN_XML_INACTIVE)))
    with open(path, 'wb') as f:
        f.write(etree.tostring(node))
