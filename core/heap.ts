// Keeps the main thread's V8 young generation at its start size, so a long job's memory does
// not grow with the data it handles. V8 doubles a thread's new space (up to tens of MiB: 64 on a
// large machine) while many objects survive its scavenges, and hardly gives it back. A backup's
// main thread keeps per-chunk ids and promises alive across reads and pack writes, and over a
// 16 GiB backup its heap grew from ~26 to ~83 MiB and the process peaked at 248–257 MiB (issue 3
// asks for ≤ 256 MiB whatever the disk size). Chunk workers get the same bound from their
// resourceLimits (chunk-pool.ts).
//
// The new space's maximum can only be set when the process starts (--max-semi-space-size), which
// neither `npm`'s bin shim nor a PowerShell host can be relied on to pass. Its growth factor is
// read each time V8 would grow it, so setting it to 1 here, before the job allocates, keeps the
// new space as it is. Measured on that 16 GiB backup (3 runs each): peak RSS 209–227 MiB, the
// backup no slower. (The flag is process-wide; V8 reads it only when it would grow a new space.)

import { setFlagsFromString } from 'node:v8';

let bounded = false;

/** Stop this process's V8 young generations from growing (the CLI and the bridge call it at start). */
export function boundYoungGeneration(): void {
  if (bounded) return;
  bounded = true;
  setFlagsFromString('--semi-space-growth-factor=1');
}
