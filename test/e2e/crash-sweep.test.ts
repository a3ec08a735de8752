// kill -9 at every file-system change, not at random moments: a child process runs one step of
// the product (a leftover checkpoint's merge, a backup, a gc, a restore, an archive export) and
// kills itself just before its Nth write, sync, rename, unlink... (test/support/kill-at.mjs),
// for every N the step makes (test/support/crash-sweep.ts runs them). After each kill nothing
// may be lost: the VM goes on (the emulated guest writes), repair finishes what the kill cut,
// and the disk holds every write and is a valid VHDX; after a backup's kill the repository
// verifies and the next backup restores identical; after a gc's kill the repository verifies,
// every kept point restores as it was backed up, and the next gc finishes; after a restore's
// kill no partial disk has its final name; after an export's kill the next export finishes and
// the media restore the disk. The random-moment test (kill.test.ts) once found a kill between
// a merge's log flush and its in-place writes; this one tries every such moment.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { scratch, type Scratch } from '../backup/testing.ts';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

type Phase = 'merge' | 'backup' | 'gc' | 'restore' | 'archive';

function sweep(phase: Phase, dir: string): { changes: number; failures: string[] } {
  const r = spawnSync(process.execPath, [join(root, 'test', 'support', 'crash-sweep.ts'), phase, dir], { cwd: root, encoding: 'utf8', maxBuffer: 64 << 20 });
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout.trim().split('\n').at(-1)!) as { changes: number; failures: string[] };
}

/** Each step the runner sweeps: what the title says after a kill, and the fewest changes it must make (so the sweep covers something). */
const STEPS: { phase: Phase; what: string; min: number; title: string }[] = [
  { phase: 'merge', what: 'merge', min: 20, title: 'of a leftover checkpoint\'s merge (vm repair): the guest writes on, repair finishes it, every write kept, the disk valid' },
  { phase: 'backup', what: 'backup', min: 40, title: 'of a tracked incremental backup (checkpoint, packs, index, manifest, merge): the repository verifies, the VM goes on, the next backup restores identical' },
  { phase: 'gc', what: 'gc', min: 15, title: 'of a gc that deletes packs, rewrites one the kept points still use and consolidates the index: the repository verifies, the kept points restore as backed up, the next gc finishes' },
  { phase: 'restore', what: 'restore', min: 15, title: 'of a restore: no partial disk ever has its final name, and the next restore into the same folder finishes (removing the killed one\'s staging folder) or refuses to overwrite a complete disk' },
  { phase: 'archive', what: 'export', min: 15, title: 'of an archive export to media that span: the catalog names only media that are there, the next export finishes, and the media alone restore the disk' },
];

describe('kill -9 at every file-system change', function () {
  this.timeout(600_000);
  let s: Scratch;
  before(() => { s = scratch('hvb-sweep-'); });
  after(() => s.cleanup());

  // HVB_SWEEP_PHASES=backup,gc: only those steps (the spill suite's pass, with HVB_SWEEP_EVERY).
  const only = process.env.HVB_SWEEP_PHASES?.split(',');
  for (const step of STEPS.filter((st) => !only || only.includes(st.phase))) {
    it(step.title, () => {
      const { changes, failures } = sweep(step.phase, s.path(step.phase));
      assert.ok(changes >= step.min, `the ${step.what} made ${changes} file-system changes`);
      assert.deepEqual(failures, []);
    });
  }
});
