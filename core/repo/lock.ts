// Repository locks (after restic): each holder writes a small JSON object under locks/,
// refreshes it while it works, and removes it when done. Shared locks (backups) coexist;
// an exclusive lock (removing restore points, GC) excludes every other lock. A lock is
// stale when not refreshed for 30 minutes, or when its process on this host is gone.

import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { HvError, isHvError } from '../errors.ts';
import { processAlive } from '../process.ts';
import type { Backend } from './backend.ts';

export const LOCK_REFRESH_MS = 60 * 1000;
export const LOCK_STALE_MS = 30 * 60 * 1000;

export interface LockInfo {
  hostname: string;
  pid: number;
  /** ISO time written or last refreshed. */
  time: string;
  exclusive: boolean;
  operation: string;
}

export interface HeldLock {
  readonly name: string;
  readonly info: LockInfo;
  /**
   * Throw ERR_LOCKED when the lock can no longer be trusted (removed by someone else, or not
   * refreshed for almost the stale time, so others may already treat it as stale). Call it
   * before a step that relies on the lock, e.g. before writing a manifest.
   */
  check(): void;
  release(): Promise<void>;
}

export function encodeLock(l: LockInfo): Buffer {
  return Buffer.from(JSON.stringify(l), 'utf8');
}

export function decodeLock(buf: Buffer, what: string): LockInfo {
  try {
    const l = JSON.parse(buf.toString('utf8')) as LockInfo;
    if (typeof l.hostname === 'string' && Number.isInteger(l.pid) && typeof l.time === 'string' && typeof l.exclusive === 'boolean') return l;
  } catch {
    // fall through to the error below
  }
  throw new HvError('ERR_CORRUPT', `${what}: lock is not valid JSON with hostname, pid, time, exclusive`, { target: what });
}

export function isStale(l: LockInfo, now = Date.now(), host = hostname()): boolean {
  const t = Date.parse(l.time);
  if (!Number.isFinite(t) || now - t > LOCK_STALE_MS) return true;
  return l.hostname === host && !processAlive(l.pid);
}

export function describeLock(l: LockInfo): string {
  return `locked by host ${l.hostname} pid ${l.pid} since ${l.time} for '${l.operation}'${l.exclusive ? ' (exclusive)' : ''}`;
}

/** Every lock in the repository. Locks that vanish or do not parse while listing are skipped (a corrupt one counts as stale). */
export async function listLocks(backend: Backend, signal?: AbortSignal): Promise<{ name: string; info: LockInfo | undefined }[]> {
  const out: { name: string; info: LockInfo | undefined }[] = [];
  for await (const o of backend.list(signal, 'locks')) {
    try {
      out.push({ name: o.name, info: decodeLock(await backend.load(signal, { type: 'locks', name: o.name }), `<locks/${o.name}>`) });
    } catch (err) {
      if (backend.isNotFound(err)) continue;
      if (isHvError(err, 'ERR_CORRUPT')) out.push({ name: o.name, info: undefined });
      else throw err;
    }
  }
  return out;
}

/**
 * Take a lock: write ours first, then look for conflicting ones, and back out if there
 * are any — two processes racing both see each other and both back out, never both win.
 */
export async function acquireLock(backend: Backend, opts: { exclusive: boolean; operation: string; signal?: AbortSignal; onReadOnly?: (message: string) => void }): Promise<HeldLock> {
  const name = randomBytes(32).toString('hex');
  const info: LockInfo = { hostname: hostname(), pid: process.pid, time: new Date().toISOString(), exclusive: opts.exclusive, operation: opts.operation };
  try {
    // Not flushed: a lock only has to be seen by the other processes, and after a power failure its holder is gone too.
    await backend.save(opts.signal, { type: 'locks', name }, encodeLock(info), { durable: false });
  } catch (err) {
    // A store mounted read-only (a snapshot, WORM media, an offsite copy) takes no lock file;
    // nothing can delete from it through this mount either, so a reader may go on unlocked.
    if (opts.exclusive || !opts.onReadOnly || !backend.isReadOnly(err)) throw err;
    opts.onReadOnly(`repository ${backend.location} is on a read-only file system: ${opts.operation} goes on without a lock`);
    return { name: '', info, check: () => {}, release: async () => {} };
  }
  try {
    const conflict = (await listLocks(backend, opts.signal)).find((l) => l.name !== name && l.info && !isStale(l.info) && (opts.exclusive || l.info.exclusive));
    if (conflict) {
      throw new HvError('ERR_LOCKED', `repository ${backend.location} is ${describeLock(conflict.info!)}`, { target: backend.location, data: { lock: conflict.info, lockName: conflict.name } });
    }
  } catch (err) {
    await backend.remove(undefined, { type: 'locks', name }).catch(() => {});
    throw err;
  }
  return holdLock(backend, name, info);
}

function holdLock(backend: Backend, name: string, info: LockInfo): HeldLock {
  let released = false;
  let lastRefresh = Date.now();
  let lostReason: string | undefined;
  const h = { type: 'locks' as const, name };
  const refresh = async () => {
    try {
      // Someone ran `repo unlock --force`: our lock is gone, do not quietly put it back.
      await backend.stat(undefined, h);
    } catch (err) {
      if (backend.isNotFound(err)) lostReason = 'its lock file was removed (repo unlock --force?)';
      return;
    }
    const next = { ...info, time: new Date().toISOString() };
    await backend.save(undefined, h, encodeLock(next), { overwrite: true, durable: false });
    info.time = next.time;
    lastRefresh = Date.now();
  };
  const timer = setInterval(() => {
    // A failed refresh is retried next minute; the lock only goes stale after 30.
    refresh().catch(() => {});
  }, LOCK_REFRESH_MS);
  timer.unref();
  return {
    name,
    info,
    check() {
      const reason = lostReason ?? (Date.now() - lastRefresh > LOCK_STALE_MS - 2 * LOCK_REFRESH_MS ? `it could not be refreshed since ${new Date(lastRefresh).toISOString()}` : undefined);
      if (reason && !released) {
        throw new HvError('ERR_LOCKED', `lost the lock on repository ${backend.location} for '${info.operation}': ${reason}`, { target: backend.location });
      }
    },
    async release() {
      if (released) return;
      released = true;
      clearInterval(timer);
      await backend.remove(undefined, h);
    },
  };
}

/** Remove stale locks (or, with force, every lock). Returns the locks removed. */
export async function breakLocks(backend: Backend, opts: { force?: boolean; signal?: AbortSignal } = {}): Promise<{ name: string; info: LockInfo | undefined }[]> {
  const removed: { name: string; info: LockInfo | undefined }[] = [];
  for (const l of await listLocks(backend, opts.signal)) {
    if (opts.force || !l.info || isStale(l.info)) {
      await backend.remove(opts.signal, { type: 'locks', name: l.name });
      removed.push(l);
    }
  }
  return removed;
}
