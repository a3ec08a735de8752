// Preload (node --import) that makes a process kill -9 itself just before its Nth file-system
// change: a write, a sync, a truncate, a rename, a link, an unlink, a mkdir or a remove. With
// HVB_KILL_AT=0 nothing is killed and HVB_KILL_COUNT_FILE receives how many changes the run
// made, so a test can kill a process at every one of them in turn (test/e2e/crash-sweep.test.ts).
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import { syncBuiltinESMExports } from 'node:module';
import { isMainThread } from 'node:worker_threads';

const at = Number(process.env.HVB_KILL_AT ?? 0);
const countFile = process.env.HVB_KILL_COUNT_FILE;
let n = 0;

function step() {
  // SIGKILL to itself: no exit handler, no finally, no cleanup runs, as with kill -9.
  if (++n === at) process.kill(process.pid, 'SIGKILL');
}

function wrap(obj, names, bind) {
  for (const m of names) {
    const real = obj[m];
    if (typeof real !== 'function') continue;
    obj[m] = bind
      ? function (...args) { step(); return real.apply(this, args); }
      : (...args) => { step(); return real(...args); };
  }
}

// Worker threads (chunk workers) change no files; counting there would count twice.
if (isMainThread) {
  const probe = await fsp.open(process.execPath, 'r');
  const handleProto = Object.getPrototypeOf(probe);
  await probe.close();
  wrap(handleProto, ['write', 'writev', 'writeFile', 'appendFile', 'sync', 'datasync', 'truncate'], true);
  wrap(fsp, ['rename', 'link', 'unlink', 'rm', 'rmdir', 'mkdir', 'writeFile', 'appendFile', 'copyFile', 'truncate'], false);
  wrap(fs, ['writeSync', 'fsyncSync', 'fdatasyncSync', 'ftruncateSync', 'renameSync', 'linkSync', 'unlinkSync', 'rmSync', 'rmdirSync', 'mkdirSync', 'writeFileSync', 'copyFileSync'], false);
  // Named imports of node:fs and node:fs/promises see the wrapped functions too.
  syncBuiltinESMExports();
  if (countFile) process.on('exit', () => fs.writeFileSync(countFile, String(n)));
}
