// One persistent PowerShell session, behind a small interface so tests stub it.
// A call is a fixed script (scripts.ts) plus parameters; the parameters travel as base64
// of their JSON and are decoded inside PowerShell, so no VM name, id or path is ever part
// of the text PowerShell parses. Answers come back as one base64 line of JSON, which
// survives the console code page (Windows PowerShell writes OEM code pages, not UTF-8).

import { Writable } from 'node:stream';
import { HvError } from '../../errors.ts';
import { ENVELOPE, scriptName } from './scripts.ts';

export interface PsSession {
  /** Run `script` (a constant from scripts.ts) with `params` bound to `$p`; resolve its output as JSON data. */
  invoke(script: string, params: Record<string, unknown>): Promise<unknown>;
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
  /** Per-call timeout in ms (0 = none); WMI jobs are polled by separate calls, so calls are short. */
  invocationTimeout?: number;
}

interface Refable { ref?(): unknown; unref?(): unknown }
interface Shell {
  invoke(cmd: string): Promise<{ raw: string; stdout?: Buffer; stderr?: Buffer }>;
  dispose(): Promise<void>;
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
    invocationTimeout: opts.invocationTimeout ?? 0,
  }) as unknown as Shell & { readBulkFromOutput: typeof readBulkFromOutput };
  shell.readBulkFromOutput = readBulkFromOutput;
  return shell;
}

/** The real session: node-powershell's PowerShell class, started on first use. */
export class NodePowerShellSession implements PsSession {
  readonly #opts: PowerShellSessionOptions;
  #shell: Promise<Shell> | undefined;
  #busy = 0;

  constructor(opts: PowerShellSessionOptions = {}) {
    this.#opts = opts;
  }

  #start() {
    this.#shell ??= startPowerShell(this.#opts);
    return this.#shell;
  }

  async invoke(script: string, params: Record<string, unknown>): Promise<unknown> {
    const shell = await this.#start();
    if (this.#busy++ === 0) hold(shell, true);
    try {
      const r = await shell.invoke(buildInvocation(script, params));
      return parseAnswer(r.stdout?.toString('utf8') ?? r.raw, script);
    } finally {
      if (--this.#busy === 0) hold(shell, false);
    }
  }

  async dispose(): Promise<void> {
    const shell = this.#shell;
    this.#shell = undefined;
    if (!shell) return;
    const sh = await shell;
    // Keep Node alive until PowerShell has exited (its handles are unref'd while idle).
    hold(sh, true);
    await sh.dispose();
  }
}
