// Errors carry a stable code (for the CLI's exit status and the bridge's
// PowerShell ErrorCategory), the object they concern, and a data payload.
// Messages name the file or object and the problem, so a user can act on them.

export type ErrorCode =
  | 'ERR_INVALID_ARGUMENT'   // a caller passed something unusable
  | 'ERR_NOT_FOUND'          // a file, VM, restore point or object does not exist
  | 'ERR_ALREADY_EXISTS'     // create-only write found the object already there
  | 'ERR_CORRUPT'            // stored bytes fail a checksum or do not parse
  | 'ERR_UNSUPPORTED'        // valid but not something we handle (unknown required metadata, ...)
  | 'ERR_LOG_REPLAY_NEEDED'  // a VHDX log must be replayed before the disk can be read
  | 'ERR_PARENT'             // a differencing disk's parent is missing or does not match
  | 'ERR_LOCKED'             // the repository or VM is locked by someone else
  | 'ERR_AUTH'               // wrong password / key
  | 'ERR_IO'                 // the operating system refused an I/O
  | 'ERR_HOST'               // the hypervisor refused or failed an operation
  | 'ERR_CANCELLED'          // the operation was cancelled (Ctrl+C, AbortSignal)
  | 'ERR_INTERNAL';

export class HvError extends Error {
  readonly code: ErrorCode;
  /** The file, VM, restore point or object the error concerns (a path, name or id). */
  readonly target: string | undefined;
  readonly data: Record<string, unknown>;

  constructor(code: ErrorCode, message: string, opts: { target?: string; cause?: unknown; data?: Record<string, unknown> } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'HvError';
    this.code = code;
    this.target = opts.target;
    this.data = opts.data ?? {};
  }
}

export function isHvError(err: unknown, code?: ErrorCode): err is HvError {
  return err instanceof HvError && (code === undefined || err.code === code);
}

/** Wrap an unknown failure with the operation and object it happened in (restic's `LoadRaw(<handle>): ...`). */
export function wrapError(err: unknown, context: string, target?: string): HvError {
  if (err instanceof HvError) {
    return new HvError(err.code, `${context}: ${err.message}`, { target: err.target ?? target, cause: err, data: err.data });
  }
  const e = err as NodeJS.ErrnoException;
  const code: ErrorCode = e?.code === 'ENOENT' ? 'ERR_NOT_FOUND' : e?.code === 'EEXIST' ? 'ERR_ALREADY_EXISTS' : e?.name === 'AbortError' ? 'ERR_CANCELLED' : 'ERR_IO';
  return new HvError(code, `${context}: ${e?.message ?? String(err)}`, { target, cause: err });
}

export function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw new HvError('ERR_CANCELLED', 'operation cancelled');
}
