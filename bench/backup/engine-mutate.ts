// bench helper: a ~PCT % scattered change (64 KiB writes, 4 KiB aligned, seeded) made
// through the engine as the running guest, so change tracking records it.
// Usage: node bench/backup/engine-mutate.ts <vmDir> [seed] [pct]
import { guestWrite, randomGuestWrites } from '../../core/hosts/local/guest.ts';
import { loadVm } from '../../core/hosts/local/vm-folder.ts';
import { readVhdxInfo } from '../../core/vhdx/index.ts';
import { join } from 'node:path';

const [vmDir, seedArg, pctArg] = process.argv.slice(2);
if (!vmDir) throw new Error('usage: engine-mutate.ts <vmDir> [seed] [pct]');
const vm = await loadVm(vmDir);
const size = (await readVhdxInfo(join(vm.dir, vm.config.disks[0]!.path))).virtualSize;
const W = 65536;
const count = Math.round((size * Number(pctArg ?? 1)) / 100 / W);
const landed = await guestWrite(vmDir, randomGuestWrites(Number(seedArg ?? 4321), count, W, size));
console.log(`engine-mutate: ${landed.length} x 64 KiB writes (${landed.length * W} bytes) through the engine into ${landed[0]?.file}`);
