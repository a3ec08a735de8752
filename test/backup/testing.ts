// Fixtures for backup/restore tests: scratch folders, sample VMs, repositories, and a
// "shadow" copy of a VM disk that follows the guest's writes, so each restore point can
// be compared with the disk as it was at its checkpoint.
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { applyWrites } from '../../core/api/vm.ts';
import type { GuestWrite, LandedWrite } from '../../core/hosts/local/guest.ts';
import { diskWindows, initRepository, openRepository } from '../../core/repo/index.ts';
import { isSplit } from '../../core/repo/manifest-segments.ts';

export const MiB = 1 << 20;

export interface Scratch {
  dir: string;
  path(...p: string[]): string;
  cleanup(): void;
}

export function scratch(prefix = 'hvb-backup-'): Scratch {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, path: (...p) => join(dir, ...p), cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

export async function newRepo(path: string): Promise<string> {
  const r = await initRepository(path);
  await r.close();
  return path;
}

/** Slices of point `pointId`'s disks (all of them) stored as pieces, and the distinct chunks those pieces name. */
export async function splitSlices(repoPath: string, pointId: string, password?: string): Promise<{ slices: number; pieceChunks: Set<string> }> {
  const repo = await openRepository(repoPath, { threads: 0, password });
  try {
    const m = await repo.loadManifest(pointId);
    let slices = 0;
    const pieceChunks = new Set<string>();
    for (const d of m.disks) {
      for await (const w of diskWindows(repo, m.id, d)) {
        for (const r of w.refs) {
          if (!isSplit(r)) continue;
          slices++;
          for (const p of r.pieces) if (p) pieceChunks.add(p.id);
        }
      }
    }
    return { slices, pieceChunks };
  } finally {
    await repo.close();
  }
}

export function qemuImg(...args: string[]): { status: number | null; out: string } {
  const r = spawnSync('qemu-img', args, { encoding: 'utf8' });
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

/** A disk copy that receives the same writes as the VM's disk, and snapshots of it per restore point. */
export class Shadow {
  readonly path: string;
  readonly #dir: string;
  #n = 0;
  constructor(disk: string, dir: string) {
    this.#dir = dir;
    this.path = join(dir, 'shadow.vhdx');
    copyFileSync(disk, this.path);
  }
  apply(writes: GuestWrite[]): Promise<void> {
    return writes.length === 0 ? Promise.resolve() : applyWrites(this.path, writes);
  }
  /** Apply a background guest's writes around one backup; returns the expected image of that point. */
  async around(during: { write: GuestWrite; landed: LandedWrite }[]): Promise<{ expected: string; inCheckpoint: number }> {
    const first = during.findIndex((w) => w.landed.file.endsWith('.avhdx'));
    const cut = first < 0 ? during.length : first;
    await this.apply(during.slice(0, cut).map((w) => w.write));
    const expected = join(this.#dir, `expected-${this.#n++}.vhdx`);
    copyFileSync(this.path, expected);
    await this.apply(during.slice(cut).map((w) => w.write));
    return { expected, inCheckpoint: during.filter((w) => w.landed.file.endsWith('.avhdx')).length };
  }
  snapshot(): string {
    const expected = join(this.#dir, `expected-${this.#n++}.vhdx`);
    copyFileSync(this.path, expected);
    return expected;
  }
}

export { readAt } from '../support/disk-read.ts';
