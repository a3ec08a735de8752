// bench helper: tracked incrementals through the PowerShell module's engine process — one
// long-lived bridge (bridge/server.mjs, JSON lines over stdio), as an admin's Backup-HVVM runs
// them: no Node start-up per call. Before each call a 1 % change is made through the engine
// (engine-mutate.ts, a separate process, as the running guest); the time is the bridge's
// request → result, measured here on the client side of the pipe.
// Usage: node bench/backup/bridge-backup.ts <vmDir> <repo> <seed>...
// Prints one JSON line per call: {call, seed, ms, durationMs, method, status}.
import { spawn, spawnSync } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const [vmDir, repo, ...seeds] = process.argv.slice(2);
if (!vmDir || !repo || seeds.length === 0) throw new Error('usage: bridge-backup.ts <vmDir> <repo> <seed>...');
const root = fileURLToPath(new URL('../../', import.meta.url));
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

for (const [i, seed] of seeds.entries()) {
  const m = spawnSync(process.execPath, [`${root}bench/backup/engine-mutate.ts`, vmDir, seed, '1'], { stdio: ['ignore', 'ignore', 'inherit'] });
  if (m.status !== 0) throw new Error(`engine-mutate.ts exited with ${m.status}`);
  const id = `backup-${i}`;
  const answered = new Promise<Record<string, unknown>>((r) => waiting.set(id, r));
  const t0 = performance.now();
  bridge.stdin!.write(`${JSON.stringify({ id, method: 'backupVMs', params: { repository: repo, sources: [vmDir] } })}\n`);
  const msg = await answered;
  const ms = performance.now() - t0;
  if (msg.type === 'error') throw new Error(`backupVMs through the bridge failed: ${JSON.stringify(msg.error)}`);
  const r = (msg.result as { status: string; method?: string; durationMs?: number }[])[0]!;
  console.log(JSON.stringify({ call: i + 1, seed: Number(seed), ms: Math.round(ms), durationMs: r.durationMs, method: r.method, status: r.status }));
}
bridge.stdin!.end();
await new Promise((r) => bridge.on('exit', r));
