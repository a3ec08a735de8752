// The one storage interface under the repository (after restic's backend.Backend).
// Nothing above it knows where bytes live: a local folder or share now, S3-compatible
// object storage later. So the contract only uses what object stores have: objects
// written once (create-only, like If-None-Match: *), whole-object or ranged reads,
// listing by type (prefix), deletion. No rename, no append, no directory semantics.
// Every call takes a cancellation signal first.

/** Kinds of stored object. Each maps to one prefix (folder) in the store. */
export type FileType = 'config' | 'keys' | 'locks' | 'chunks' | 'packs' | 'manifests' | 'points' | 'index' | 'catalog' | 'repairs' | 'tables';

/** What save() stores: one buffer, or parts stored back to back as one object (a pack from its blobs, without a copy). */
export type SaveData = Buffer | readonly Buffer[];

export interface Handle {
  type: FileType;
  /** Object name within its type: a hex id, or a fixed name such as "config". */
  name: string;
}

export interface ObjectInfo {
  name: string;
  size: number;
}

export interface SaveOptions {
  /**
   * false (default): create-only; if the object exists, fail with ERR_ALREADY_EXISTS and
   * leave it untouched. true: replace atomically (readers see old or new, never a mix).
   */
  overwrite?: boolean;
  /**
   * true (default): the object survives a power failure once save() resolves. false: it need
   * only be visible to every reader of the repository (locks: after a power failure every holder
   * is gone anyway), so a backend may skip flushing it: an fsync waits behind every other
   * write the file system has queued, which on a busy Hyper-V host can take far longer than
   * the write.
   */
  durable?: boolean;
}

export interface LoadOptions {
  offset?: number;
  /** Bytes to read from offset; default to the end of the object. */
  length?: number;
  /**
   * A buffer the caller recycles: when it holds at least the bytes asked for, the backend may
   * read into its start and return that view (a backend may ignore it). The caller must be
   * done with the result before it lends the buffer again.
   */
  into?: Buffer;
}

export interface ObjectReader {
  readonly size: number;
  /**
   * Bytes [offset, offset + length) of the object. Restore asks for coalesced ranges of up to
   * 2 MiB covering many blobs (Repository.readChunks): one GET with a Range header each, several
   * in flight, on object storage. `into`: a buffer of `length` bytes the caller recycles, to
   * read into if the backend can (the result is then `into`); a backend may ignore it.
   */
  read(offset: number, length: number, into?: Buffer): Promise<Buffer>;
  close(): Promise<void>;
}

/**
 * An object written as a stream (an index table: hundreds of MiB, more than a job may hold in
 * memory; a multipart upload on object storage). Nothing is visible under its name until
 * commit() resolves; abort(), or a writer that never commits (a killed process), leaves no object.
 */
export interface ObjectWriter {
  /** Append `data`; the caller may reuse it once the promise settles. */
  write(data: Buffer): Promise<void>;
  /** Store what was written under the handle, create-only and durable, as save() does. */
  commit(): Promise<void>;
  /** Give up: nothing is stored. Safe after a failed write or commit. */
  abort(): Promise<void>;
}

export interface Backend {
  /** Where this backend stores data, for messages ("/srv/repo", "s3://bucket/prefix"). */
  readonly location: string;

  /**
   * Optional: `h` written as a stream (ObjectWriter). Wrappers that change what is written
   * (a dry run) leave it out, so callers must do without it: it is an optimisation, never the
   * only way to store what a repository needs.
   */
  openWriter?(signal: AbortSignal | undefined, h: Handle): Promise<ObjectWriter>;

  /**
   * Optional: the local file an existing object is, for callers that read it synchronously in
   * place (an index table, looked up inside a chunk lookup). Backends without it are copied to
   * a scratch file first.
   */
  localFile?(h: Handle): string;

  /**
   * Store `data` under `h`. The data is in memory (a Buffer or parts), so a retry can resend
   * it unchanged. The caller reuses that memory once the promise settles (pack buffers), so
   * an implementation copies what it keeps. Durable when the promise resolves (local: temp file, fsync, rename/link, fsync dir).
   */
  save(signal: AbortSignal | undefined, h: Handle, data: SaveData, opts?: SaveOptions): Promise<void>;

  /** Read an object or a byte range of it. A missing object rejects with isNotFound(err). */
  load(signal: AbortSignal | undefined, h: Handle, opts?: LoadOptions): Promise<Buffer>;

  /**
   * Optional: an open object for many ranged reads (a restore reads hundreds of blobs from
   * each pack; a file opened, stat'ed and closed per blob cost ~0.7 s of a 2 GiB restore).
   * Each read returns a Buffer of its own. The caller closes it. Backends without it are
   * read with load() and a range.
   */
  openReader?(signal: AbortSignal | undefined, h: Handle): Promise<ObjectReader>;

  stat(signal: AbortSignal | undefined, h: Handle): Promise<ObjectInfo>;

  /** Remove an object; removing a missing object is not an error. */
  remove(signal: AbortSignal | undefined, h: Handle): Promise<void>;

  /** Every object of one type, in no particular order. */
  list(signal: AbortSignal | undefined, type: FileType): AsyncIterable<ObjectInfo>;

  /**
   * The names list() would give, without sizes: for callers that need none (which restore
   * points exist, which index objects are new). A folder then costs one directory read instead
   * of a stat per object, which grows with every backup (and is a round trip each on a share).
   */
  listNames(signal: AbortSignal | undefined, type: FileType): AsyncIterable<string>;

  /** True when the error means "the object does not exist". */
  isNotFound(err: unknown): boolean;
  /** True when retrying cannot help (permission denied, invalid name, ...). */
  isPermanent(err: unknown): boolean;
  /**
   * True when a write failed because the store itself takes no writes through this connection
   * (a read-only mount), not because of this object: readers may then go on without a lock file.
   */
  isReadOnly(err: unknown): boolean;

  close(): Promise<void>;
}

export function handleString(h: Handle): string {
  return `<${h.type}/${h.name}>`;
}
