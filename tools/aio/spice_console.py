"""A guest's SPICE console through nova-spicehtml5proxy, as the SPICE HTML5
client in a browser uses it (run by tour.sh with the cloud's Python:
websocket-client comes with it).

    spice_console.py URL

URL is what `openstack console url show --spice` gives: the client's page
on the proxy, with the console's token in its query. The page must answer
200 and be the SPICE client's; then a websocket to the proxy with that
token carries SPICE to the guest's SPICE server, which answers the link
message of a main channel with its own (magic REDQ, protocol 2) and a
status. Prints what the server answered; exits non-zero, saying why,
otherwise.
"""

import struct
import sys
import urllib.parse
import urllib.request

import websocket

TIMEOUT = 10
# SpiceLinkMess of a main channel, protocol 2.2, with the capabilities
# words of a client that can authenticate by SPICE ticket
LINK = struct.pack('<4sIIIIBBIIIII', b'REDQ', 2, 2, 42 - 16, 0, 1, 0, 1, 1,
                   18, 11, 9)


def main():
    url = sys.argv[1]
    with urllib.request.urlopen(url, timeout=TIMEOUT) as response:
        page = response.read().decode('utf-8', 'replace')
    if 'spice' not in page.lower():
        sys.exit('%s is not the SPICE client: %r' % (url, page[:200]))
    token = urllib.parse.parse_qs(
        urllib.parse.urlsplit(url).query).get('token')
    if not token:
        sys.exit('no token in %s' % url)
    parts = urllib.parse.urlsplit(url)
    ws = websocket.create_connection(
        'ws://%s/?token=%s' % (parts.netloc, token[0]), timeout=TIMEOUT,
        subprotocols=['binary', 'base64'], suppress_origin=True)
    try:
        ws.send_binary(LINK)
        reply = b''
        while len(reply) < 16:
            opcode, data = ws.recv_data()
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                sys.exit('the proxy closed the connection after %r' % reply)
            reply += data
    finally:
        ws.close()
    magic, major, minor, size = struct.unpack('<4sIII', reply[:16])
    if magic != b'REDQ' or major != 2:
        sys.exit('not a SPICE server\'s reply: %r' % reply[:16])
    print('SPICE server: protocol %d.%d' % (major, minor))
    return 0


if __name__ == '__main__':
    sys.exit(main())
