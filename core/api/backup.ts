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
  /** Hyper-V driver options (host: 'hyperv'). */
  hyperv?: {
    /** Back up VMs that have user checkpoints, by scanning (-AllowUserCheckpoints); default: refuse them. */
    allowUserCheckpoints?: boolean;
    /**
     * Seconds one PowerShell step may take before the host is taken for hung (-HostStepTimeoutSec;
     * default 300, STEP_TIMEOUT_MS; 0: no limit). For hosts where a Get-VM takes minutes.
     */
    stepTimeoutSeconds?: number;
  };
}

/** Longest step time limit accepted: a day. */
const MAX_STEP_TIMEOUT_SECONDS = 86_400;

function hypervOptions(v: unknown): { allowUserCheckpoints?: boolean; stepTimeoutMs?: number } {
  if (v === undefined || v === null) return {};
  if (typeof v !== 'object' || Array.isArray(v)) throw new HvError('ERR_INVALID_ARGUMENT', 'hyperv must be an object like {"allowUserCheckpoints": true}');
  const out: { allowUserCheckpoints?: boolean; stepTimeoutMs?: number } = {};
  const allow = (v as { allowUserCheckpoints?: unknown }).allowUserCheckpoints;
  if (allow !== undefined && allow !== null) {
    if (typeof allow !== 'boolean') throw new HvError('ERR_INVALID_ARGUMENT', `hyperv.allowUserCheckpoints must be true or false, got ${JSON.stringify(allow)}`);
    out.allowUserCheckpoints = allow;
  }
  const secs = (v as { stepTimeoutSeconds?: unknown }).stepTimeoutSeconds;
  if (secs !== undefined && secs !== null) {
    if (typeof secs !== 'number' || !Number.isInteger(secs) || secs < 0 || secs > MAX_STEP_TIMEOUT_SECONDS) {
      throw new HvError('ERR_INVALID_ARGUMENT', `hyperv.stepTimeoutSeconds must be a whole number of seconds from 0 (no limit) to ${MAX_STEP_TIMEOUT_SECONDS}, got ${JSON.stringify(secs)}`);
    }
    out.stepTimeoutMs = secs * 1000;
  }
  return out;
}

export async function backupVMs(ctx: OperationContext, params: BackupParams): Promise<BackupResult[]> {
  const sources = params.sources;
  if (!Array.isArray(sources) || sources.length === 0 || sources.some((s) => typeof s !== 'string' || s === '')) {
    throw new HvError('ERR_INVALID_ARGUMENT', 'sources must list at least one VM folder, VM name or disk file');
  }
  const parallel = params.parallel ?? 1;
  if (!Number.isInteger(parallel) || parallel < 1 || parallel > 64) throw new HvError('ERR_INVALID_ARGUMENT', `parallel must be an integer from 1 to 64, got ${String(parallel)}`);
  const kind = params.host ?? 'local';
  if (kind !== 'local' && kind !== 'hyperv') throw new HvError('ERR_INVALID_ARGUMENT', `host must be "local" or "hyperv", got ${JSON.stringify(kind)}`);
  const host = await getHost(kind, { root: optionalString(params.root, 'root') ?? process.cwd(), onLog: ctx.onLog, hyperv: hypervOptions(params.hyperv) });
  return withRepo(params.repository, params.password, ctx, (repo) =>
    runBackupJob(ctx, { repo, host, sources, full: params.full === true, parallel, whatIf: params.whatIf === true, consistency: params.consistency }), { chunkWork: params.whatIf !== true });
}
