"""A guest's serial console through nova-serialproxy, as a websocket client
uses it (run by tour.sh with the cloud's Python: websocket-client comes
with it).

    serial_console.py URL PATTERN

URL is what `openstack console url show --serial` gives: the proxy's
websocket with the console's token in its query. The proxy passes the
websocket on to the guest's first TCP serial port, its ttyS0; what the
guest prints there from then on arrives as binary messages. Prints the
first whole line matching the regular expression PATTERN; exits non-zero,
saying why, when none comes within the time.
"""

import re
import sys
import time

import websocket

TIMEOUT = 30


def main():
    url, pattern = sys.argv[1], re.compile(sys.argv[2])
    # a client that is no browser sends no Origin, which the proxy accepts;
    # websockify speaks its 'binary' subprotocol
    ws = websocket.create_connection(url, timeout=TIMEOUT,
                                     subprotocols=['binary', 'base64'],
                                     suppress_origin=True)
    received = b''
    deadline = time.monotonic() + TIMEOUT
    try:
        while time.monotonic() < deadline:
            opcode, data = ws.recv_data()
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                sys.exit('the proxy closed the connection after %r'
                         % received[-200:])
            received += data
            # whole lines only: a message may end amid one
            lines = received.decode('utf-8', 'replace').split('\n')[:-1]
            for line in lines:
                if pattern.search(line):
                    print(line.strip())
                    return 0
    except websocket.WebSocketTimeoutException:
        pass
    finally:
        ws.close()
    sys.exit('no line matching %s within %d s; received %r' % (
        pattern.pattern, TIMEOUT, received[-200:]))


if __name__ == '__main__':
    sys.exit(main())
