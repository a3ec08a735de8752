// The frozen parent VHDX is read by our own VHDX library (as over SMB or a local path on the
// Hyper-V host); here Hyper-V's part is stubbed and qemu-img makes the VHDX.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { HyperVFrozenDisk } from '../../core/hosts/hyperv/hyperv-host.ts';
import { toVmDescription } from '../../core/hosts/hyperv/mapping.ts';
import type { RawVm } from '../../core/hosts/hyperv/mapping.ts';
import * as S from '../../core/hosts/hyperv/scripts.ts';
import { fx, hostWith, paramsOf } from './testing.ts';

const MiB = 1024 * 1024;

describe('HyperVHost: frozen disks through the VHDX library', () => {
  let dir: string;
  let vhdx: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'hvb-hyperv-frozen-'));
    vhdx = join(dir, 'web01-data.vhdx');
    execFileSync('qemu-img', ['create', '-q', '-f', 'vhdx', vhdx, '64M']);
    execFileSync('qemu-io', ['-f', 'vhdx', '-c', 'write -P 0xab 1M 192k', '-c', 'write -P 0x5c 60M 4k', vhdx], { stdio: 'ignore' });
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('FrozenDisk.open() reads the frozen VHDX read-only with the bytes qemu wrote', async () => {
    const disk = await new HyperVFrozenDisk('SCSI:0:1', vhdx, undefined, 1).open();
    try {
      assert.equal(disk.size, 64 * MiB);
      assert.equal(disk.readOnly, true);
      const buf = Buffer.alloc(256 * 1024);
      await disk.read(buf, MiB - 32 * 1024);
      assert.ok(buf.subarray(0, 32 * 1024).every((b) => b === 0), 'zeros before the write');
      assert.ok(buf.subarray(32 * 1024, 32 * 1024 + 192 * 1024).every((b) => b === 0xab), 'the written pattern');
      assert.ok(buf.subarray(32 * 1024 + 192 * 1024).every((b) => b === 0), 'zeros after');
      const tail = Buffer.alloc(4096);
      await disk.read(tail, 60 * MiB);
      assert.ok(tail.every((b) => b === 0x5c));
    } finally {
      await disk.close();
    }
  });

  it('when Get-VHD gave no size, RCT asks for the virtual size the VHDX header holds', async () => {
    const snapshotDisks = [{ HostResource: [vhdx], ControllerType: 1, ControllerNumber: 0, ControllerLocation: 1, Size: null, VhdFormat: '' }];
    const { host, session } = hostWith([
      [S.HOST_INFO, fx('host-info-2022')], [S.LIST_CHECKPOINTS, null],
      [S.CREATE_RECOVERY_SNAPSHOT, { ReturnValue: 0, JobId: '', SnapshotInstanceId: 'Microsoft:7A8B9C0D-1E2F-4A3B-8C4D-5E6F7A8B9C0D' }],
      [S.TAG_SNAPSHOT, fx('method-done')], [S.GET_SNAPSHOT_DISKS, snapshotDisks],
      [S.EXPORT_SNAPSHOT_CONFIG, fx('export-done')], [S.LIST_EXPORT, fx('list-export')],
      [S.GET_VIRTUAL_DISK_CHANGES, { ReturnValue: 0, JobId: '', ProcessedByteLength: 64 * MiB, ChangedByteOffsets: [MiB], ChangedByteLengths: [192 * 1024] }],
    ]);
    const cp = await host.createBackupCheckpoint(toVmDescription(fx<RawVm>('describe-vm-web01')), { consistency: 'crash' });
    const r = await host.getChangedRanges(cp, cp.disks[0]!, { diskKey: 'SCSI:0:1', referenceId: 'rctX:1:1' });
    assert.deepEqual(paramsOf(session, 7), { path: vhdx, limitId: 'rctX:1:1', byteOffset: 0, byteLength: 64 * MiB });
    assert.deepEqual(r, { available: true, method: 'rct', ranges: [{ offset: MiB, length: 192 * 1024 }] });
  });
});
