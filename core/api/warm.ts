// Public API: start chunk workers ahead of an operation that will hash or open chunks. A worker
// spends ~100 ms of CPU loading its modules; the CLI asks for one here, before it loads the
// engine (~40 ms of imports) and opens the repository, so the two overlap on a 2-core host
// instead of following each other. Small on purpose: importing it must cost next to nothing.

import { ChunkPool } from '../repo/chunk-pool.ts';

/**
 * Start `n` chunk workers that know no repository yet; the next repository opened in this
 * process adopts them (ChunkPool.prestart takes every warm worker). Idle, they do not keep
 * the process alive.
 */
export function warmChunkWorkers(n = 1): void {
  ChunkPool.warmUp(n);
}
