"""Serial consoles enabled for one test, in every tier."""

import fixtures

# a range no other user of this machine's loopback takes
PORT_RANGE = '10300:10399'
ADDRESS = '127.0.0.1'


class SerialConsoles(fixtures.Fixture):
    """[serial_console] enabled for the guests the test defines, their TCP
    ports from PORT_RANGE on ADDRESS; nova's pool of ports (this process's
    memory, nova.console.serial) the test's own, from empty: ``pool``.
    """

    def __init__(self, test, **options):
        super().__init__()
        self._test = test
        self._options = options

    def _setUp(self):
        self.pool = set()
        self.useFixture(fixtures.MonkeyPatch(
            'nova.console.serial.ALLOCATED_PORTS', self.pool))
        self._test.flags(enabled=True, port_range=PORT_RANGE,
                         proxyclient_address=ADDRESS, group='serial_console',
                         **self._options)
