"""A disk chain as a standalone image, streamed front to back.

A snapshot used to convert the server's disk chain into a staging file on
the instances filesystem, then upload that file to Glance: the peak extra
space was the image's size. ``qemu-img convert`` cannot write qcow2 to a
pipe (it seeks back to fill in the tables), so this module writes the
qcow2 itself, sequentially, with no staging copy: every table's place is
known before the first byte, because ``qemu-img map`` tells up front which
clusters hold data. Raw output is offered too (every byte of the virtual
size).

What it trusts: the chain is stable while it is read (below a temporary
overlay, or its guest stopped) and its headers are the driver's own, so
the offsets ``qemu-img map`` reports are read as they are. The top's
format comes from the caller and is never probed from its content; the
backing files' formats are those the chain records. Anything this module
cannot copy faithfully byte for byte (other formats, encryption, an
external data file, compressed clusters) raises NotStreamable, and the
caller falls back to ``qemu-img convert``.
"""

import bisect
import json
import os
import struct

from oslo_concurrency import processutils

CLUSTER_BITS = 16
CLUSTER_SIZE = 1 << CLUSTER_BITS
# 8-byte entries: one L2 table maps 512 MiB of the guest's disk.
_TABLE_ENTRIES = CLUSTER_SIZE // 8
_L2_COVERAGE = _TABLE_ENTRIES * CLUSTER_SIZE
# 16-bit refcounts (QEMU's default): one refcount block counts 2 GiB.
_REFCOUNT_ORDER = 4
_REFCOUNT_ONE = struct.pack('>H', 1)
_REFCOUNTS_PER_BLOCK = CLUSTER_SIZE // len(_REFCOUNT_ONE)
# Every cluster is referenced exactly once: no snapshots, no sharing.
_QCOW_OFLAG_COPIED = 1 << 63
_QCOW_MAGIC = b'QFI\xfb'
_HEADER_V3 = struct.Struct('>4sIQIIQIIQQIIQQQQII')
# Data is read and handed on in runs of this many bytes: few system calls,
# and as much memory as the stream ever holds on its own.
_READ_RUN = 64 * CLUSTER_SIZE

FORMATS = ('qcow2', 'raw')


class NotStreamable(Exception):
    """The chain holds something this module does not copy (the caller
    converts it with ``qemu-img convert`` instead).
    """


