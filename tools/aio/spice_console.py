"""A guest's SPICE console through nova-spicehtml5proxy, as the SPICE HTML5
client in a browser uses it (run by tour.sh with the cloud's Python:
websocket-client comes with it).

    spice_console.py URL

URL is what `openstack console url show --spice` gives: the client's page
(spice_auto.html) on the proxy, with the console's token in its query. The
page must be the SPICE client's, and the scripts it loads must be served
too. Then a websocket to the proxy with that token (nova's websockify proxy
takes it from the query) carries SPICE to the guest's SPICE server: the
client's link message of a main channel goes in, and the server must
answer with its link header (magic REDQ, major version 2) and a link reply
whose error code is SPICE_LINK_ERR_OK. Prints what the server answered;
exits non-zero, saying why, otherwise.
"""

import re
import struct
import sys
import urllib.parse
import urllib.request

import websocket

TIMEOUT = 10
MAGIC = b'REDQ'
MAJOR, MINOR = 2, 2
# SpiceLinkMess (packed): connection_id, channel_type (1: main),
# channel_id, num_common_caps, num_channel_caps, caps_offset (from the
# start of SpiceLinkMess), then the capability words
LINK_MESS = '<IBBIII'
LINK_MESS_SIZE = struct.calcsize(LINK_MESS)
# common: PROTOCOL_AUTH_SELECTION, AUTH_SPICE, MINI_HEADER; main:
# SEMI_SEAMLESS_MIGRATE, SEAMLESS_MIGRATE (what spice-html5 sends)
CAPS = (1 << 0 | 1 << 1 | 1 << 3, 1 << 0 | 1 << 3)
# SpiceLinkHeader: magic, major, minor, size of what follows
HEADER = '<4sIII'
HEADER_SIZE = struct.calcsize(HEADER)
# the scripts a page loads: <script src=...> and ES module imports
SCRIPTS = re.compile(r'''<script[^>]*\ssrc=["']([^"']+)["']'''
                     r'''|\bimport\b[^'";]*\bfrom\s*["']([^"']+)["']''')


def link_message():
    body = struct.pack(LINK_MESS, 0, 1, 0, 1, 1, LINK_MESS_SIZE)
    body += struct.pack('<%dI' % len(CAPS), *CAPS)
    return struct.pack(HEADER, MAGIC, MAJOR, MINOR, len(body)) + body


def fetch(url):
    with urllib.request.urlopen(url, timeout=TIMEOUT) as response:
        return response.read().decode('utf-8', 'replace')


def check_page(url):
    """The client's page, and the scripts it loads, are served."""
    page = fetch(url)
    if 'spice-screen' not in page:
        sys.exit('%s is not the SPICE client\'s page: %r' % (url, page[:200]))
    scripts = [a or b for a, b in SCRIPTS.findall(page)]
    if not scripts:
        sys.exit('the page %s loads no script' % url)
    for script in scripts:
        fetch(urllib.parse.urljoin(url, script))
    return scripts


def receive(ws, size, received):
    """Reads from the websocket until RECEIVED holds SIZE bytes."""
    while len(received) < size:
        opcode, data = ws.recv_data()
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            sys.exit('the proxy closed the connection after %r' % received)
        received += data
    return received


def main():
    url = sys.argv[1]
    parts = urllib.parse.urlsplit(url)
    token = urllib.parse.parse_qs(parts.query).get('token')
    if not token:
        sys.exit('no token in %s' % url)
    scripts = check_page(url)
    # a client that is no browser sends no Origin, which the proxy accepts;
    # websockify speaks its 'binary' subprotocol
    ws = websocket.create_connection(
        'ws://%s/?%s' % (parts.netloc, urllib.parse.urlencode(
            {'token': token[0]})),
        timeout=TIMEOUT, subprotocols=['binary', 'base64'],
        suppress_origin=True)
    try:
        ws.send_binary(link_message())
        reply = receive(ws, HEADER_SIZE, b'')
        magic, major, minor, size = struct.unpack(HEADER, reply[:HEADER_SIZE])
        if magic != MAGIC or major != MAJOR:
            sys.exit('not a SPICE server\'s link header: %r'
                     % reply[:HEADER_SIZE])
        # SpiceLinkReply: its error code first (then the server's public
        # key for the ticket, and its capabilities)
        if size < 4:
            sys.exit('a link reply of %d bytes' % size)
        reply = receive(ws, HEADER_SIZE + 4, reply)
    except websocket.WebSocketTimeoutException:
        sys.exit('the SPICE server did not answer within %d s' % TIMEOUT)
    except websocket.WebSocketException as e:
        sys.exit('the proxy\'s websocket failed: %s' % e)
    finally:
        ws.close()
    error, = struct.unpack('<I', reply[HEADER_SIZE:HEADER_SIZE + 4])
    if error != 0:
        sys.exit('the SPICE server refused the link: error %d' % error)
    print('SPICE client %s (%s); the guest\'s SPICE server: protocol '
          '%d.%d, link OK' % (parts.path, ' '.join(scripts), major, minor))
    return 0


if __name__ == '__main__':
    sys.exit(main())
