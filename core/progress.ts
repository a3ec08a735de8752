// Progress and log events travel from the engine to the CLI (progress bar or JSON lines)
// and to the bridge (PowerShell Write-Progress / Write-Verbose) unchanged.

export interface ProgressEvent {
  /** What is running, e.g. "backup", "restore", "verify", "export". */
  activity: string;
  /** The object it runs on: a VM name, disk file, restore point id. */
  target?: string;
  /** Human-readable current step, e.g. "reading web01.vhdx". */
  status?: string;
  /** Bytes (or items) done and total, when known. */
  done?: number;
  total?: number;
  /** Set on the last event of an activity. */
  completed?: boolean;
}

export type LogLevel = 'verbose' | 'info' | 'warning';

export interface LogEvent {
  level: LogLevel;
  message: string;
  target?: string;
}

/** Everything a long operation needs from its caller. */
export interface OperationContext {
  signal?: AbortSignal;
  onProgress?: (event: ProgressEvent) => void;
  onLog?: (event: LogEvent) => void;
}

export function log(ctx: OperationContext | undefined, level: LogLevel, message: string, target?: string): void {
  ctx?.onLog?.({ level, message, target });
}

export function progress(ctx: OperationContext | undefined, event: ProgressEvent): void {
  ctx?.onProgress?.(event);
}
