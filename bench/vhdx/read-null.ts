// Sequential read of a disk's data extents to nowhere: the VHDX read path alone.
import { openDisk } from '../../core/vhdx/index.ts';

const disk = await openDisk(process.argv[2]);
const chunk = Buffer.allocUnsafe(32 * 1024 * 1024);
let bytes = 0;
for (const e of await disk.extents()) {
  if (e.kind === 'zero') continue;
  for (let o = e.offset; o < e.offset + e.length; o += chunk.length) {
    const b = chunk.subarray(0, Math.min(chunk.length, e.offset + e.length - o));
    await disk.read(b, o);
    bytes += b.length;
  }
}
await disk.close();
process.stdout.write(`${bytes}\n`);
