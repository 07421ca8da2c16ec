"""Writes one configuration file of the all-in-one from its template.

    render.py TEMPLATE FILE

Run by aio.sh for every file in tools/aio/etc/. ``${NAME}`` in TEMPLATE is
replaced by the environment variable NAME (aio.sh's ``render`` passes
them); a name without a value is an error, not an empty setting. A line
``@include OTHER`` is replaced by the template OTHER (next to TEMPLATE)
before that: settings that several files share are written once, and
OTHER may name a variable (``@include driver-${AIO_DRIVER}.in``).
"""

import os
import string
import sys


def expand(template):
    """The text of TEMPLATE with its @include lines replaced."""
    lines = []
    with open(template) as f:
        for line in f:
            if line.startswith('@include '):
                name = string.Template(line.split()[1]).substitute(os.environ)
                line = expand(os.path.join(os.path.dirname(template), name))
            lines.append(line)
    return ''.join(lines)


def main():
    template, output = sys.argv[1:]
    try:
        text = string.Template(expand(template)).substitute(os.environ)
    except KeyError as e:
        sys.exit('%s: ${%s} has no value' % (template, e.args[0]))
    with open(output, 'w') as f:
        f.write(text)


if __name__ == '__main__':
    main()
