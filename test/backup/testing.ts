// Fixtures for backup/restore tests: scratch folders, sample VMs, repositories, and a
// "shadow" copy of a VM disk that follows the guest's writes, so each restore point can
// be compared with the disk as it was at its checkpoint.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { backupVMs } from '../../core/api/backup.ts';
import type { BackupResult } from '../../core/api/types.ts';
import { applyWrites } from '../../core/api/vm.ts';
import type { GuestWrite, LandedWrite } from '../../core/hosts/local/guest.ts';
import { diskWindows, initRepository, openRepository } from '../../core/repo/index.ts';
import { isSplit } from '../../core/repo/manifest-segments.ts';
import type { SliceRef } from '../../core/repo/manifest-types.ts';
import { flipChunkBit } from '../../core/repo/testing.ts';

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

/** Every slice of the first disk of point `pointId`, window after window. */
export async function diskSlices(repoPath: string, pointId: string): Promise<SliceRef[]> {
  const r = await openRepository(repoPath, { threads: 0 });
  try {
    const m = await r.loadManifest(pointId);
    const out: SliceRef[] = [];
    for await (const w of diskWindows(r, m.id, m.disks[0]!)) out.push(...w.refs);
    return out;
  } finally {
    await r.close();
  }
}

/** Flip one bit of chunk `id`'s stored bytes in the repository at `repoPath` (twice: as it was). */
export async function damageChunk(repoPath: string, id: string): Promise<void> {
  const r = await openRepository(repoPath, { threads: 0 });
  try {
    await flipChunkBit(r, id);
  } finally {
    await r.close();
  }
}

/**
 * Backups of `vmDir` into `repo`, each succeeding and recorded with a copy of `disk` as the point
 * saw it (in `dir`, named after the backup), for restores to be compared with.
 */
export function pointRecorder(ctx: object, repo: string, vmDir: string, disk: string, dir: Scratch, points: { id: string; expected: string }[] = []) {
  const backUp = async (name: string): Promise<BackupResult> => {
    const [r] = await backupVMs(ctx, { repository: repo, sources: [vmDir] });
    assert.equal(r!.status, 'success', JSON.stringify(r!.error));
    const expected = dir.path(`${name}.vhdx`);
    copyFileSync(disk, expected); // no guest writes until the next round: the disk as the point saw it
    points.push({ id: r!.pointId!, expected });
    return r!;
  };
  return { points, backUp };
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
