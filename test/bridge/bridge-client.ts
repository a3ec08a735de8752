// A small test client for the bridge: spawns its entry (bridge/server.mjs, as the module does) and collects its JSON-line messages.
import { spawn } from 'node:child_process';
import type { ChildProcessWithoutNullStreams } from 'node:child_process';
import { join } from 'node:path';

export const root = join(import.meta.dirname, '..', '..');
export const fixtureMethods = join(root, 'test', 'bridge', 'fixtures', 'test-methods.ts');

export type Msg = Record<string, unknown> & { id?: string | null; type?: string };

export class BridgeClient {
  readonly proc: ChildProcessWithoutNullStreams;
  readonly messages: Msg[] = [];
  readonly rawStdout: string[] = [];
  stderr = '';
  private buffer = '';
  private waiters: Array<() => void> = [];

  /** `env`: the engine's environment (default: this process's). */
  constructor(extraArgs: string[] = ['--test-methods', fixtureMethods], env?: NodeJS.ProcessEnv) {
    this.proc = spawn(process.execPath, [join(root, 'bridge', 'server.mjs'), ...extraArgs], { stdio: 'pipe', env });
    this.proc.stdout.setEncoding('utf8');
    this.proc.stdout.on('data', (chunk: string) => {
      this.buffer += chunk;
      let nl: number;
      while ((nl = this.buffer.indexOf('\n')) >= 0) {
        const line = this.buffer.slice(0, nl);
        this.buffer = this.buffer.slice(nl + 1);
        this.rawStdout.push(line);
        this.messages.push(JSON.parse(line) as Msg);
      }
      for (const w of this.waiters.splice(0)) w();
    });
    this.proc.stderr.setEncoding('utf8');
    this.proc.stderr.on('data', (c: string) => { this.stderr += c; });
  }

  send(obj: unknown): void {
    this.proc.stdin.write(typeof obj === 'string' ? `${obj}\n` : `${JSON.stringify(obj)}\n`);
  }

  /** Wait until a message matches, or fail after `ms`. */
  async waitFor(pred: (m: Msg) => boolean, ms = 20_000): Promise<Msg> {
    const deadline = Date.now() + ms;
    for (;;) {
      const found = this.messages.find(pred);
      if (found) return found;
      if (Date.now() > deadline) throw new Error(`timed out; got ${JSON.stringify(this.messages)}; stderr: ${this.stderr}`);
      await new Promise<void>((resolve) => {
        this.waiters.push(resolve);
        setTimeout(resolve, 100);
      });
    }
  }

  final(id: string): Promise<Msg> {
    return this.waitFor((m) => m.id === id && (m.type === 'result' || m.type === 'error'));
  }

  async close(): Promise<number | null> {
    if (this.proc.exitCode !== null) return this.proc.exitCode;
    const exited = new Promise<number | null>((resolve) => this.proc.once('exit', (code) => resolve(code)));
    this.proc.stdin.end();
    return exited;
  }
}
