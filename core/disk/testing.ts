// Shared disk test helpers (after balena file-disk's testOnAllDisks): one suite runs
// over every Disk implementation — raw, fixed, dynamic and differencing VHDX.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createDifferencingVhdx, createVhdx, openDisk } from '../vhdx/index.ts';
import type { Disk } from './disk.ts';
import { RawDisk } from './raw.ts';

export interface DiskFactory {
  name: string;
  /** A new writable disk of `size` bytes in `dir`; differencing ones get a parent with `parentFill` data. */
  create(dir: string, size: number): Promise<Disk>;
}

const MiB = 1024 * 1024;

/** Deterministic non-zero bytes, different for each offset. */
export function patternBuffer(length: number, seed: number): Buffer {
  const b = Buffer.allocUnsafe(length);
  let x = (seed * 2654435761) >>> 0 || 1;
  for (let i = 0; i < length; i++) {
    x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
    b[i] = x & 0xff;
  }
  return b;
}

export const DISK_FACTORIES: DiskFactory[] = [
  { name: 'raw', create: async (dir, size) => RawDisk.create(join(dir, 'disk.raw'), size) },
  { name: 'fixed VHDX', create: async (dir, size) => createVhdx(join(dir, 'fixed.vhdx'), { size, type: 'fixed', blockSize: MiB }) },
  { name: 'dynamic VHDX', create: async (dir, size) => createVhdx(join(dir, 'dynamic.vhdx'), { size, blockSize: 2 * MiB }) },
  {
    name: 'differencing VHDX',
    async create(dir, size) {
      // The parent holds data in its first blocks, so reads through the child see it.
      const parent = await createVhdx(join(dir, 'parent.vhdx'), { size, blockSize: MiB });
      await parent.write(patternBuffer(3 * MiB, 99), 0);
      await parent.close();
      await createDifferencingVhdx(join(dir, 'child.avhdx'), join(dir, 'parent.vhdx'));
      return openDisk(join(dir, 'child.avhdx'), { writable: true });
    },
  },
];

/** Run `suite` once per disk kind, with a fresh scratch directory per test. */
export function testOnAllDisks(title: string, suite: (ctx: { factory: DiskFactory; dir: () => string }) => void): void {
  for (const factory of DISK_FACTORIES) {
    describe(`${title} (${factory.name})`, () => {
      let dir = '';
      beforeEach(() => { dir = mkdtempSync(join(tmpdir(), 'hvb-disk-')); });
      afterEach(() => rmSync(dir, { recursive: true, force: true }));
      suite({ factory, dir: () => dir });
    });
  }
}
