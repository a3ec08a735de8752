// Host selection: the local host (VM folders and disk files, any OS) or Hyper-V
// (Windows). The Hyper-V driver loads lazily so non-Windows runs never import it.
import type { Host } from './host.ts';
import { LocalHost } from './local/host.ts';
import type { LocalHostOptions } from './local/host.ts';

export type HostKind = 'local' | 'hyperv';

export interface GetHostOptions extends LocalHostOptions {
  /** Options for the Hyper-V driver (see core/hosts/hyperv). */
  hyperv?: Record<string, unknown>;
}

export async function getHost(kind: HostKind, opts: GetHostOptions = {}): Promise<Host> {
  if (kind === 'local') return new LocalHost(opts);
  const mod = (await import('./hyperv/index.ts')) as { createHyperVHost: (o?: Record<string, unknown>) => Host };
  // The engine's log sink reaches the driver too (VSS fallback, leftover checkpoints, ...).
  return mod.createHyperVHost({ ...(opts.onLog ? { onLog: opts.onLog } : {}), ...(opts.hyperv ?? {}) });
}

export { LocalHost } from './local/host.ts';
