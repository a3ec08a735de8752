import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { readInitPassword, readNewPassword, readRepositoryPassword } from '../../core/cli/password.ts';
import { isHvError } from '../../core/errors.ts';

/** A fake terminal: keystrokes in, everything printed captured. */
function fakeTty(keys: string[]) {
  const input = Object.assign(new PassThrough(), { isTTY: true, isRaw: false, rawModes: [] as boolean[] }) as unknown as NodeJS.ReadStream & { rawModes: boolean[] };
  (input as unknown as { setRawMode: (m: boolean) => void }).setRawMode = (m: boolean) => { input.rawModes.push(m); };
  let printed = '';
  const output = { write: (s: string) => { printed += s; return true; } } as unknown as NodeJS.WriteStream;
  setImmediate(function feed() {
    const k = keys.shift();
    if (k === undefined) return;
    input.write(k);
    setImmediate(feed);
  });
  return { input, output, printed: () => printed };
}

describe('crypto: CLI password sources', () => {
  let dir: string;
  beforeEach(() => { dir = mkdtempSync(join(tmpdir(), 'hvb-pw-')); });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));
  const noTty = { isTTY: false } as NodeJS.ReadStream;

  it('reads --password-file without its trailing newline, ahead of the environment', async () => {
    writeFileSync(join(dir, 'pw'), 'file secret \r\n');
    assert.equal(await readRepositoryPassword({ passwordFile: join(dir, 'pw') }, { environment: { HVBACKUP_PASSWORD: 'env' } }), 'file secret ');
  });

  it('reads HVBACKUP_PASSWORD, and HVBACKUP_NEW_PASSWORD for new passwords', async () => {
    const environment = { HVBACKUP_PASSWORD: 'old', HVBACKUP_NEW_PASSWORD: 'new' };
    assert.equal(await readRepositoryPassword({}, { environment, input: noTty }), 'old');
    assert.equal(await readNewPassword({}, undefined, { environment, input: noTty }), 'new');
  });

  it('repo init takes HVBACKUP_NEW_PASSWORD, else HVBACKUP_PASSWORD, or either password file', async () => {
    assert.equal(await readInitPassword({}, { environment: { HVBACKUP_PASSWORD: 'p' }, input: noTty }), 'p');
    assert.equal(await readInitPassword({}, { environment: { HVBACKUP_PASSWORD: 'p', HVBACKUP_NEW_PASSWORD: 'n' }, input: noTty }), 'n');
    writeFileSync(join(dir, 'pw'), 'f\n');
    assert.equal(await readInitPassword({ passwordFile: join(dir, 'pw') }, { environment: { HVBACKUP_PASSWORD: 'p' } }), 'f');
    await assert.rejects(readInitPassword({}, { environment: {}, input: noTty }), (e: unknown) => isHvError(e, 'ERR_AUTH') && /HVBACKUP_NEW_PASSWORD or HVBACKUP_PASSWORD/.test(e.message));
  });

  it('fails clearly with no source and no terminal, and on missing or empty files', async () => {
    await assert.rejects(readRepositoryPassword({}, { environment: {}, input: noTty }), (e: unknown) => isHvError(e, 'ERR_AUTH') && /HVBACKUP_PASSWORD, use --password-file/.test(e.message));
    await assert.rejects(readRepositoryPassword({ passwordFile: join(dir, 'none') }), (e: unknown) => isHvError(e, 'ERR_NOT_FOUND') && e.message.includes(join(dir, 'none')));
    writeFileSync(join(dir, 'empty'), '\n');
    await assert.rejects(readRepositoryPassword({ passwordFile: join(dir, 'empty') }), (e: unknown) => isHvError(e, 'ERR_INVALID_ARGUMENT') && /is empty/.test(e.message));
  });

  it('prompts on a terminal in raw mode without echoing, handling backspace', async () => {
    const tty = fakeTty(['s3', 'cx', '\u007f', 'ret', '\r']);
    const pw = await readRepositoryPassword({}, { environment: {}, input: tty.input, output: tty.output });
    assert.equal(pw, 's3cret');
    assert.equal(tty.printed(), 'Repository password: \n');
    assert.deepEqual(tty.input.rawModes, [true, false]);
  });

  it('asks a new password twice and refuses a mismatch; Ctrl+C cancels', async () => {
    const same = fakeTty(['abc\r', 'abc\r']);
    assert.equal(await readNewPassword({}, undefined, { environment: {}, input: same.input, output: same.output }), 'abc');
    const differ = fakeTty(['abc\r', 'abd\r']);
    await assert.rejects(readNewPassword({}, undefined, { environment: {}, input: differ.input, output: differ.output }), (e: unknown) => isHvError(e, 'ERR_INVALID_ARGUMENT') && /differ/.test(e.message));
    const cancel = fakeTty(['ab', '\u0003']);
    await assert.rejects(readRepositoryPassword({}, { environment: {}, input: cancel.input, output: cancel.output }), (e: unknown) => isHvError(e, 'ERR_CANCELLED'));
  });
});
