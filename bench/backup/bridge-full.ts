// bench helper: full backups through the PowerShell module's engine process, each of the same
// VM into a new repository: the first call in a bridge just started (it loads the engine and
// starts the chunk workers), then warm ones (a long-lived engine keeps both). What a CLI run
// adds to the warm figure is Node's start-up and the workers' (~0.4 s on the 2-core box).
// Usage: node bench/backup/bridge-full.ts <vmDir> <workDir> <calls>
// Prints one JSON line per call: {call, ms, durationMs, method, status}; removes its repositories.
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { startBridge } from './bridge-client.ts';

const [vmDir, work, calls] = process.argv.slice(2);
if (!vmDir || !work || !(Number(calls) > 0)) throw new Error('usage: bridge-full.ts <vmDir> <workDir> <calls>');
const bridge = await startBridge();
for (let i = 0; i < Number(calls); i++) {
  const repo = join(work, `bridge-full-${i}`);
  rmSync(repo, { recursive: true, force: true });
  await bridge.call('initRepository', { path: repo });
  const t0 = performance.now();
  const result = await bridge.call('backupVMs', { repository: repo, sources: [vmDir] });
  const ms = performance.now() - t0;
  const r = (result as { status: string; method?: string; durationMs?: number }[])[0]!;
  console.log(JSON.stringify({ call: i + 1, ms: Math.round(ms), durationMs: r.durationMs, method: r.method, status: r.status }));
  rmSync(repo, { recursive: true, force: true });
}
await bridge.close();
