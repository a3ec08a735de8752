#!/usr/bin/env node
// The engine process behind the HVBackup PowerShell module: reads requests as JSON lines on
// stdin, runs them through the public API (core/api, via the method table) and writes
// progress, log, result and error messages as JSON lines on stdout. stdout carries only
// protocol: anything else the engine prints goes to stderr. Protocol: docs/bridge-protocol.md.
//   node bridge/server.mjs [--release-idle-after <seconds>] [--test-methods <module.ts>]
// --release-idle-after: how long the engine keeps its chunk workers, pack and read buffers and
// chunk indexes once no call runs (default 300). --test-methods adds the module's `testMethods`
// (names must start with "test.") for the protocol tests; production methods come only from
// the API table.

import { pathToFileURL } from 'node:url';
import { HvError } from '../core/errors.ts';
import { boundYoungGeneration, idleCollector } from '../core/heap.ts';
import type { LogEvent, OperationContext, ProgressEvent } from '../core/progress.ts';
import { apiMethodTable } from './methods.ts';
import type { ApiFunction, MethodTable } from './methods.ts';
import { PROTOCOL_VERSION, ProtocolError, decodeClientMessage, encodeServerMessage, splitLines } from './protocol.ts';
import type { RequestMessage, ServerMessage, WireError } from './protocol.ts';

export const ENGINE_VERSION = '0.1.0';
/** Progress messages of one request closer together than this are dropped (except the last of an activity). */
const PROGRESS_INTERVAL_MS = 100;
/**
 * Idle this long (seconds), the engine lets go of what it keeps between calls. Commands typed
 * a minute apart, or a script's calls, find it all warm; a console left open for the day does
 * not hold ~100 MiB and an encrypted repository's keys in its workers all day.
 */
const RELEASE_IDLE_AFTER_S = 300;

export function toWireError(err: unknown): WireError {
  if (err instanceof HvError) {
    const wire: WireError = { code: err.code, message: err.message };
    if (err.target !== undefined) wire.target = err.target;
    if (Object.keys(err.data).length > 0) wire.data = jsonSafe(err.data);
    return wire;
  }
  const e = err as Error | undefined;
  if (e?.name === 'AbortError') return { code: 'ERR_CANCELLED', message: 'operation cancelled' };
  return { code: 'ERR_INTERNAL', message: `internal engine error: ${e?.stack ?? String(err)}` };
}

function jsonSafe(data: Record<string, unknown>): Record<string, unknown> {
  try {
    return JSON.parse(JSON.stringify(data, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v))) as Record<string, unknown>;
  } catch {
    return {};
  }
}

export class BridgeServer {
  private readonly methods: MethodTable;
  private readonly write: (line: string) => void;
  private readonly running = new Map<string, AbortController>();
  private readonly idle: Array<() => void> = [];
  private readonly onIdle: (() => void) | undefined;
  private buffer = '';

  /** True while a request runs. */
  get busy(): boolean {
    return this.running.size > 0;
  }

  /** `onIdle`: called once no request runs any more, after the last one's answer is written. */
  constructor(methods: MethodTable, write: (line: string) => void, opts: { onIdle?: () => void } = {}) {
    this.methods = methods;
    this.write = write;
    this.onIdle = opts.onIdle;
  }

  hello(): void {
    this.send({ type: 'hello', protocol: PROTOCOL_VERSION, engine: ENGINE_VERSION, node: process.version, pid: process.pid, methods: Object.keys(this.methods).sort() });
  }

  /** Feed a chunk of stdin text; complete lines are handled, a partial one waits for more. */
  feed(chunk: string): void {
    const [lines, rest] = splitLines(this.buffer + chunk);
    this.buffer = rest;
    for (const line of lines) this.handleLine(line);
  }

  /** stdin closed: cancel what still runs and resolve when every request has answered. */
  async close(): Promise<void> {
    if (this.buffer.trim() !== '') this.handleLine(this.buffer);
    this.buffer = '';
    for (const ctl of this.running.values()) ctl.abort();
    if (this.running.size > 0) await new Promise<void>((resolve) => this.idle.push(resolve));
  }

