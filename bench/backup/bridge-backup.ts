// bench helper: tracked incrementals through the PowerShell module's engine process — one
// long-lived bridge (bridge/server.mjs, JSON lines over stdio), as an admin's Backup-HVVM runs
// them: no Node start-up per call. Before each call a 1 % change is made through the engine
// (engine-mutate.ts, a separate process, as the running guest); the time is the bridge's
// request → result, measured here on the client side of the pipe.
// Usage: node bench/backup/bridge-backup.ts <vmDir> <repo> <seed>...
// Prints one JSON line per call: {call, seed, ms, durationMs, method, status}.
import { spawnSync } from 'node:child_process';
import { root, startBridge } from './bridge-client.ts';

const [vmDir, repo, ...seeds] = process.argv.slice(2);
if (!vmDir || !repo || seeds.length === 0) throw new Error('usage: bridge-backup.ts <vmDir> <repo> <seed>...');
const bridge = await startBridge();
for (const [i, seed] of seeds.entries()) {
  const m = spawnSync(process.execPath, [`${root}bench/backup/engine-mutate.ts`, vmDir, seed, '1'], { stdio: ['ignore', 'ignore', 'inherit'] });
  if (m.status !== 0) throw new Error(`engine-mutate.ts exited with ${m.status}`);
  const t0 = performance.now();
  const result = await bridge.call('backupVMs', { repository: repo, sources: [vmDir] });
  const ms = performance.now() - t0;
  const r = (result as { status: string; method?: string; durationMs?: number }[])[0]!;
  console.log(JSON.stringify({ call: i + 1, seed: Number(seed), ms: Math.round(ms), durationMs: r.durationMs, method: r.method, status: r.status }));
}
await bridge.close();
