import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { copyFileSync, readFileSync } from 'node:fs';
import { patternBuffer } from '../../core/disk/testing.ts';
import { isHvError } from '../../core/errors.ts';
import { checkVhdx, createVhdx, openDisk, vhdxTestHooks } from '../../core/vhdx/index.ts';
import { currentHeader, makeReplayFixture, MiB, qemuCheck, qemuToRaw, run, scratch, writeAtSync } from './helpers.ts';
import { encodeHeader } from '../../core/vhdx/format/header.ts';
import { newGuid, NULL_GUID } from '../../core/vhdx/format/guid.ts';
import { readAt } from '../support/disk-read.ts';

const sha = (f: string) => createHash('sha256').update(readFileSync(f)).digest('hex');


describe('VHDX log replay', () => {
  let s: ReturnType<typeof scratch>;
  beforeEach(() => { s = scratch(); });
  afterEach(() => s.cleanup());

  it('a qemu file with a pending log: read-only open refuses (file untouched), in-memory replay reads the logged BAT', async () => {
    const f = s.path('nr.vhdx');
    makeReplayFixture(f);
    const before = sha(f);
    await assert.rejects(openDisk(f), (e) => isHvError(e, 'ERR_LOG_REPLAY_NEEDED') && e.message.includes(`hvbackup vhdx check --repair ${f}`));
    assert.ok((await readAt(f, 0, MiB, { replayLogInMemory: true })).every((b) => b === 0xcd));
    assert.equal(sha(f), before, 'read-only opens never write');
  });

  it('a LogGuid with no entry of its own (killed before the first entry was flushed): nothing to replay, read-only opens and check accept it', async () => {
    const f = s.path('empty-log.vhdx');
    run('qemu-img', ['create', '-q', '-f', 'vhdx', '-o', 'subformat=dynamic,block_size=1M', f, '16M']);
    run('qemu-io', ['-f', 'vhdx', '-c', 'write -P 0xab 1M 1M', f]);
    const sel = currentHeader(f);
    writeAtSync(f, sel.index === 0 ? 64 * 1024 : 128 * 1024, encodeHeader({ ...sel.header, logGuid: newGuid() }));
    const before = sha(f);
    assert.ok((await readAt(f, MiB, MiB)).every((b) => b === 0xab));
    assert.deepEqual((await checkVhdx(f)).problems, []);
    assert.equal(sha(f), before, 'read-only opens never write');
    qemuCheck(f);
    await (await openDisk(f, { writable: true })).close();
    assert.equal(currentHeader(f).header.logGuid, NULL_GUID, 'a writable open clears it');
  });

  it('a writable open replays the log, after which qemu-img check passes and the data is back', async () => {
    const f = s.path('nr.vhdx');
    makeReplayFixture(f);
    const d = await openDisk(f, { writable: true });
    await d.close();
    qemuCheck(f);
    assert.ok(qemuToRaw(f, s.path('nr.raw')).subarray(0, MiB).every((b) => b === 0xcd));
  });

  it('an interrupted write of ours (crash after the log flush) is replayed by us and by qemu-img check -r all', async () => {
    const f = s.path('crash.vhdx');
    const d = await createVhdx(f, { size: 64 * MiB, blockSize: MiB });
    await d.write(patternBuffer(2 * MiB, 1), 0);
    const second = patternBuffer(3 * MiB, 2);
    vhdxTestHooks.crashAfterLogFlush = true;
    try {
      await assert.rejects(d.write(second, 10 * MiB), /simulated crash/);
    } finally {
      vhdxTestHooks.crashAfterLogFlush = false;
    }
    await d.close();
    await assert.rejects(openDisk(f), (e) => isHvError(e, 'ERR_LOG_REPLAY_NEEDED'));
    const qemuStatus = run('qemu-img', ['check', f], [0, 1, 2, 3]);
    assert.match(qemuStatus.stderr + qemuStatus.stdout, /log that needs to be replayed/);
    copyFileSync(f, s.path('qemu.vhdx'));
    run('qemu-img', ['check', '-r', 'all', s.path('qemu.vhdx')]);
    assert.ok(qemuToRaw(s.path('qemu.vhdx'), s.path('q.raw')).subarray(10 * MiB, 13 * MiB).equals(second), 'qemu replays our log entry');
    const r = await checkVhdx(f, { repair: true });
    assert.deepEqual(r.problems, []);
    assert.match(r.repaired.join('\n'), /log replayed \(1 entry\)/);
    assert.ok((await readAt(f, 10 * MiB, 3 * MiB)).equals(second));
    assert.ok((await readAt(f, 0, 2 * MiB)).equals(patternBuffer(2 * MiB, 1)));
    qemuCheck(f);
  });

  it('the log ring wraps over hundreds of transactions in one session and the last entry still replays', async () => {
    const f = s.path('wrap.vhdx');
    // 2048 blocks of 1 MiB: writes 1 MiB apart touch many BAT pages and wrap the 1 MiB log.
    const d = await createVhdx(f, { size: 2048 * MiB, blockSize: MiB });
    for (let i = 0; i < 300; i++) await d.write(Buffer.alloc(512, (i % 250) + 1), i * 6 * MiB % (2048 * MiB));
    vhdxTestHooks.crashAfterLogFlush = true;
    try {
      await assert.rejects(d.write(Buffer.alloc(4096, 0xfe), 2047 * MiB), /simulated crash/);
    } finally {
      vhdxTestHooks.crashAfterLogFlush = false;
    }
    await d.close();
    const r = await checkVhdx(f, { repair: true });
    assert.deepEqual(r.problems, []);
    assert.ok((await readAt(f, 2047 * MiB, 4096)).every((b) => b === 0xfe));
    assert.ok((await readAt(f, 6 * MiB * 299 % (2048 * MiB), 512)).every((b) => b === (299 % 250) + 1));
    qemuCheck(f);
  });
});
