// bench helper: make a local VM folder around a copy of an existing VHDX, with change
// tracking started (as `hvbackup vm sample` does for generated disks).
// Usage: node bench/backup/make-vm.ts <vmDir> <disk.vhdx> [name]
import { copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { startReference } from '../../core/tracking/index.ts';
import { readVhdxInfo } from '../../core/vhdx/index.ts';

const [vmDir, src, nameArg] = process.argv.slice(2);
if (!vmDir || !src) throw new Error('usage: make-vm.ts <vmDir> <disk.vhdx> [name]');
const name = nameArg ?? basename(vmDir);
for (const d of ['Virtual Machines', 'Virtual Hard Disks', 'Snapshots']) mkdirSync(join(vmDir, d), { recursive: true });
const disk = join(vmDir, 'Virtual Hard Disks', `${name}.vhdx`);
copyFileSync(src, disk);
await startReference(disk, (await readVhdxInfo(disk)).virtualSize);
writeFileSync(join(vmDir, 'Virtual Machines', `${name}.json`), JSON.stringify({ schema: 1, id: randomUUID(), name, generation: 2, disks: [{ key: 'SCSI:0:0', path: `Virtual Hard Disks/${name}.vhdx` }] }, null, 2) + '\n');
console.log(disk);
