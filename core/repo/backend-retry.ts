// A Backend wrapper that retries what can succeed on a second try (a share that dropped
// for a moment, a throttled object store) with exponential backoff, and nothing else
// (after restic's retry backend). Permanent errors and cancellation pass straight through.

import { HvError, isHvError, throwIfAborted } from '../errors.ts';
import { joinData } from './backend-util.ts';
import type { Backend, FileType, Handle, LoadOptions, ObjectInfo, SaveData, SaveOptions } from './backend.ts';

export interface RetryOptions {
  /** Attempts in all, including the first. */
  attempts?: number;
  /** Delay before the first retry; doubles each time. */
  initialDelayMs?: number;
  /** Told about each retry, e.g. to log a warning. */
  onRetry?: (what: string, attempt: number, err: unknown) => void;
}

export class RetryBackend implements Backend {
  readonly location: string;
  readonly #inner: Backend;
  readonly #attempts: number;
  readonly #delay: number;
  readonly #onRetry: RetryOptions['onRetry'];

  constructor(inner: Backend, opts: RetryOptions = {}) {
    this.#inner = inner;
    this.location = inner.location;
    this.#attempts = opts.attempts ?? 5;
    this.#delay = opts.initialDelayMs ?? 200;
    this.#onRetry = opts.onRetry;
  }

  async #retry<T>(signal: AbortSignal | undefined, what: string, fn: (attempt: number) => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      throwIfAborted(signal);
      try {
        return await fn(attempt);
      } catch (err) {
        if (attempt >= this.#attempts || this.#inner.isPermanent(err) || isHvError(err, 'ERR_CANCELLED')) throw err;
        this.#onRetry?.(what, attempt, err);
        await sleep(this.#delay * 2 ** (attempt - 1), signal);
      }
    }
  }

  save(signal: AbortSignal | undefined, h: Handle, data: SaveData, opts?: SaveOptions): Promise<void> {
    return this.#retry(signal, `save <${h.type}/${h.name}>`, async (attempt) => {
      try {
        await this.#inner.save(signal, h, data, opts);
      } catch (err) {
        // An earlier attempt may have stored the object and then lost the reply: the
        // same bytes under the name mean that attempt succeeded.
        if (attempt > 1 && isHvError(err, 'ERR_ALREADY_EXISTS') && (await this.#sameContent(signal, h, data))) return;
        throw err;
      }
    });
  }

  async #sameContent(signal: AbortSignal | undefined, h: Handle, data: SaveData): Promise<boolean> {
    return this.#inner.load(signal, h).then((stored) => stored.equals(joinData(data)), () => false);
  }

  load(signal: AbortSignal | undefined, h: Handle, opts?: LoadOptions): Promise<Buffer> {
    return this.#retry(signal, `load <${h.type}/${h.name}>`, () => this.#inner.load(signal, h, opts));
  }

  stat(signal: AbortSignal | undefined, h: Handle): Promise<ObjectInfo> {
    return this.#retry(signal, `stat <${h.type}/${h.name}>`, () => this.#inner.stat(signal, h));
  }

  remove(signal: AbortSignal | undefined, h: Handle): Promise<void> {
    return this.#retry(signal, `remove <${h.type}/${h.name}>`, () => this.#inner.remove(signal, h));
  }

  list(signal: AbortSignal | undefined, type: FileType): AsyncIterable<ObjectInfo> {
    return this.#listing(signal, type, () => this.#inner.list(signal, type));
  }

  listNames(signal: AbortSignal | undefined, type: FileType): AsyncIterable<string> {
    return this.#listing(signal, type, () => this.#inner.listNames(signal, type));
  }

  /** A listing is retried only if it fails before yielding anything (a restart would repeat names). */
  async *#listing<T>(signal: AbortSignal | undefined, type: FileType, list: () => AsyncIterable<T>): AsyncIterable<T> {
    for (let attempt = 1; ; attempt++) {
      let yielded = false;
      try {
        for await (const o of list()) {
          yielded = true;
          yield o;
        }
        return;
      } catch (err) {
        if (yielded || attempt >= this.#attempts || this.#inner.isPermanent(err) || isHvError(err, 'ERR_CANCELLED')) throw err;
        this.#onRetry?.(`list ${type}`, attempt, err);
        await sleep(this.#delay * 2 ** (attempt - 1), signal);
      }
    }
  }

  isNotFound(err: unknown): boolean {
    return this.#inner.isNotFound(err);
  }

  isPermanent(err: unknown): boolean {
    return this.#inner.isPermanent(err);
  }

  isReadOnly(err: unknown): boolean {
    return this.#inner.isReadOnly(err);
  }

  close(): Promise<void> {
    return this.#inner.close();
  }
}

function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    const onAbort = () => {
      clearTimeout(timer);
      reject(new HvError('ERR_CANCELLED', 'operation cancelled'));
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
