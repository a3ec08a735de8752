// Keeps the main thread's V8 young generation at its start size, so a long job's memory does
// not grow with the data it handles; and, for a process serving many jobs, collects one job's
// garbage before the next adds its own (idleCollector).
//
// V8 doubles a thread's new space (up to tens of MiB: 64 on a large machine) while many objects
// survive its scavenges, and hardly gives it back. A backup's main thread keeps per-chunk ids
// and promises alive across reads and pack writes, and over a 16 GiB backup its heap grew from
// ~26 to ~83 MiB and the process peaked at 248–257 MiB (issue 3 asks for ≤ 256 MiB whatever the
// disk size). Chunk workers get the same bound from their resourceLimits (chunk-pool.ts).
//
// The new space's maximum can only be set when the process starts (--max-semi-space-size), which
// neither `npm`'s bin shim nor a PowerShell host can be relied on to pass. Its growth factor is
// read each time V8 would grow it, so setting it to 1 here, before the job allocates, keeps the
// new space as it is. Measured on that 16 GiB backup (3 runs each): peak RSS 209–227 MiB, the
// backup no slower. (The flag is process-wide; V8 reads it only when it would grow a new space.)

import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

let bounded = false;

/** Stop this process's V8 young generations from growing (the CLI and the bridge call it at start). */
export function boundYoungGeneration(): void {
  if (bounded || flagsFrozen()) return;
  bounded = true;
  setFlagsFromString('--semi-space-growth-factor=1');
}

/**
 * For a process that serves many jobs (the bridge): a full garbage collection when it goes idle
 * and its memory has grown by more than `growthBytes` since the last one. Each backup leaves
 * garbage V8 has no reason to collect yet: 4 MiB read buffers and chunk copies (malloc'd
 * backing stores), pack buffers beyond the few kept for reuse (13 MiB of shared memory each).
 * V8 collects it only once the next job has allocated enough, on top of what that job holds:
 * an engine serving a backup after another (a 1 % tracked incremental, a full every fourth)
 * peaked at 200–237 MiB and once at 265 over 32 calls (the same calls made in a plain script:
 * up to 293), where a single backup peaks at ~200. Collected at idle: 171–204 MiB over 24 calls.
 * A collection costs 6–30 ms the caller does not wait for (its answer is written), and small
 * calls (listing points) seldom grow memory enough to trigger one.
 * Returns the function to call whenever the process has nothing to do.
 */
export function idleCollector(growthBytes = 8 * 1024 * 1024): (opts?: { force?: boolean }) => boolean {
  const collect = exposeGc();
  // Where gc cannot be had, the process runs as it would without this help.
  if (!collect) return () => false;
  let base = process.memoryUsage.rss();
  // force: collect whatever the growth (the caller has just let go of what it kept).
  return (opts = {}) => {
    if (!opts.force && process.memoryUsage.rss() - base <= growthBytes) return false;
    collect();
    base = process.memoryUsage.rss();
    return true;
  };
}

/**
 * V8's full collection as a function, or undefined where it cannot be had. Only a start flag
 * (--expose-gc) exposes it; set at run time, it appears in contexts made after (as Jest gets it).
 */
function exposeGc(): (() => void) | undefined {
  const started = (globalThis as { gc?: unknown }).gc;
  if (typeof started === 'function') return started as () => void;
  if (flagsFrozen()) return undefined;
  try {
    setFlagsFromString('--expose-gc');
    const gc: unknown = runInNewContext('gc');
    return typeof gc === 'function' ? (gc as () => void) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Node runs V8 with its flags open after start (so that v8.setFlagsFromString works); a process
 * started with --freeze-flags-after-init would abort on the first flag set, not throw, so
 * nothing is set there.
 */
function flagsFrozen(): boolean {
  return process.execArgv.some((a) => a.replace(/_/g, '-') === '--freeze-flags-after-init');
}
