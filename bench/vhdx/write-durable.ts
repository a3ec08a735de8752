// raw -> dynamic VHDX with every write call durable (two flushes per 32 MiB call):
// what a caller pays for crash safety per call, compared with `vhdx convert` (flush at close).
import { RawDisk } from '../../core/disk/raw.ts';
import { copyDisk, createVhdx } from '../../core/vhdx/index.ts';

const [src, dst, blockMiB] = [process.argv[2], process.argv[3], Number(process.argv[4] ?? 16)];
const raw = await RawDisk.open(src);
const vhdx = await createVhdx(dst, { size: raw.size, blockSize: blockMiB * 1024 * 1024 });
await copyDisk(raw, vhdx, { granularity: blockMiB * 1024 * 1024, chunkSize: 32 * 1024 * 1024, parallel: 2 });
await vhdx.close();
await raw.close();
