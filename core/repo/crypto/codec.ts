// How stored objects are made from plain bytes and back: chunk ids, and sealing
// (authenticated encryption) of every object. CONTRACT between core/repo (which calls
// it, also inside worker threads) and core/repo/crypto (which implements it).
// Compression happens before seal and after open, in core/repo.

import type { FileType } from '../backend.ts';

export interface ObjectCodec {
  readonly encrypted: boolean;
  /** Chunk id from the plain (uncompressed) data: SHA-256 hex, or keyed HMAC-SHA-256 hex when encrypted. */
  chunkId(plain: Buffer): string;
  /**
   * Bytes to store for an object of `type` (already compressed where applicable). Identity when unencrypted.
   * `name` (optional, additive): the object's name when known before sealing — always pass the id for
   * chunks. When given, the name is authenticated too, so `open` must then be called with the same name:
   * an object copied or renamed to another name in the store fails to open instead of being read as that one.
   */
  seal(type: FileType, data: Buffer, name?: string): Buffer;
  /**
   * seal() of `parts` (their bytes back to back) written into `out` at `at`, which has room for
   * their length plus SEAL_OVERHEAD; returns the bytes written. Same stored bytes as seal().
   */
  sealInto(type: FileType, parts: readonly Buffer[], name: string | undefined, out: Buffer, at: number): number;
  /** Inverse of seal; throws HvError ERR_CORRUPT naming `<type/name>` on any authentication failure. */
  open(type: FileType, name: string, stored: Buffer): Buffer;
  /** Serializable form, so a worker thread can rebuild the same codec (keys as base64). */
  toTransferable(): { encrypted: boolean; keys?: Record<string, string> };
}
