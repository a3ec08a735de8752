// Public API: retention policies and garbage collection. The CLI (retention apply, gc)
// and the bridge (Invoke-HVRetention) call only these. Params and results are plain JSON.

import { HvError } from '../errors.ts';
import type { OperationContext } from '../progress.ts';
import { applyRetentionIn, type RetentionResult } from '../retention/apply.ts';
import { collectGarbageIn, type GcResult } from '../retention/gc.ts';
import type { RetentionPolicy } from '../retention/gfs.ts';
import { getHost } from '../hosts/index.ts';
import { openRepositoryForApi } from './repository.ts';

export type { GcResult, RetentionResult, RetentionPolicy };
export type { RetentionAction } from '../retention/apply.ts';

export interface ApplyRetentionParams extends RetentionPolicy {
  repository: string;
  password?: string;
  vmName?: string;
  whatIf?: boolean;
  /** Also delete the chunks the removed points leave unreferenced (GC). */
  prune?: boolean;
}

function optionalCount(v: unknown, name: string): number | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) throw new HvError('ERR_INVALID_ARGUMENT', `${name} must be a whole number >= 0`);
  return v;
}

export async function applyRetention(ctx: OperationContext, params: ApplyRetentionParams): Promise<RetentionResult> {
  const policy: RetentionPolicy = {};
  for (const k of ['keepLast', 'daily', 'weekly', 'monthly', 'yearly'] as const) {
    const n = optionalCount(params[k], k);
    if (n !== undefined) policy[k] = n;
  }
  const repo = await openRepositoryForApi(params.repository, params.password ?? undefined, ctx);
  try {
    return await applyRetentionIn(ctx, repo, policy, { vmName: params.vmName ?? undefined, whatIf: params.whatIf === true, prune: params.prune === true, getHost: (kind) => getHost(kind, { onLog: ctx.onLog }) });
  } finally {
    await repo.close();
  }
}

export async function collectGarbage(ctx: OperationContext, params: { repository: string; password?: string; whatIf?: boolean }): Promise<GcResult> {
  const repo = await openRepositoryForApi(params.repository, params.password ?? undefined, ctx);
  try {
    return await collectGarbageIn(ctx, repo, { whatIf: params.whatIf === true });
  } finally {
    await repo.close();
  }
}
