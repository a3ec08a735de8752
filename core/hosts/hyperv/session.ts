// One persistent PowerShell session, behind a small interface so tests stub it.
// A call is a fixed script (scripts.ts) plus parameters; the parameters travel as base64
// of their JSON and are decoded inside PowerShell, so no VM name, id or path is ever part
// of the text PowerShell parses. Answers come back as one base64 line of JSON, which
// survives the console code page (Windows PowerShell writes OEM code pages, not UTF-8).

import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { Writable } from 'node:stream';
import { HvError, throwIfAborted } from '../../errors.ts';
import { ENVELOPE, scriptName } from './scripts.ts';

export interface InvokeOptions {
  /**
   * Stops the step where it is: its PowerShell process is ended (the session starts a new one
   * for the next step) and the call fails with ERR_CANCELLED. Without this a hung step would
   * outlive a Ctrl+C in the PowerShell module, whose engine process stays.
   */
  signal?: AbortSignal;
  /**
   * Milliseconds the step may take, queueing behind the session's other steps included (0 or
   * undefined: no limit). Past it the step is taken for hung (Hyper-V's management service not
   * answering): it is stopped as for `signal`, and the call fails with ERR_HOST saying so.
   */
  timeoutMs?: number;
}

export interface PsSession {
  /** Run `script` (a constant from scripts.ts) with `params` bound to `$p`; resolve its output as JSON data. */
  invoke(script: string, params: Record<string, unknown>, opts?: InvokeOptions): Promise<unknown>;
  dispose?(): Promise<void>;
}

const b64 = (text: string): string => Buffer.from(text, 'utf8').toString('base64');

export function encodeParams(params: Record<string, unknown>): string {
  return b64(JSON.stringify(params));
}

/** The single line sent to PowerShell: only base64 text besides the fixed prefix. */
export function buildInvocation(script: string, params: Record<string, unknown>): string {
  return `& ([ScriptBlock]::Create([Text.Encoding]::UTF8.GetString([Convert]::FromBase64String('${b64(ENVELOPE)}')))) '${b64(script)}' '${encodeParams(params)}'`;
}

interface Envelope {
  ok: boolean;
  value?: unknown;
  message?: string;
  category?: string;
  errorId?: string;
}

/** Find our answer line in the session's stdout and turn a PowerShell failure into an HvError. */
export function parseAnswer(stdout: string, script: string): unknown {
  // pwsh may wrap output in terminal control sequences, so look for the marker anywhere.
  const line = [...stdout.matchAll(/HVB:([A-Za-z0-9+/=]+)/g)].pop()?.[1];
  const name = scriptName(script);
  if (!line) {
    throw new HvError('ERR_HOST', `PowerShell step ${name} gave no answer: ${stdout.trim().slice(0, 500) || '(no output)'}`, { target: name });
  }
  let env: Envelope;
  try {
    env = JSON.parse(Buffer.from(line, 'base64').toString('utf8')) as Envelope;
  } catch (err) {
    throw new HvError('ERR_HOST', `PowerShell step ${name} answered with unreadable JSON`, { target: name, cause: err });
  }
  if (!env.ok) {
    throw new HvError('ERR_HOST', `PowerShell step ${name} failed: ${env.message ?? 'unknown error'}`, {
      target: name, data: { category: env.category, errorId: env.errorId },
    });
  }
  return env.value ?? null;
}

export interface PowerShellSessionOptions {
  /** "powershell" (Windows PowerShell 5.1, default: ships with the Hyper-V module) or "pwsh". */
  executable?: string;
}

interface Refable { ref?(): unknown; unref?(): unknown }
interface Shell {
  invoke(cmd: string): Promise<{ raw: string; stdout?: Buffer; stderr?: Buffer }>;
  dispose(signal?: NodeJS.Signals): Promise<void>;
  streams: { stdin: unknown; stdout: unknown; stderr: unknown };
}

/**
 * Between calls the PowerShell process must not keep Node alive (a CLI run would never exit),
 * so its process and pipes are unref'd while idle. node-powershell keeps the ChildProcess in a
 * private field; if a later version renames it, only the process handle stays ref'd.
 */
