// Host selection: the local host (VM folders and disk files, any OS) or Hyper-V
// (Windows). The Hyper-V driver loads lazily so non-Windows runs never import it.
import { HvError } from '../errors.ts';
import type { Host } from './host.ts';
import { LocalHost } from './local/host.ts';
import type { LocalHostOptions } from './local/host.ts';

export type HostKind = 'local' | 'hyperv';

export interface GetHostOptions extends LocalHostOptions {
  /** Options for the Hyper-V driver (HyperVHostOptions in core/hosts/hyperv), e.g. allowUserCheckpoints. */
  hyperv?: Record<string, unknown>;
}

/**
 * How getHost builds the Hyper-V driver. One object so tests can replace the factory
 * (`sinon.stub(hostFactories, 'hyperv')`) and see the options the API passes to the driver.
 */
export const hostFactories = {
  async hyperv(opts: Record<string, unknown>): Promise<Host> {
    const mod = (await import('./hyperv/index.ts')) as { createHyperVHost: (o?: Record<string, unknown>) => Host };
    return mod.createHyperVHost(opts);
  },
};

export async function getHost(kind: HostKind, opts: GetHostOptions = {}): Promise<Host> {
  if (kind === 'local') return new LocalHost(opts);
  if (kind !== 'hyperv') throw new HvError('ERR_INVALID_ARGUMENT', `host must be "local" or "hyperv", got ${JSON.stringify(kind)}`);
  // The engine's log sink reaches the driver too (VSS fallback, leftover checkpoints, ...).
  return hostFactories.hyperv({ ...(opts.onLog ? { onLog: opts.onLog } : {}), ...(opts.hyperv ?? {}) });
}

export { LocalHost } from './local/host.ts';
