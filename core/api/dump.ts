// Public API: a restore point's disk (or a byte range of it) as raw bytes, into a caller's sink
// (the CLI's `dump`, to stdout). Not a bridge method: the PowerShell module's results are
// objects, not a byte stream; Restore-HVVM -Disk writes a disk file.
import { optionalString, requireString, withRepo } from '../backup/open.ts';
import type { OperationContext } from '../progress.ts';
import { dumpDisk, type DumpResult } from '../restore/dump.ts';
import { resolvePoint } from './restore.ts';

export interface DumpParams {
  repository: string;
  password?: string;
  /** Id, id prefix, or "latest". */
  point: string;
  vmName?: string;
  /** Key or file name; may be left out for a one-disk point. */
  disk?: string;
  offset?: number;
  length?: number;
  write(buf: Buffer): Promise<void>;
}

export type { DumpResult };

export async function dumpRestorePoint(ctx: OperationContext, params: DumpParams): Promise<DumpResult> {
  const point = requireString(params.point, 'point');
  const vmName = optionalString(params.vmName, 'vmName');
  const disk = optionalString(params.disk, 'disk');
  return withRepo(params.repository, params.password, ctx, async (repo) => {
    const manifest = await resolvePoint(repo, point, vmName, ctx.signal);
    return dumpDisk(ctx, { repo, manifest, disk, offset: params.offset, length: params.length, write: params.write });
  }, { chunkWork: true });
}
