// The plain-text README.txt on every medium: how the medium is laid out and how to get a
// disk back with standard tools, for the day HVBackup itself is not at hand.

import { formatSize } from './size.ts';
import type { MediumLabel } from './label.ts';

export function mediumReadme(label: MediumLabel): Buffer {
  const lines = [
    `HVBackup archive medium ${label.mediumId} (pool ${label.pool}, set ${label.set}, volume ${label.volume})`,
    `Written ${label.writtenAt}; capacity ${formatSize(label.capacity)}; tar records of ${label.recordSize} bytes.`,
    '',
    'This medium is a plain POSIX tar archive. List it:  tar -tvf <medium>   (tape: tar -b ' + label.recordSize / 512 + ' -tvf /dev/nst0)',
    `From tape, copy each medium to a file first:  dd if=/dev/nst0 of=${label.mediumId}.tar bs=${label.recordSize}`,
    '',
    'Layout (in this order):',
    '  HVBACKUP-LABEL.json   which medium this is (pool, sequence, set, volume, record size, capacity)',
    '  README.txt            this text',
    '  config, keys/<id>     the repository config and key files (so the media alone suffice)',
    '  chunks/<id>           chunk objects exactly as the repository stores them; the id is the',
    '                        SHA-256 (or, encrypted, keyed HMAC-SHA-256) of the plain chunk data',
    '  chunks/<id>.partKofN  a chunk split across media: concatenate parts 1..N in order',
    '  manifests/<id>        restore-point manifests (on the last volume of a set), also as stored',
    '  HVBACKUP-END.json     trailer: proves the medium is complete, says if the set continues',
    '',
    'A set of media written by one export run shares a set id; volumes are numbered 1, 2, ...',
    'Chunks a set does not carry are on earlier sets of the same pool (incremental export).',
    '',
  ];
  if (label.encrypted) {
    lines.push(
      'THE CHUNKS AND MANIFESTS ON THIS MEDIUM ARE ENCRYPTED (AES-256-GCM). Restoring needs HVBackup',
      'and the repository password:',
      '  HVBACKUP_PASSWORD=... hvbackup archive restore --media <all media files in order> --vm NAME --to DIR',
    );
  } else {
    lines.push(
      'Restore with HVBackup:  hvbackup archive restore --media <media files in order> --vm NAME --to DIR',
      '',
      'Restore by hand (standard tools only):',
      '  1. Extract every medium of the pool into one folder, oldest first:  for m in *.tar; do tar -xf "$m"; done',
      '  2. Join split chunks:  for f in chunks/*.part1of*; do b=${f%.part1of*}; n=${f##*of}; \\',
      '       for i in $(seq 1 $n); do cat "$b.part${i}of$n"; done > "$b"; done',
      '  3. Each object (manifest or chunk) is one header byte followed by the data: 0 = stored raw,',
      '     1 = a zstd frame. A manifest is JSON. Slice i of a disk covers bytes [i*chunkSize,',
      '     (i+1)*chunkSize) and is a chunk id or null for zeros. Manifest version 1 lists them in',
      '     disks[].chunks; version 2 in segment chunks, disks[].segments (null: all zeros), each',
      '     "HVSG", format byte f, 3 zero bytes, uint32 LE count n; f = 2 adds uint32 piece size',
      '     (65536) and m (pieces per slice). Then a bitmap of n bits (slice has data); f = 2 a',
      '     second one (slice is split into pieces). Then per data slice its 32-byte id, or for a',
      '     split slice a bitmap of m bits (piece has data) and per set piece a 32-byte id and a',
      '     uint32 LE offset: the piece is that chunk\'s bytes from the offset. In python3:',
      '       import json, subprocess, sys',
      '       def obj(p):',
      '           b = open(p, "rb").read()',
      '           return b[1:] if b[0] == 0 else subprocess.run(["zstd", "-dc"], input=b[1:], capture_output=True, check=True).stdout',
      '       def bit(b, at, j): return b[at + j // 8] >> (j % 8) & 1',
      '       def ids(d):',
      '           if "chunks" in d: yield from d["chunks"]; return',
      '           left = -(-d["virtualSize"] // d["chunkSize"])',
      '           for s in d["segments"]:',
      '               n = min(left, d["segmentSlices"]); left -= n',
      '               if s is None: yield from [None] * n; continue',
      '               b = obj("chunks/" + s); f = b[4]; B = (n + 7) // 8; h = 12 if f == 1 else 20',
      '               m = int.from_bytes(b[16:20], "little") if f == 2 else 0; at = h + B * f',
      '               for j in range(n):',
      '                   if not bit(b, h, j): yield None',
      '                   elif f == 1 or not bit(b, h + B, j): yield b[at:at + 32].hex(); at += 32',
      '                   else:',
      '                       pm = at; at += (m + 7) // 8; p = []',
      '                       for q in range(m):',
      '                           if bit(b, pm, q): p.append((q, b[at:at + 32].hex(), int.from_bytes(b[at + 32:at + 36], "little"))); at += 36',
      '                       yield p',
      '       m = json.loads(obj(sys.argv[1]))          # manifests/<id>',
      '       for d in m["disks"]:',
      '           cs = d["chunkSize"]',
      '           with open(d["fileName"] + ".raw", "wb") as out:',
      '               out.truncate(d["virtualSize"])',
      '               for i, c in enumerate(ids(d)):',
      '                   if isinstance(c, str): out.seek(i * cs); out.write(obj("chunks/" + c))',
      '                   for q, pc, off in (c if isinstance(c, list) else []):',
      '                       at = i * cs + q * 65536; n = min(65536, min((i + 1) * cs, d["virtualSize"]) - at)',
      '                       out.seek(at); out.write(obj("chunks/" + pc)[off:off + n])',
      '  4. The result is a raw disk image; qemu-img convert -O vhdx <name>.raw <name>.vhdx makes a VHDX.',
    );
  }
  lines.push('', 'Format reference: docs/repository-format.md, section "Archive media".', '');
  return Buffer.from(lines.join('\n'));
}
