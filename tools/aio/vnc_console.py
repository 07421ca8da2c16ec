"""A guest's VNC console through nova-novncproxy, as noVNC in a browser uses
it (run by tour.sh with the cloud's Python: websocket-client comes with it).

    vnc_console.py URL

URL is what `openstack console url show --novnc` gives: noVNC's page on
the proxy, with the console's token in its query. The page must answer 200
and be noVNC's; then a websocket to the proxy with that token carries RFB
to the guest's VNC server: the version, no authentication (nova's security
proxy negotiates the server's and offers the client "None"), the server's
init message. Prints the desktop's size and name; exits non-zero, saying
why, otherwise.
"""

import struct
import sys
import urllib.parse
import urllib.request

import websocket

TIMEOUT = 10


class Stream(object):
    """The bytes of a websocket's binary messages, read in any pieces."""

    def __init__(self, ws):
        self.ws = ws
        self.buffer = b''

    def read(self, size):
        while len(self.buffer) < size:
            # nova's proxy may send an empty message (what its security
            # proxy had left over) before the server's bytes
            opcode, data = self.ws.recv_data()
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                raise EOFError('the proxy closed the connection after %r'
                               % self.buffer)
            self.buffer += data
        data, self.buffer = self.buffer[:size], self.buffer[size:]
        return data

    def send(self, data):
        self.ws.send_binary(data)


def token_of(url):
    """The token in noVNC's URL: in `path` (?token=...), or `token`."""
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)
    path = query.get('path', [''])[0]
    inner = urllib.parse.parse_qs(urllib.parse.urlsplit(path).query)
    found = inner.get('token') or query.get('token')
    if not found:
        sys.exit('no token in %s' % url)
    return found[0]


def check_page(url):
    with urllib.request.urlopen(url, timeout=TIMEOUT) as response:
        status = response.status
        page = response.read().decode('utf-8', 'replace')
    if status != 200 or '<title>noVNC</title>' not in page:
        sys.exit('%s: HTTP %s, %s noVNC page' % (
            url, status, 'a' if 'noVNC' in page else 'not a'))
    print('page: HTTP 200, noVNC (%d bytes)' % len(page))


def rfb(url):
    """RFB through the proxy's websocket: (width, height, desktop name)."""
    parts = urllib.parse.urlsplit(url)
    ws = websocket.create_connection(
        'ws://%s/?%s' % (parts.netloc, urllib.parse.urlencode(
            {'token': token_of(url)})),
        # the proxy accepts its own pages' origin only
        origin='%s://%s' % (parts.scheme, parts.netloc),
        subprotocols=['binary'], timeout=TIMEOUT)
    try:
        stream = Stream(ws)
        version = stream.read(12)
        if not version.startswith(b'RFB 003.'):
            sys.exit('not RFB: %r' % version)
        stream.send(version)
        count = stream.read(1)[0]
        types = list(stream.read(count))
        if count == 0 or 1 not in types:
            sys.exit('no security type None offered: %r' % types)
        stream.send(b'\x01')
        result = struct.unpack('!I', stream.read(4))[0]
        if result != 0:
            sys.exit('security handshake failed: %d' % result)
        stream.send(b'\x01')  # ClientInit: shared
        width, height = struct.unpack('!HH', stream.read(4))
        stream.read(16)  # pixel format
        name = stream.read(struct.unpack('!I', stream.read(4))[0])
        return width, height, name.decode('utf-8', 'replace'), version
    finally:
        ws.close()


def main():
    url = sys.argv[1]
    check_page(url)
    width, height, name, version = rfb(url)
    print('websocket: %s, desktop %dx%d "%s"'
          % (version.decode().strip(), width, height, name))


if __name__ == '__main__':
    main()