def _ceil_div(dividend, divisor):
    return -(-dividend // divisor)


def _backing_chain(path, fmt):
    """The chain's images as ``qemu-img info`` describes them, top first."""
    if fmt not in FORMATS:
        raise NotStreamable('%s is %s' % (path, fmt))
    out, _err = processutils.execute(
        'qemu-img', 'info', '--backing-chain', '--output=json', '-U',
        '-f', fmt, path)
    chain = json.loads(out)
    for image in chain:
        name = image['filename']
        if image['format'] not in FORMATS:
            raise NotStreamable('%s is %s' % (name, image['format']))
        if image.get('encrypted'):
            raise NotStreamable('%s is encrypted' % name)
        # Its data is in another file than the one map's offsets are in.
        if 'data-file' in image.get('format-specific', {}).get('data', {}):
            raise NotStreamable('%s has an external data file' % name)
    return chain


def _data_extents(path, fmt, depths):
    """The guest ranges holding data: (start, length, depth, offset) in
    guest order; the rest of the disk reads as zeros.
    """
    out, _err = processutils.execute(
        'qemu-img', 'map', '--output=json', '-U', '-f', fmt, path)
    extents = []
    for extent in json.loads(out):
        if not extent['data']:
            continue
        # Compressed clusters have no offset: their bytes are not the
        # guest's.
        if 'offset' not in extent or extent['depth'] >= depths:
            raise NotStreamable('%s: no plain data at %d' %
                                (path, extent['start']))
        extents.append((extent['start'], extent['length'],
                        extent['depth'], extent['offset']))
    extents.sort()
    return extents


def _allocated_runs(extents):
    """Output clusters holding some data, as sorted (first, count) runs."""
    runs = []
    for start, length, _depth, _offset in extents:
        first = start // CLUSTER_SIZE
        end = _ceil_div(start + length, CLUSTER_SIZE)
        if runs and runs[-1][0] + runs[-1][1] >= first:
            run_first = runs[-1][0]
            runs[-1] = (run_first, max(end, run_first + runs[-1][1]) -
                        run_first)
        else:
            runs.append((first, end - first))
    return runs


class _Qcow2Layout(object):
    """Where each part of the output image goes, in clusters: the header,
    the L1 table, the refcount table, the refcount blocks, the L2 tables
    (one per 512 MiB region holding data), then the data in guest order.
    """

    def __init__(self, virtual_size, runs):
        self.l1_size = _ceil_div(virtual_size, _L2_COVERAGE)
        self.l2_regions = sorted(set(
            region
            for first, count in runs
            for region in range(first // _TABLE_ENTRIES,
                                (first + count - 1) // _TABLE_ENTRIES + 1)))
        self.data_clusters = sum(count for _first, count in runs)
        self.l1_start = 1
        l1_clusters = _ceil_div(self.l1_size * 8, CLUSTER_SIZE)
        self.refcount_table_start = self.l1_start + l1_clusters
        # The refcount blocks count themselves and the table that points
        # to them: grow both until they cover the whole image.
        other_clusters = (self.refcount_table_start +
                          len(self.l2_regions) + self.data_clusters)
        table_clusters = blocks = 0
        while True:
            self.clusters = other_clusters + table_clusters + blocks
            needed_blocks = _ceil_div(self.clusters, _REFCOUNTS_PER_BLOCK)
            needed_table = _ceil_div(needed_blocks, _TABLE_ENTRIES)
            if (needed_blocks, needed_table) == (blocks, table_clusters):
                break
            blocks, table_clusters = needed_blocks, needed_table
        self.refcount_table_clusters = table_clusters
        self.refcount_blocks_start = (self.refcount_table_start +
                                      table_clusters)
        self.refcount_blocks = blocks
        self.l2_start = self.refcount_blocks_start + blocks
        self.data_start = self.l2_start + len(self.l2_regions)


def _pad(table):
    return table + bytes(-len(table) % CLUSTER_SIZE)


def _entries(values):
    return struct.pack('>%dQ' % len(values), *values)


class ImageStream(object):
    """A stable disk chain as one standalone image (qcow2 version 3 with
    no backing file, or raw), read front to back like a file.

    :param path: the chain's top image
    :param fmt: the top's format ('qcow2' or 'raw'), as the caller knows it
    :param out_format: 'qcow2' or 'raw'
    :raises NotStreamable: the chain holds something only ``qemu-img
        convert`` copies
    :raises oslo_concurrency.processutils.ProcessExecutionError: qemu-img
        cannot read the chain

    ``size`` is the number of bytes ``read`` returns in all.
    """

    def __init__(self, path, fmt, out_format='qcow2'):
        if out_format not in FORMATS:
            raise ValueError('Cannot stream %s images' % out_format)
        chain = _backing_chain(path, fmt)
        self.virtual_size = chain[0]['virtual-size']
        self._extents = _data_extents(path, fmt, len(chain))
        self._extent_starts = [extent[0] for extent in self._extents]
        if out_format == 'qcow2':
            runs = _allocated_runs(self._extents)
            layout = _Qcow2Layout(self.virtual_size, runs)
            self.size = layout.clusters * CLUSTER_SIZE
            self._chunks = self._qcow2(layout, runs)
        else:
            self.size = self.virtual_size
            self._chunks = self._raw()
        self._fds = []
        try:
            for image in chain:
                self._fds.append(os.open(image['filename'], os.O_RDONLY))
        except Exception:
            self.close()
            raise
        self._chunk = memoryview(b'')

    def read(self, size=-1):
        """The next bytes (at most size of them, all if size < 0); b''
        at the end.
        """
        pieces = []
        wanted = self.size if size is None or size < 0 else size
        while wanted > 0:
            if not self._chunk:
                chunk = next(self._chunks, None)
                if chunk is None:
                    break
                self._chunk = memoryview(chunk)
                continue
            piece = self._chunk[:wanted]
            self._chunk = self._chunk[len(piece):]
            wanted -= len(piece)
            pieces.append(piece)
        if len(pieces) == 1:
            return bytes(pieces[0])
        return b''.join(pieces)

    def close(self):
        self._chunks.close()
        self._chunk = memoryview(b'')
        while self._fds:
            os.close(self._fds.pop())

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    def _guest_bytes(self, start, length):
        """The guest's bytes from start, zeros where the chain has none."""
        buffer = bytearray(length)
        end = start + length
        index = max(bisect.bisect_right(self._extent_starts, start) - 1, 0)
        for extent_start, extent_length, depth, offset in (
                self._extents[index:]):
            if extent_start >= end:
                break
            first = max(start, extent_start)
            last = min(end, extent_start + extent_length)
            if first < last:
                self._read_into(memoryview(buffer)[first - start:
                                                   last - start],
                                depth, offset + first - extent_start)
        return buffer

    def _read_into(self, view, depth, offset):
        while view:
            done = os.preadv(self._fds[depth], [view], offset)
            if not done:
                raise EOFError('The image at depth %d ends before %d' %
                               (depth, offset))
            view = view[done:]
            offset += done

    def _raw(self):
        zeros = bytes(_READ_RUN)
        for start in range(0, self.virtual_size, _READ_RUN):
            length = min(_READ_RUN, self.virtual_size - start)
            index = bisect.bisect_left(self._extent_starts, start + length)
            if index and sum(self._extents[index - 1][:2]) > start:
                yield self._guest_bytes(start, length)
            else:
                yield zeros[:length]

    def _qcow2(self, layout, runs):
        header = _HEADER_V3.pack(
            _QCOW_MAGIC, 3,
            0, 0,  # no backing file
            CLUSTER_BITS, self.virtual_size,
            0,  # not encrypted
            layout.l1_size, layout.l1_start * CLUSTER_SIZE,
            layout.refcount_table_start * CLUSTER_SIZE,
            layout.refcount_table_clusters,
            0, 0,  # no internal snapshots
            0, 0, 0,  # no incompatible, compatible nor autoclear feature
            _REFCOUNT_ORDER, _HEADER_V3.size)
        # Then the header extensions: only the end marker (type 0, length
        # 0).
        yield _pad(header + struct.pack('>II', 0, 0))

        l1_table = [0] * layout.l1_size
        for number, region in enumerate(layout.l2_regions):
            l1_table[region] = ((layout.l2_start + number) * CLUSTER_SIZE |
                                _QCOW_OFLAG_COPIED)
        yield _pad(_entries(l1_table))

        yield _pad(_entries([
            (layout.refcount_blocks_start + block) * CLUSTER_SIZE
            for block in range(layout.refcount_blocks)]))
        for block in range(layout.refcount_blocks):
            counted = min(_REFCOUNTS_PER_BLOCK,
                          layout.clusters - block * _REFCOUNTS_PER_BLOCK)
            yield _pad(_REFCOUNT_ONE * counted)

        yield from self._l2_tables(layout, runs)

        for first, count in runs:
            start = first * CLUSTER_SIZE
            end = (first + count) * CLUSTER_SIZE
            for piece in range(start, end, _READ_RUN):
                yield self._guest_bytes(piece, min(_READ_RUN, end - piece))

    def _l2_tables(self, layout, runs):
        """The L2 tables of the regions holding data; the data clusters
        follow them in guest order.
        """
        run_index = 0
        data_cluster = layout.data_start
        for region in layout.l2_regions:
            region_first = region * _TABLE_ENTRIES
            region_end = region_first + _TABLE_ENTRIES
            table = bytearray(CLUSTER_SIZE)
            # A run may straddle regions: take its part in this one, and
            # leave the rest of it for the next.
            while run_index < len(runs):
                first, count = runs[run_index]
                first = max(first, region_first)
                end = min(runs[run_index][0] + count, region_end)
                if first >= region_end:
                    break
                entry = data_cluster * CLUSTER_SIZE | _QCOW_OFLAG_COPIED
                table[(first - region_first) * 8:(end - region_first) * 8] = (
                    _entries(range(entry, entry + (end - first) * CLUSTER_SIZE,
                                   CLUSTER_SIZE)))
                data_cluster += end - first
                if end < runs[run_index][0] + count:
                    break
                run_index += 1
            yield table
