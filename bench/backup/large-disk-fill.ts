// bench helper for large-disk.sh: write `gib` GiB of data into the VM's (large, sparse) disk as
// its running guest (so change tracking sees it), in `pieces` equal pieces (default 16 per GiB,
// 64 MiB each) spread evenly over the whole disk, made of pseudo-random and text blocks (the
// sample VM's content kinds). `seed` changes the content (a later run with another seed is an
// incremental's change).
// Usage: node bench/backup/large-disk-fill.ts <vmDir> <gib> [pieces] [seed]
import { blockContent, MiB } from '../../core/hosts/local/content.ts';
import { guestWrite } from '../../core/hosts/local/guest.ts';
import { loadVm } from '../../core/hosts/local/vm-folder.ts';
import { readVhdxInfo } from '../../core/vhdx/index.ts';
import { join } from 'node:path';

const [vmDir, gibArg, piecesArg, seedArg] = process.argv.slice(2);
if (!vmDir || !gibArg) throw new Error('usage: large-disk-fill.ts <vmDir> <gib> [pieces] [seed]');
const seed = Number(seedArg ?? 7);
const vm = await loadVm(vmDir);
const size = (await readVhdxInfo(join(vm.dir, vm.config.disks[0]!.path))).virtualSize;
const pieces = Number(piecesArg || Number(gibArg) * 16);
const pieceBytes = Math.floor(Number(gibArg) * 1024 * MiB / pieces / 4096) * 4096;
const stride = Math.floor(size / pieces / MiB) * MiB;
if (pieceBytes < 4096 || pieceBytes > stride) throw new Error(`${pieces} pieces of ${gibArg} GiB do not fit the disk`);
for (let p = 0; p < pieces; p++) {
  const blocks: Buffer[] = [];
  for (let at = 0, b = 0; at < pieceBytes; at += MiB, b++) {
    const i = p * 65536 + b;
    blocks.push(blockContent(seed, i % 2 ? 'text' : 'random', i)!.subarray(0, Math.min(MiB, pieceBytes - at)));
  }
  await guestWrite(vmDir, [{ offset: p * stride, data: Buffer.concat(blocks) }]);
}
console.log(JSON.stringify({ virtualSize: size, pieces, pieceBytes, stride }));
