// bench helper for large-disk.sh: write `gib` GiB of data into the VM's (large, sparse) disk as
// its running guest (so change tracking sees it), in 64 MiB pieces spread evenly over the
// whole disk, half pseudo-random and half text MiB blocks (the sample VM's content kinds).
// Usage: node bench/backup/large-disk-fill.ts <vmDir> <gib> [seed]
import { blockContent, MiB } from '../../core/hosts/local/content.ts';
import { guestWrite } from '../../core/hosts/local/guest.ts';
import { loadVm } from '../../core/hosts/local/vm-folder.ts';
import { readVhdxInfo } from '../../core/vhdx/index.ts';
import { join } from 'node:path';

const [vmDir, gibArg, seedArg] = process.argv.slice(2);
if (!vmDir || !gibArg) throw new Error('usage: large-disk-fill.ts <vmDir> <gib> [seed]');
const seed = Number(seedArg ?? 7);
const vm = await loadVm(vmDir);
const size = (await readVhdxInfo(join(vm.dir, vm.config.disks[0]!.path))).virtualSize;
const pieces = Number(gibArg) * 16;
const stride = Math.floor(size / pieces / MiB) * MiB;
for (let p = 0; p < pieces; p++) {
  const blocks: Buffer[] = [];
  for (let b = 0; b < 64; b++) blocks.push(blockContent(seed, (p * 64 + b) % 2 ? 'text' : 'random', p * 64 + b)!);
  await guestWrite(vmDir, [{ offset: p * stride, data: Buffer.concat(blocks) }]);
}
console.log(JSON.stringify({ virtualSize: size, pieces, pieceBytes: 64 * MiB, stride }));