function hold(shell: Shell, busy: boolean): void {
  const handles = [shell.streams.stdin, shell.streams.stdout, shell.streams.stderr, (shell as unknown as { process?: unknown }).process] as Refable[];
  for (const h of handles) (busy ? h?.ref : h?.unref)?.call(h);
}

/**
 * node-powershell's shell (child-shell 5) ends each call's output at the second of two
 * delimiters it has PowerShell print, but it looks for the second one only in the span of the
 * newest chunk. When earlier output precedes a chunk that holds both delimiters, it finds the
 * first one there, takes the two for one, and waits for good: a session hung that way in a
 * test run here (four calls timed out). This reads the same output, looking for the second
 * delimiter only after the first, and is put on each shell the session starts.
 */
export function readBulkFromOutput(stream: NodeJS.ReadableStream, delimiter: string): Promise<Buffer> {
  return new Promise((resolve) => {
    let buf = Buffer.alloc(0);
    const sink = new Writable({
      write(chunk: Buffer | string, _encoding, done) {
        buf = Buffer.concat([buf, typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : chunk]);
        const first = buf.indexOf(delimiter);
        const second = first < 0 ? -1 : buf.indexOf(delimiter, first + delimiter.length);
        if (second >= 0) {
          stream.unpipe(sink);
          resolve(trimLineSpace(buf.subarray(first + delimiter.length, second)));
        }
        done();
      },
    });
    stream.pipe(sink);
  });
}

/** Without the spaces and line ends around it, as child-shell trims a call's output. */
function trimLineSpace(b: Buffer): Buffer {
  const space = (c: number | undefined) => c === 0x0a || c === 0x0d || c === 0x20;
  let start = 0;
  let end = b.length;
  while (start < end && space(b[start])) start++;
  while (end > start && space(b[end - 1])) end--;
  return b.subarray(start, end);
}

/** A node-powershell shell with our end-of-output check (readBulkFromOutput) in place of its own. */
export async function startPowerShell(opts: PowerShellSessionOptions): Promise<Shell & { readBulkFromOutput: typeof readBulkFromOutput }> {
  const m = await import('node-powershell');
  const shell = new m.PowerShell({
    executable: opts.executable ?? 'powershell',
    executableOptions: { '-NoProfile': true, '-NonInteractive': true, '-ExecutionPolicy': 'Bypass' },
    throwOnInvocationError: false,
    // Not child-shell's own timeout: it gives up waiting but leaves PowerShell running the hung
    // step, and the next step's output would meet that one's. The session ends the process.
    invocationTimeout: 0,
  }) as unknown as Shell & { readBulkFromOutput: typeof readBulkFromOutput };
  shell.readBulkFromOutput = readBulkFromOutput;
  return shell;
}

/**
 * End a PowerShell process and whatever it started, hard. `pwsh` installed as a .NET tool is
 * a launcher whose child runs PowerShell: killing only the launcher left that child sleeping
 * in the hung step (tested). Descendants first, while they can still be found from it.
 */
function killTree(pid: number | undefined): void {
  if (pid === undefined) return;
  if (process.platform === 'win32') {
    spawnSync('taskkill', ['/PID', String(pid), '/T', '/F'], { windowsHide: true, stdio: 'ignore' });
    return;
  }
  for (const child of childPids(pid)) killTree(child);
  try {
    process.kill(pid, 'SIGKILL');
  } catch { /* already gone */ }
}

function childPids(pid: number): number[] {
  try {
    return readdirSync(`/proc/${pid}/task`).flatMap((tid) => readFileSync(`/proc/${pid}/task/${tid}/children`, 'utf8').split(' ').filter(Boolean).map(Number));
  } catch {
    // No /proc (macOS): ask pgrep.
    const r = spawnSync('pgrep', ['-P', String(pid)], { encoding: 'utf8' });
    return r.status === 0 ? r.stdout.split('\n').filter(Boolean).map(Number) : [];
  }
}

/** A started shell and the steps waiting on it, to be failed if it is ended under them. */
interface Running {
  shell: Promise<Shell>;
  waiting: Set<(err: HvError) => void>;
}

