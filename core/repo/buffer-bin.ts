// Buffers kept for reuse instead of freed, up to a number of bytes and of buffers. Memory
// used before costs nothing on its next use; a new buffer costs a page fault per 4 KiB on first
// touch (11–15 µs each on the bench machine) and an unmap when freed. Pure bookkeeping: what
// the kept things are, and how one that does not fit is freed, stays with the caller. Used by
// the pack writer (pack buffers), the chunk pool (seal arenas, released chunks and ranges),
// its workers (buffers to decompress into) and the backup's disk reads.

export class BufferBin<T extends { readonly byteLength: number }> {
  readonly maxBytes: number;
  readonly maxItems: number;
  readonly #items: T[] = [];
  #bytes = 0;

  constructor(limits: { maxBytes?: number; maxItems?: number }) {
    this.maxBytes = limits.maxBytes ?? Infinity;
    this.maxItems = limits.maxItems ?? Infinity;
  }

  /** Bytes kept now. */
  get bytes(): number {
    return this.#bytes;
  }

  /** A kept buffer of at least `min` and at most `max` bytes, taken out of the bin; undefined if none fits. */
  take(min: number, max = Infinity): T | undefined {
    const i = this.#items.findIndex((b) => b.byteLength >= min && b.byteLength <= max);
    if (i < 0) return undefined;
    const b = this.#items.splice(i, 1)[0]!;
    this.#bytes -= b.byteLength;
    return b;
  }

  /** Keep `b` if the bin has room for it (true); false leaves it to the caller, to free or drop. */
  give(b: T): boolean {
    if (this.#items.length >= this.maxItems || this.#bytes + b.byteLength > this.maxBytes) return false;
    this.#items.push(b);
    this.#bytes += b.byteLength;
    return true;
  }

  /** Take every kept buffer out (to free them, or let them go). */
  drain(): T[] {
    this.#bytes = 0;
    return this.#items.splice(0);
  }
}
