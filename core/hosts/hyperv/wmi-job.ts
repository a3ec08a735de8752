// Hyper-V WMI methods return 0 (done), 4096 (job started: poll its Msvm_ConcreteJob) or an
// error code. A failed job's ErrorDescription is what Hyper-V tells the user; we surface it
// unchanged, with the VM and the step, in an ERR_HOST error.

import { HvError, throwIfAborted } from '../../errors.ts';
import { GET_JOB } from './scripts.ts';
import type { PsSession } from './session.ts';

export const JOB_STARTED = 4096;
export const JOB_COMPLETED = 7;

/** Msvm method return codes (hyperv_v2 reference, e.g. CreateSnapshot, GetVirtualDiskChanges). */
const RETURN_CODES: Record<number, string> = {
  32768: 'Failed', 32769: 'Access denied', 32770: 'Not supported', 32771: 'Status is unknown', 32772: 'Timeout',
  32773: 'Invalid parameter', 32774: 'System is in use', 32775: 'Invalid state for this operation',
  32776: 'Incorrect data type', 32777: 'System is not available', 32778: 'Out of memory', 32779: 'File not found',
};

const JOB_STATES: Record<number, string> = {
  2: 'New', 3: 'Starting', 4: 'Running', 5: 'Suspended', 6: 'Shutting Down', 7: 'Completed', 8: 'Terminated',
  9: 'Killed', 10: 'Exception', 11: 'Service', 32768: 'Query Pending',
};
const RUNNING_STATES = new Set([2, 3, 4, 5, 6, 11, 32768]);

export interface MethodResult { ReturnValue: number; JobId?: string; [k: string]: unknown }

export interface ConcreteJob {
  InstanceID: string;
  JobState: number;
  PercentComplete?: number;
  ErrorCode?: number;
  ErrorDescription?: string | null;
  ErrorSummaryDescription?: string | null;
}

export interface JobContext {
  session: PsSession;
  /** What we were doing, e.g. "CreateSnapshot", and for which VM (by name). */
  step: string;
  vmName: string;
  signal?: AbortSignal;
  pollIntervalMs: number;
  /** Each call's time limit (InvokeOptions.timeoutMs): a method call and each poll are short steps. */
  timeoutMs?: number;
  sleep: (ms: number) => Promise<void>;
}

export class MethodFailed extends HvError {}

/** Call a script that invokes a WMI method; wait for its job; fail with Hyper-V's message. */
export async function callMethod(ctx: JobContext, script: string, params: Record<string, unknown>, seen?: (r: MethodResult) => void): Promise<MethodResult> {
  throwIfAborted(ctx.signal);
  const r = (await ctx.session.invoke(script, params, { signal: ctx.signal, timeoutMs: ctx.timeoutMs })) as MethodResult | null;
  // Lets a caller learn what the script made (e.g. a folder) even when the job then fails.
  if (r) seen?.(r);
  if (!r || typeof r.ReturnValue !== 'number') {
    throw new MethodFailed('ERR_HOST', `${ctx.step} of VM ${ctx.vmName}: Hyper-V returned no result`, { target: ctx.vmName });
  }
  if (r.ReturnValue === 0) return r;
  if (r.ReturnValue !== JOB_STARTED) {
    const text = RETURN_CODES[r.ReturnValue] ?? 'unknown error';
    throw new MethodFailed('ERR_HOST', `${ctx.step} of VM ${ctx.vmName} failed: ${text} (return value ${r.ReturnValue})`, {
      target: ctx.vmName, data: { returnValue: r.ReturnValue, step: ctx.step },
    });
  }
  await waitForJob(ctx, r.JobId ?? '');
  return r;
}

export async function waitForJob(ctx: JobContext, jobId: string): Promise<ConcreteJob> {
  for (;;) {
    throwIfAborted(ctx.signal);
    const job = (await ctx.session.invoke(GET_JOB, { jobId }, { signal: ctx.signal, timeoutMs: ctx.timeoutMs })) as ConcreteJob | null;
    if (!job) {
      throw new MethodFailed('ERR_HOST', `${ctx.step} of VM ${ctx.vmName}: Hyper-V job ${jobId} disappeared before it completed`, { target: ctx.vmName });
    }
    if (job.JobState === JOB_COMPLETED) return job;
    if (!RUNNING_STATES.has(job.JobState)) {
      const state = JOB_STATES[job.JobState] ?? String(job.JobState);
      const why = job.ErrorDescription || job.ErrorSummaryDescription || `job ended in state ${state}`;
      throw new MethodFailed('ERR_HOST', `${ctx.step} of VM ${ctx.vmName} failed: ${why} (job state ${state}, error code ${job.ErrorCode ?? 'none'})`, {
        target: ctx.vmName, data: { jobId, jobState: job.JobState, errorCode: job.ErrorCode, errorDescription: job.ErrorDescription, step: ctx.step },
      });
    }
    await ctx.sleep(ctx.pollIntervalMs);
  }
}
