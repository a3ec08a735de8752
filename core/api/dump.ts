// Public API: a restore point's disk (or a byte range of it) as raw bytes, into a caller's sink
// (the CLI's `dump`, to stdout) or a new raw image file (`dump --to`). Not a bridge method: the
// PowerShell module's results are objects, not a byte stream; Restore-HVVM -Disk writes a disk file.
import { optionalString, requireString, withRepo } from '../backup/open.ts';
import type { OperationContext } from '../progress.ts';
import { HvError } from '../errors.ts';
import { dumpDisk, dumpRange, fileSink, type DumpResult } from '../restore/dump.ts';
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
  /** Where the bytes go: a sink (the CLI's stdout) ... */
  write?(buf: Buffer): Promise<void>;
  /** ... or a new raw image file (never over an existing one; zeros left as holes; deleted again if the dump fails). */
  to?: string;
}

export type { DumpResult };

export async function dumpRestorePoint(ctx: OperationContext, params: DumpParams): Promise<DumpResult> {
  const point = requireString(params.point, 'point');
  const vmName = optionalString(params.vmName, 'vmName');
  const disk = optionalString(params.disk, 'disk');
  const to = optionalString(params.to, 'to');
  if ((to === undefined) === (params.write === undefined)) throw new HvError('ERR_INVALID_ARGUMENT', 'dump needs exactly one of write (a sink) and to (a file)');
  return withRepo(params.repository, params.password, ctx, async (repo) => {
    const manifest = await resolvePoint(repo, point, vmName, ctx.signal);
    if (params.write) return dumpDisk(ctx, { repo, manifest, disk, offset: params.offset, length: params.length, write: params.write });
    // The range is checked before the file is made: a bad one creates nothing.
    const sink = await fileSink(to!, dumpRange(manifest, disk, params.offset, params.length).length);
    try {
      const r = await dumpDisk(ctx, { repo, manifest, disk, offset: params.offset, length: params.length, write: sink.write });
      await sink.finish();
      return r;
    } catch (err) {
      await sink.abort();
      throw err;
    }
  }, { chunkWork: true });
}
