// Shared by the memory benches: bytes the JS heap and its external buffers hold after two full
// collections. The process must run with --expose-gc.

const gc = (globalThis as { gc?: () => void }).gc;

export function usedAfterGc(): number {
  if (!gc) throw new Error('run with --expose-gc');
  gc();
  gc();
  const m = process.memoryUsage();
  return m.heapUsed + m.external;
}

/** A full collection, for benches that time one. */
export function collect(): void {
  if (!gc) throw new Error('run with --expose-gc');
  gc();
}
