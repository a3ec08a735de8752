// Hyper-V host driver (Windows Server 2012 R2 .. 2025). The backup helper wires
// getHost('hyperv') to createHyperVHost().
import { HyperVHost } from './hyperv-host.ts';
import type { HyperVHostOptions } from './hyperv-host.ts';

export { HyperVHost } from './hyperv-host.ts';
export type { HyperVHostOptions } from './hyperv-host.ts';

export function createHyperVHost(opts: HyperVHostOptions = {}): HyperVHost {
  return new HyperVHost(opts);
}
