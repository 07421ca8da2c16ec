import json
import os
import subprocess

import fixtures
import testtools

from nova_altdriver import qcow2stream

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB


class ImageStreamTest(testtools.TestCase):
    """Real images, real qemu-img: each stream is written to a file that
    qemu-img must find sound and identical to its chain.
    """

    def setUp(self):
        super().setUp()
        self.dir = self.useFixture(fixtures.TempDir('/var/tmp')).path

    def path(self, name):
        return os.path.join(self.dir, name)

    def qemu_img(self, *args):
        return subprocess.run(('qemu-img',) + args, check=True,
                              capture_output=True, text=True).stdout

    def create(self, name, size, fmt='qcow2', backing=None,
               backing_format='qcow2', options=None):
        args = ['create', '-q', '-f', fmt]
        if backing:
            args += ['-b', self.path(backing), '-F', backing_format]
        if options:
            args += ['-o', options]
        self.qemu_img(*(args + [self.path(name)] +
                        ([] if size is None else [str(size)])))
        return self.path(name)

    def write(self, name, *writes, fmt='qcow2'):
        """Writes (offset, length, byte) patterns into an image."""
        commands = []
        for offset, length, pattern in writes:
            commands += ['-c', 'write -q -P 0x%02x %d %d' %
                         (pattern, offset, length)]
        subprocess.run(['qemu-io', '-f', fmt] + commands + [self.path(name)],
                       check=True, capture_output=True)

    def stream_to_file(self, stream, name='out', piece=64 * KiB):
        """Writes a stream to a file, leaving holes for its zeros (so
        images of gigabytes cost little disk); its length in bytes.
        """
        length = 0
        with open(self.path(name), 'wb') as out:
            while True:
                data = stream.read(piece)
                if not data:
                    break
                if data.count(0) == len(data):
                    out.seek(len(data), os.SEEK_CUR)
                else:
                    out.write(data)
                length += len(data)
            out.truncate(length)
        return length

    def assertStreams(self, name, fmt='qcow2', out_format='qcow2'):
        """The chain at name streams as a sound standalone image holding
        what the chain holds.
        """
        source = self.path(name)
        stream = qcow2stream.ImageStream(source, fmt, out_format)
        self.addCleanup(stream.close)
        self.assertEqual(stream.size, self.stream_to_file(stream))
        out = self.path('out')
        if out_format == 'qcow2':
            subprocess.run(['qemu-img', 'check', '-q', '-f', 'qcow2', out],
                           check=True)
        self.qemu_img('compare', '-q', '-f', out_format, '-F', fmt, out,
                      source)
        info = json.loads(self.qemu_img('info', '--output=json', '-f',
                                        out_format, out))
        source_info = json.loads(self.qemu_img('info', '--output=json',
                                               '-f', fmt, source))
        self.assertNotIn('backing-filename', info)
        self.assertEqual(source_info['virtual-size'], info['virtual-size'])
        return out

    def allocated(self, out):
        """The guest ranges of a qcow2 image holding data."""
        return [(extent['start'], extent['length'])
                for extent in json.loads(self.qemu_img(
                    'map', '--output=json', '-f', 'qcow2', out))
                if extent['data']]

    def test_qcow2_over_qcow2(self):
        self.create('base', GiB)
        self.write('base', (0, 4 * KiB, 0x11), (60 * KiB, 8 * KiB, 0x12),
                   (1 * MiB + 1000, 200 * KiB, 0x13),
                   (700 * MiB - 512, 3 * MiB, 0x14))
        # Contiguous in the file: one extent of more than one read run,
        # each of its megabytes different.
        self.write('base', *[(100 * MiB + number * MiB, MiB, 0x15 + number)
                             for number in range(6)])
        self.create('top', GiB, backing='base')
        self.write('top', (62 * KiB, 5 * KiB + 512, 0x21),
                   (1 * MiB + 100 * KiB, 512, 0x22),
                   (GiB - 64 * KiB - 512, 64 * KiB + 512, 0x23))
        self.assertStreams('top')

    def test_qcow2_over_raw(self):
        base = self.create('base', 100 * MiB, fmt='raw')
        self.write('base', (3 * KiB, 70 * KiB, 0x31),
                   (50 * MiB + 512, MiB, 0x32), fmt='raw')
        self.create('top', 100 * MiB, backing='base', backing_format='raw')
        self.write('top', (64 * KiB, 512, 0x33), (51 * MiB, 4 * KiB, 0x34))
        self.assertLess(os.stat(base).st_blocks * 512, 10 * MiB)
        self.assertStreams('top')

    def test_backing_shorter_than_top(self):
        # A grown disk: past its backing file's end it reads as zeros.
        self.create('base', 10 * MiB, fmt='raw')
        self.write('base', (10 * MiB - 4 * KiB, 4 * KiB, 0x35), fmt='raw')
        self.create('top', 20 * MiB, backing='base', backing_format='raw')
        self.write('top', (15 * MiB, 4 * KiB, 0x36))
        self.assertStreams('top')

    def test_raw_alone(self):
        self.create('disk', 20 * MiB + 512, fmt='raw')
        self.write('disk', (0, 512, 0x41), (5 * MiB - 512, 70 * KiB, 0x42),
                   (20 * MiB - 512, 1024, 0x43), fmt='raw')
        self.assertStreams('disk', fmt='raw')

    def test_raw_of_no_whole_sectors(self):
        # qemu-img rounds its virtual size up to 1024 bytes, the last 24
        # reading as zeros.
        with open(self.path('disk'), 'wb') as disk:
            disk.write(b'\x51' * 1000)
        self.assertStreams('disk', fmt='raw')

    def test_small_source_clusters(self):
        self.create('base', 64 * MiB, options='cluster_size=4096')
        self.write('base', (4 * KiB, 4 * KiB, 0x51), (200 * KiB, 1, 0x52))
        self.create('top', 64 * MiB, backing='base',
                    options='cluster_size=4096')
        self.write('top', (8 * KiB, 4 * KiB, 0x53), (68 * KiB, 8 * KiB, 0x54))
        self.assertStreams('top')

    def test_large_source_clusters(self):
        self.create('base', 64 * MiB, options='cluster_size=2M')
        self.write('base', (MiB, 10 * KiB, 0x61), (10 * MiB, 3 * MiB, 0x62))
        self.create('top', 64 * MiB, backing='base',
                    options='cluster_size=2M')
        self.write('top', (11 * MiB + 3, 100, 0x63))
        self.assertStreams('top')

    def test_size_not_a_cluster_multiple(self):
        self.create('disk', GiB + 512)
        self.write('disk', (GiB - 1000, 1512, 0x71))
        self.assertStreams('disk')

    def test_data_in_distant_l2_regions(self):
        self.create('disk', 4 * GiB)
        self.write('disk', (0, 64 * KiB, 0x81), (3 * GiB, 512, 0x82),
                   (512 * MiB - 32 * KiB, 96 * KiB, 0x83))
        out = self.assertStreams('disk')
        self.assertEqual(
            [(0, 64 * KiB), (512 * MiB - 64 * KiB, 128 * KiB),
             (3 * GiB, 64 * KiB)], self.allocated(out))

    def test_offsets_beyond_4_gib(self):
        self.create('disk', 6 * GiB)
        self.write('disk', (5 * GiB + 4 * KiB, 8 * KiB, 0x91),
                   (6 * GiB - 512, 512, 0x92))
        self.assertStreams('disk')

    def test_empty(self):
        self.create('disk', 10 * GiB)
        out = self.assertStreams('disk')
        self.assertEqual([], self.allocated(out))

    def test_zero_size(self):
        self.create('disk', 0)
        self.assertStreams('disk')

    def test_data_reading_as_zeros_stays_allocated(self):
        # Preallocated metadata: 3 GiB of data=true clusters reading as
        # zeros, more than one refcount block (2 GiB) counts.
        self.create('disk', 3 * GiB, options='preallocation=metadata')
        out = self.assertStreams('disk')
        self.assertEqual([(0, 3 * GiB)], self.allocated(out))

    def test_only_data_clusters_are_allocated(self):
        self.create('disk', GiB)
        self.write('disk', (64 * KiB - 1, 2, 0xa1), (MiB, 64 * KiB, 0xa2))
        out = self.assertStreams('disk')
        self.assertEqual([(0, 128 * KiB), (MiB, 64 * KiB)],
                         self.allocated(out))

    def test_raw_output(self):
        self.create('base', 30 * MiB + 512, fmt='raw')
        self.write('base', (MiB - 1, 2, 0xb1), (30 * MiB, 512, 0xb2),
                   fmt='raw')
        self.create('top', 30 * MiB + 512, backing='base',
                    backing_format='raw')
        self.write('top', (17 * MiB, 7 * MiB, 0xb3))
        self.assertStreams('top', out_format='raw')

    def test_odd_read_sizes_read_the_same_bytes(self):
        self.create('disk', 64 * MiB)
        self.write('disk', (0, 3 * MiB, 0xc1), (20 * MiB + 7, 17 * MiB, 0xc2))
        whole = b''.join(iter(
            qcow2stream.ImageStream(self.path('disk'), 'qcow2').read,
            b''))
        for size in (1, 4097, 64 * KiB, 10 * MiB):
            stream = qcow2stream.ImageStream(self.path('disk'), 'qcow2')
            self.addCleanup(stream.close)
            pieces = []
            # Byte by byte takes too long over the whole image: its first
            # megabyte in such reads, the rest in big ones.
            for _count in range(MiB if size == 1 else len(whole)):
                piece = stream.read(size)
                if not piece:
                    break
                self.assertLessEqual(len(piece), size)
                pieces.append(piece)
            pieces.append(stream.read())
            self.assertEqual(whole, b''.join(pieces), size)
            self.assertEqual(b'', stream.read(size))

    def test_compressed_cluster_is_not_streamable(self):
        self.create('disk', 10 * MiB)
        subprocess.run(['qemu-io', '-f', 'qcow2', '-c',
                        'write -c -P 0xd1 0 64k', self.path('disk')],
                       check=True, capture_output=True)
        self.assertRaises(qcow2stream.NotStreamable,
                          qcow2stream.ImageStream, self.path('disk'),
                          'qcow2')

    def test_external_data_file_is_not_streamable(self):
        self.create('disk', 10 * MiB,
                    options='data_file=%s' % self.path('data'))
        self.write('disk', (0, 64 * KiB, 0xe1))
        self.assertRaises(qcow2stream.NotStreamable,
                          qcow2stream.ImageStream, self.path('disk'),
                          'qcow2')

    def test_other_formats_are_not_streamable(self):
        self.create('base', 10 * MiB, fmt='vmdk')
        self.create('top', 10 * MiB, backing='base', backing_format='vmdk')
        for path, fmt in ((self.path('base'), 'vmdk'),
                          (self.path('top'), 'qcow2')):
            self.assertRaises(qcow2stream.NotStreamable,
                              qcow2stream.ImageStream, path, fmt)

    def test_top_format_is_the_callers(self):
        # A raw disk whose guest wrote a qcow2 header is raw all the same.
        self.create('guest', 10 * MiB)
        with open(self.path('guest'), 'rb') as guest:
            header = guest.read(64 * KiB)
        self.create('disk', 10 * MiB, fmt='raw')
        with open(self.path('disk'), 'r+b') as disk:
            disk.write(header)
        out = self.assertStreams('disk', fmt='raw')
        self.assertEqual([(0, 64 * KiB)], self.allocated(out))
