// Entry of a chunk-pool worker thread. A worker is a fresh module graph: without the
// compile cache each one strips the TypeScript of chunk-worker.ts and its imports again
// (~100 ms of CPU per worker, per run, measured with --cpu-prof on a tracked incremental).
// Plain JavaScript, so the cache is on before the first .ts module loads.
import module from 'node:module';

module.enableCompileCache?.();
await import('./chunk-worker.ts');
