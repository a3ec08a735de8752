import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';

const root = join(import.meta.dirname, '..', '..');

describe('hvbackup CLI', () => {
  it('prints its version through the bin shim', () => {
    const r = spawnSync(process.execPath, [join(root, 'bin', 'hvbackup.js'), '--version'], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /^\d+\.\d+\.\d+/);
  });
  it('exits 2 on an unknown command', () => {
    const r = spawnSync(process.execPath, [join(root, 'bin', 'hvbackup.js'), 'no-such-command'], { encoding: 'utf8' });
    assert.equal(r.status, 2);
  });
});