  private send(msg: ServerMessage): void {
    let line: string;
    try {
      line = encodeServerMessage(msg);
    } catch (err) {
      // A result JSON cannot carry (a BigInt, a cycle) must still answer the request.
      line = encodeServerMessage({ id: 'id' in msg ? msg.id : null, type: 'error', error: { code: 'ERR_INTERNAL', message: `engine result cannot be sent as JSON: ${(err as Error).message}` } });
    }
    this.write(line);
  }

  private handleLine(line: string): void {
    try {
      const msg = decodeClientMessage(line);
      if ('type' in msg) {
        this.running.get(msg.id)?.abort();
        return;
      }
      void this.run(msg);
    } catch (err) {
      const id = err instanceof ProtocolError ? err.id : null;
      this.send({ id, type: 'error', error: { code: 'ERR_INVALID_ARGUMENT', message: (err as Error).message } });
    }
  }

  private context(id: string, signal: AbortSignal): OperationContext {
    let last = 0;
    return {
      signal,
      onProgress: (event: ProgressEvent) => {
        const now = Date.now();
        if (!event.completed && now - last < PROGRESS_INTERVAL_MS) return;
        last = now;
        this.send({ ...event, id, type: 'progress' });
      },
      onLog: (event: LogEvent) => this.send({ ...event, id, type: 'log' }),
    };
  }

  private async run(req: RequestMessage): Promise<void> {
    if (this.running.has(req.id)) {
      this.send({ id: req.id, type: 'error', error: { code: 'ERR_INVALID_ARGUMENT', message: `request id ${req.id} is already running` } });
      return;
    }
    const load = Object.hasOwn(this.methods, req.method) ? this.methods[req.method] : undefined;
    if (!load) {
      this.send({ id: req.id, type: 'error', error: { code: 'ERR_INVALID_ARGUMENT', message: `unknown method "${req.method}"`, target: req.method } });
      return;
    }
    const ctl = new AbortController();
    this.running.set(req.id, ctl);
    try {
      const fn: ApiFunction = await load();
      // A method that returns after a cancel finished cleanly on its own terms (a watch
      // that runs until cancelled returns its summary): its result is the answer.
      const result = await fn(this.context(req.id, ctl.signal), req.params);
      this.send({ id: req.id, type: 'result', result: result ?? null });
    } catch (err) {
      const wire = toWireError(err);
      if (ctl.signal.aborted && wire.code !== 'ERR_CANCELLED') wire.message = `${req.method} cancelled: ${wire.message}`;
      this.send({ id: req.id, type: 'error', error: ctl.signal.aborted ? { ...wire, code: 'ERR_CANCELLED' } : wire });
    } finally {
      this.running.delete(req.id);
      if (this.running.size === 0) {
        for (const resolve of this.idle.splice(0)) resolve();
        // Not in this turn: a request already read from stdin starts first, and then nobody is idle.
        if (this.onIdle) setImmediate(() => { if (this.running.size === 0) this.onIdle!(); });
      }
    }
  }
}

function releaseIdleAfter(argv: string[]): number {
  const at = argv.indexOf('--release-idle-after');
  if (at < 0) return RELEASE_IDLE_AFTER_S;
  const s = Number(argv[at + 1]);
  // setTimeout's longest delay is ~24.8 days; longer means never.
  if (!Number.isFinite(s) || s < 0) throw new Error(`--release-idle-after: seconds (0 or more) expected, got ${JSON.stringify(argv[at + 1] ?? null)}`);
  return Math.min(s, 2_000_000);
}

async function loadTestMethods(file: string): Promise<MethodTable> {
  const mod = (await import(pathToFileURL(file).href)) as { testMethods?: Record<string, ApiFunction> };
  const table: MethodTable = {};
  for (const [name, fn] of Object.entries(mod.testMethods ?? {})) {
    if (!name.startsWith('test.')) throw new Error(`--test-methods: method "${name}" must start with "test."`);
    table[name] = async () => fn;
  }
  return table;
}

