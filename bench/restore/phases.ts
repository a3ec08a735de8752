// Where restore time goes, on an existing repository: chunks read, decoded and verified
// only (readChunks, nothing written), then the whole restoreDisk with direct writes and
// with buffered ones. When restoreDisk takes about as long as read+decode, the write
// path is hidden behind decoding.
//
//   PHASES=read,restore,buffered node_modules/.bin/node bench/restore/phases.ts <repo> <vm> <out dir> [read-ahead MiB]

import { rmSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { diskWindows, openRepository } from '../../core/repo/index.ts';
import { sliceChunkIds } from '../../core/repo/manifest-segments.ts';
import { restoreDisk } from '../../core/restore/disk-restore.ts';

const [repoPath, vm, out, win] = process.argv.slice(2);
const aheadBytes = Number(win ?? 16) * 1024 * 1024;
const repo = await openRepository(repoPath!);
const [latest] = await repo.findRestorePoints({ vmName: vm, latest: true });
const m = await repo.loadManifest(latest!.id);
const d = m.disks[0]!;
const ids: string[] = [];
for await (const w of diskWindows(repo, m.id, d)) for (const c of w.refs) ids.push(...sliceChunkIds(c));
const MB = 1e6;
const phase = async (name: string, fn: () => Promise<number>) => {
  const t0 = performance.now(), c0 = process.cpuUsage();
  const bytes = await fn();
  const s = (performance.now() - t0) / 1000, c = process.cpuUsage(c0);
  console.log(JSON.stringify({ phase: name, secs: +s.toFixed(2), MBps: +(bytes / MB / s).toFixed(0), userS: +(c.user / 1e6).toFixed(2), sysS: +(c.system / 1e6).toFixed(2) }));
};
const only = process.env.PHASES?.split(',') ?? ['read', 'restore', 'buffered'];
if (only.includes('read')) {
  await phase('read+decode', async () => {
    let n = 0;
    for await (const c of repo.readChunks(ids, { aheadBytes })) { n += c.data.length; repo.pool.release(c.data); }
    return n;
  });
}
for (const [name, directWrites] of [['restore', true], ['buffered', false]] as const) {
  if (!only.includes(name)) continue;
  rmSync(out!, { recursive: true, force: true });
  mkdirSync(out!, { recursive: true });
  await phase(`restoreDisk ${directWrites ? 'direct' : 'buffered'}`, () => restoreDisk(repo, d, join(out!, d.fileName), { directWrites }));
}
rmSync(out!, { recursive: true, force: true });
await repo.close();
