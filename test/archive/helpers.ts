// Shared fixtures for the archive tests: a scratch folder with a small repository.

import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { initRepository, openRepository } from '../../core/repo/local.ts';
import type { Repository } from '../../core/repo/repository.ts';

export const MiB = 1024 * 1024;
export const CHEAP_KDF = { kdf: { N: 2 ** 10, r: 8, p: 1 } };

export interface Scratch {
  dir: string;
  repoPath: string;
  mediaDir: string;
  cleanup(): void;
}

export function scratch(prefix = 'hvb-archive-'): Scratch {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, repoPath: join(dir, 'repo'), mediaDir: join(dir, 'media'), cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

export function newRepo(path: string, opts: { password?: string; chunkSize?: number } = {}): Promise<Repository> {
  return initRepository(path, { chunkSize: opts.chunkSize ?? MiB, password: opts.password, keyOptions: opts.password ? CHEAP_KDF : undefined });
}

export function reopen(path: string, password?: string): Promise<Repository> {
  return openRepository(path, { password, threads: 0 });
}

export function mediaFiles(dir: string): string[] {
  return readdirSync(dir).filter((f) => f.endsWith('.tar')).sort().map((f) => join(dir, f));
}

export function run(cmd: string, args: string[], cwd?: string): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(cmd, args, { cwd, encoding: 'utf8', maxBuffer: 64 * MiB });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}
