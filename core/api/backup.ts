// Public API: back up VMs (VM folders, VM names under a root, or bare disk files) into a repository.
import type { BackupResult } from './types.ts';
import { HvError } from '../errors.ts';
import type { OperationContext } from '../progress.ts';
import { runBackupJob } from '../backup/engine.ts';
import { optionalString, withRepo } from '../backup/open.ts';
import { getHost } from '../hosts/index.ts';
import type { HostKind } from '../hosts/index.ts';

export interface BackupParams {
  repository: string;
  password?: string;
  /** VM folders, VM names (under `root`), or bare .vhdx/.img files. */
  sources: string[];
  full?: boolean;
  parallel?: number;
  whatIf?: boolean;
  /** Where VM names are looked up (local host); default the current folder. */
  root?: string;
  host?: HostKind;
  consistency?: 'auto' | 'crash' | 'application';
}

export async function backupVMs(ctx: OperationContext, params: BackupParams): Promise<BackupResult[]> {
  const sources = params.sources;
  if (!Array.isArray(sources) || sources.length === 0 || sources.some((s) => typeof s !== 'string' || s === '')) {
    throw new HvError('ERR_INVALID_ARGUMENT', 'sources must list at least one VM folder, VM name or disk file');
  }
  const parallel = params.parallel ?? 1;
  if (!Number.isInteger(parallel) || parallel < 1 || parallel > 64) throw new HvError('ERR_INVALID_ARGUMENT', `parallel must be an integer from 1 to 64, got ${String(parallel)}`);
  const host = await getHost(params.host ?? 'local', { root: optionalString(params.root, 'root') ?? process.cwd(), onLog: ctx.onLog });
  return withRepo(params.repository, params.password, ctx.signal, (repo) =>
    runBackupJob(ctx, { repo, host, sources, full: params.full === true, parallel, whatIf: params.whatIf === true, consistency: params.consistency }));
}
