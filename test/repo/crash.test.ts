import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { initRepository, openRepository } from '../../core/repo/local.ts';
import { addPointChunks } from '../../core/repo/manifest-chunks.ts';
import { pruneChunks } from '../../core/repo/prune.ts';
import { prng } from '../../core/hosts/local/content.ts';

const CHILD = join(import.meta.dirname, 'crash-child.ts');

/**
 * Start the writer, let it save `saves` restore points (timing-independent on a busy
 * machine), then kill -9 it `delayMs` later, somewhere in the next chunks or manifest.
 */
function runAndKill(repo: string, saves: number, delayMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CHILD, repo], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d) => { stderr += d; });
    let seen = -1;
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      for (const line of d.split('\n')) {
        if (line === 'ready' || line === 'saved') seen++;
        if (seen === saves) {
          seen++;
          setTimeout(() => child.kill('SIGKILL'), delayMs);
        }
      }
    });
    child.on('exit', (code, signal) => {
      if (signal === 'SIGKILL') resolve();
      else reject(new Error(`writer exited on its own (code ${code}): ${stderr}`));
    });
  });
}

describe('Repository crash safety (kill -9)', function () {
  this.timeout(90_000);
  let dir: string;
  beforeEach(() => { dir = mkdtempSync(join(tmpdir(), 'hvb-crash-')); });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  for (const seed of [1, 2, 3]) {
    it(`leaves a valid repository after writers are killed at random moments (seed ${seed})`, async () => {
      const path = join(dir, 'repo');
      await (await initRepository(path, { chunkSize: 64 * 1024 })).close();
      const random = prng(seed);
      for (let round = 0; round < 4; round++) await runAndKill(path, 1 + Math.floor(random() * 3), Math.floor(random() * 60));
      const repo = await openRepository(path);
      try {
        const manifests = await repo.listManifests();
        assert.ok(manifests.length > 0, 'the writers wrote some restore points');
        const ids = new Set<string>();
        for (const m of manifests) await addPointChunks(repo, m, ids);
        for await (const c of repo.readChunks(ids)) assert.equal(repo.chunkId(c.data), c.id);
        // The killed writers' locks are stale (dead pids on this host) and only those go.
        const removed = await repo.breakStaleLocks();
        assert.equal(removed.length, 4);
        const lock = await repo.lock({ exclusive: true, operation: 'check' });
        await lock.release();
        for (const name of readdirSync(join(path, 'manifests'))) assert.match(name, /^[0-9a-f]{64}$/);
        // Killed writers leave packs no index object lists (their flush never came): GC deletes
        // them or lists them again, and every point still reads; then every pack is listed.
        const gc = await repo.lock({ exclusive: true, operation: 'gc' });
        try {
          await pruneChunks(repo, ids);
        } finally {
          await gc.release();
        }
        for await (const c of repo.readChunks(ids)) assert.equal(repo.chunkId(c.data), c.id);
        const index = await repo.chunkIndex({ reread: true });
        const packs = readdirSync(join(path, 'packs'), { recursive: true, withFileTypes: true }).filter((e) => e.isFile()).map((e) => e.name).sort();
        assert.deepEqual([...index.packs.keys()].sort(), packs);
        assert.equal(readdirSync(join(path, 'index')).length, 1);
      } finally {
        await repo.close();
      }
    });
  }
});
