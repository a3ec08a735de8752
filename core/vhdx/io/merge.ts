// Merging a differencing child into its parent (Hyper-V's checkpoint delete) and
// listing what a child holds.
import { existsSync } from 'node:fs';
import { unlink } from 'node:fs/promises';
import type { ByteRange } from '../../disk/disk.ts';
import { HvError } from '../../errors.ts';
import { MiB } from '../format/constants.ts';
import type { MergeResult } from '../index.ts';
import { openParent, openVhdxDisk } from './open.ts';
import type { LayerRange } from './layout.ts';
import { parentCandidates, parentInfoFromLocator } from './parent.ts';
import type { VhdxDisk } from './vhdx-disk.ts';

const COPY_CHUNK = 32 * MiB;

async function openChildLayer(childPath: string): Promise<VhdxDisk> {
  const child = await openVhdxDisk(childPath, { withoutParent: true });
  if (!child.file.metadata.fileParameters.hasParent) {
    await child.close();
    throw new HvError('ERR_INVALID_ARGUMENT', `${childPath} is not a differencing disk`, { target: childPath });
  }
  return child;
}

export function toByteRanges(ranges: LayerRange[]): ByteRange[] {
  const out: ByteRange[] = [];
  for (const r of ranges) {
    const last = out[out.length - 1];
    if (last && last.offset + last.length === r.offset) last.length += r.length;
    else out.push({ offset: r.offset, length: r.length });
  }
  return out;
}

export async function changedRanges(childPath: string): Promise<ByteRange[]> {
  const child = await openChildLayer(childPath);
  try {
    return toByteRanges(await child.ownRanges());
  } finally {
    await child.close();
  }
}

/** Copy `ranges` of `from` into `to` in chunks of up to 32 MiB; zero ranges become zero(). */
async function copyRanges(from: VhdxDisk, to: VhdxDisk, ranges: LayerRange[]): Promise<void> {
  const buf = Buffer.allocUnsafe(COPY_CHUNK);
  for (const r of ranges) {
    if (r.kind === 'zero') {
      await to.zero(r.offset, r.length);
      continue;
    }
    for (let o = r.offset; o < r.offset + r.length; o += COPY_CHUNK) {
      const b = buf.subarray(0, Math.min(COPY_CHUNK, r.offset + r.length - o));
      await from.read(b, o);
      await to.write(b, o);
    }
  }
}

export async function mergeChild(childPath: string, opts: { keepChild?: boolean; resume?: boolean }): Promise<MergeResult> {
  const child = await openChildLayer(childPath);
  let parentPath: string;
  try {
    const info = parentInfoFromLocator(childPath, child.file.metadata.parentLocator!);
    if (opts.resume) {
      // An interrupted merge of this child already changed the parent's DataWriteGuid;
      // the caller vouches the parent is this child's (copying the child again is idempotent).
      const found = parentCandidates(childPath, info).find((p) => existsSync(p));
      if (!found) throw new HvError('ERR_PARENT', `parent of ${childPath} not found`, { target: childPath });
      parentPath = found;
    } else {
      const check = await openParent(childPath, info);
      parentPath = check.path;
      await check.close();
    }
    const ranges = await child.ownRanges();
    if (ranges.length === 0 && !opts.resume) {
      // The child holds nothing (a backup checkpoint the guest did not write to): the
      // parent stays as it is, unopened for writing, its DataWriteGuid unchanged.
      await child.close();
      if (!opts.keepChild) await unlink(childPath);
      return { parentPath, changed: [] };
    }
    // Resuming, the writable open replays the log a cut-short merge may have left; that
    // does not change DataWriteGuid.
    const parent = await openVhdxDisk(parentPath, { writable: true });
    try {
      await copyRanges(child, parent, ranges);
      await parent.flush();
      const changed = toByteRanges(ranges);
      await parent.close();
      await child.close();
      if (!opts.keepChild) await unlink(childPath);
      return { parentPath, changed };
    } finally {
      await parent.close();
    }
  } finally {
    await child.close();
  }
}
