// bench helper: one long-lived engine process as the PowerShell module runs it
// (bridge/server.mjs, JSON lines over stdio), and a call → answer over it.
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

export const root = fileURLToPath(new URL('../../', import.meta.url));

export interface Bridge {
  /** Send one request; resolves with its result, or rejects with the error message the bridge sent. */
  call(method: string, params: unknown): Promise<unknown>;
  close(): Promise<void>;
}

export async function startBridge(): Promise<Bridge> {
  const bridge = spawn(process.execPath, [`${root}bridge/server.mjs`], { stdio: ['pipe', 'pipe', 'inherit'] });
  const lines = createInterface({ input: bridge.stdout! });
  const waiting = new Map<string, (msg: Record<string, unknown>) => void>();
  let hello!: () => void;
  const ready = new Promise<void>((r) => { hello = r; });
  lines.on('line', (line) => {
    const msg = JSON.parse(line) as Record<string, unknown>;
    if (msg.type === 'hello') hello();
    else if ((msg.type === 'result' || msg.type === 'error') && typeof msg.id === 'string') waiting.get(msg.id)?.(msg);
  });
  await ready;
  let n = 0;
  return {
    async call(method, params) {
      const id = `call-${n++}`;
      const answered = new Promise<Record<string, unknown>>((r) => waiting.set(id, r));
      bridge.stdin!.write(`${JSON.stringify({ id, method, params })}\n`);
      const msg = await answered;
      waiting.delete(id);
      if (msg.type === 'error') throw new Error(`${method} through the bridge failed: ${JSON.stringify(msg.error)}`);
      return msg.result;
    },
    async close() {
      bridge.stdin!.end();
      await new Promise((r) => bridge.on('exit', r));
    },
  };
}