/** Keep stdout for protocol only: console output and stray stdout writes of engine code go to stderr. */
function reserveStdout(): (line: string) => void {
  const out = process.stdout.write.bind(process.stdout);
  const toErr = process.stderr.write.bind(process.stderr);
  process.stdout.write = ((chunk: unknown, ...rest: unknown[]) => (toErr as (...a: unknown[]) => boolean)(chunk, ...rest)) as typeof process.stdout.write;
  console.log = console.error;
  console.info = console.error;
  console.debug = console.error;
  return (line: string) => { out(line); };
}

async function serve(argv: string[]): Promise<void> {
  const write = reserveStdout();
  // Many calls over hours: its heap must not grow with the data they handle (core/heap.ts).
  boundYoungGeneration();
  const at = argv.indexOf('--test-methods');
  const methods: MethodTable = { ...apiMethodTable(), ...(at >= 0 ? await loadTestMethods(argv[at + 1] ?? '') : {}) };
  const releaseAfterMs = releaseIdleAfter(argv) * 1000;
  // What one call leaves for the garbage collector is collected before the next call adds its
  // own (core/heap.ts); what the engine keeps between calls goes once it has been idle a while.
  const collect = idleCollector();
  // The repository API, which says what to keep between calls; imported after hello (below).
  let keeping: Promise<typeof import('../core/api/repository.ts')> | undefined;
  let releaseTimer: NodeJS.Timeout | undefined;
  const release = async () => {
    if (server.busy) return; // the next idle moment arms the timer again
    await (await keeping)?.releaseKeptResources();
    if (!server.busy) collect({ force: true });
  };
  const server = new BridgeServer(methods, write, {
    onIdle: () => {
      collect();
      clearTimeout(releaseTimer);
      releaseTimer = setTimeout(() => {
        release().catch((err: unknown) => process.stderr.write(`hvbackup bridge: could not release idle resources: ${(err as Error)?.message ?? String(err)}\n`));
      }, releaseAfterMs).unref();
    },
  });
  server.hello();
  // This process serves many calls: keep chunk workers between them instead of starting two
  // per backup or restore (core/repo/chunk-pool.ts retire()), and each repository's chunk index
  // and restore-point summaries, refreshed rather than read whole by the next call
  // (core/repo/repository.ts keepChunkIndexes).
  // Loaded after hello: import() itself does part of the loading before it returns.
  keeping = import('../core/api/repository.ts').then((m) => {
    m.keepIdleWorkerPools(2);
    m.keepChunkIndexes(2);
    return m;
  });
  process.stdin.setEncoding('utf8');
  process.stdin.on('data', (chunk: string) => server.feed(chunk));
  let closing = false;
  const closeAndExit = (code: number) => {
    if (closing) return;
    closing = true;
    void server.close().then(() => process.exit(code));
  };
  process.stdin.on('end', () => closeAndExit(0));
  // The client gone while an operation still reports (PowerShell closed mid-backup): its next
  // write failed with EPIPE, an unhandled error that killed this process before the backup could
  // merge its checkpoint. Now that is the client going away: cancel, answer no one, exit.
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code !== 'EPIPE' && err.code !== 'ERR_STREAM_DESTROYED') throw err;
    closeAndExit(0);
  });
  // The PowerShell side cancels with a protocol message; a console Ctrl+C must not kill a
  // request half-way, so SIGINT is left to the client.
  process.on('SIGINT', () => {});
  // Stopped from outside (a service manager, a closed console): cancel what runs, as when the
  // client goes away, so a backup merges its checkpoint and releases its lock; again: at once.
  for (const sig of ['SIGTERM', 'SIGHUP'] as const) process.once(sig, () => closeAndExit(1));
}

/** Run the engine process: the entry point, bridge/server.mjs, calls this (as does `node bridge/server.ts`). */
export function startServer(argv: string[]): void {
  serve(argv).catch((err: unknown) => {
    process.stderr.write(`hvbackup bridge: cannot start: ${(err as Error)?.stack ?? String(err)}\n`);
    process.exit(1);
  });
}

if (import.meta.main) startServer(process.argv.slice(2));