/** The real session: node-powershell's PowerShell class, started on first use. */
export class NodePowerShellSession implements PsSession {
  readonly #opts: PowerShellSessionOptions;
  #running: Running | undefined;
  #busy = 0;

  constructor(opts: PowerShellSessionOptions = {}) {
    this.#opts = opts;
  }

  #start(): Running {
    this.#running ??= { shell: startPowerShell(this.#opts), waiting: new Set() };
    return this.#running;
  }

  /** End `run`'s PowerShell (a step on it hung or was cancelled) and fail the steps queued behind, naming `why`. */
  async #end(run: Running, shell: Shell, why: string): Promise<void> {
    if (this.#running === run) this.#running = undefined;
    for (const fail of run.waiting) fail(new HvError('ERR_HOST', why));
    run.waiting.clear();
    hold(shell, true);
    killTree((shell as unknown as { process?: { pid?: number } }).process?.pid);
    await shell.dispose('SIGKILL').catch(() => {});
  }

  async invoke(script: string, params: Record<string, unknown>, opts: InvokeOptions = {}): Promise<unknown> {
    throwIfAborted(opts.signal);
    const run = this.#start();
    const shell = await run.shell;
    if (this.#busy++ === 0) hold(shell, true);
    const name = scriptName(script);
    let timer: NodeJS.Timeout | undefined;
    let onAbort: (() => void) | undefined;
    let fail!: (err: HvError, endProcess: boolean) => void;
    let stop: HvError | undefined;
    /** The stop was this step's (its limit or the signal): its PowerShell must be ended. */
    let endProcess = false;
    // Settles (rejects) only when the step must stop: its time limit, the signal, or its PowerShell ended under it.
    const stopped = new Promise<never>((_, reject) => {
      fail = (e, own) => {
        if (!stop) {
          stop = e;
          endProcess = own;
        }
        reject(e);
      };
      if (opts.timeoutMs) {
        timer = setTimeout(() => fail(new HvError('ERR_HOST', `PowerShell step ${name} did not finish within ${opts.timeoutMs! / 1000} s: Hyper-V's management service may be hung (its PowerShell process was ended)`, { target: name, data: { timeoutMs: opts.timeoutMs } }), true), opts.timeoutMs);
      }
      if (opts.signal) {
        onAbort = () => fail(new HvError('ERR_CANCELLED', `PowerShell step ${name} cancelled`, { target: name }), true);
        if (opts.signal.aborted) onAbort();
        else opts.signal.addEventListener('abort', onAbort, { once: true });
      }
    });
    stopped.catch(() => {}); // raced below; a stop after the step settled changes nothing
    const ended = (e: HvError) => fail(new HvError('ERR_HOST', `PowerShell step ${name}: ${e.message}`, { target: name }), false);
    run.waiting.add(ended);
    const call = shell.invoke(buildInvocation(script, params));
    call.catch(() => {}); // a step stopped is not waited for
    try {
      const r = await Promise.race([call, stopped]);
      return parseAnswer(r.stdout?.toString('utf8') ?? r.raw, script);
    } catch (err) {
      if (stop) {
        // A step that hung may never return: end its process (the next step starts a new one).
        if (endProcess) {
          run.waiting.delete(ended);
          await this.#end(run, shell, `its PowerShell process was ended: step ${name} before it ${stop.code === 'ERR_CANCELLED' ? 'was cancelled' : 'hung'}`);
        }
        throw stop;
      }
      // PowerShell itself went away (it crashed, or was ended under a step queued here).
      if (!(err instanceof HvError)) {
        if (this.#running === run) this.#running = undefined;
        throw new HvError('ERR_HOST', `PowerShell step ${name}: ${(err as Error)?.message ?? String(err)}`, { target: name, cause: err });
      }
      throw err;
    } finally {
      run.waiting.delete(ended);
      clearTimeout(timer);
      if (onAbort) opts.signal!.removeEventListener('abort', onAbort);
      if (--this.#busy === 0) hold(shell, false);
    }
  }

  async dispose(): Promise<void> {
    const run = this.#running;
    this.#running = undefined;
    if (!run) return;
    const sh = await run.shell;
    // Keep Node alive until PowerShell has exited (its handles are unref'd while idle).
    hold(sh, true);
    await sh.dispose();
  }
}
