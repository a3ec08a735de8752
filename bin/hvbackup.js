#!/usr/bin/env node
// Start the CLI on the project's pinned Node (24, from the npm registry's `node` package)
// whatever node ran this shim, so a machine's old system Node never runs the engine.
import { spawnSync } from 'node:child_process';
import module from 'node:module';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const main = join(root, 'core', 'cli', 'main.ts');
const major = Number(process.versions.node.split('.')[0]);
if (major >= 24) {
  // Cache the type-stripped, compiled engine between runs: halves CLI start-up.
  module.enableCompileCache?.();
  const { main: run } = await import(main);
  process.exitCode = await run(process.argv.slice(2));
} else {
  const pinned = join(root, 'node_modules', 'node', 'bin', process.platform === 'win32' ? 'node.exe' : 'node');
  if (!existsSync(pinned)) {
    process.stderr.write(`hvbackup: needs Node 24 or newer (this is ${process.version}); run "npm install" in ${root} first\n`);
    process.exit(2);
  }
  const r = spawnSync(pinned, [main, ...process.argv.slice(2)], { stdio: 'inherit' });
  process.exitCode = r.status ?? 1;
}
