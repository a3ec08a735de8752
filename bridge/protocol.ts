// The bridge protocol: JSON lines over stdio between the HVBackup PowerShell module and a
// long-lived engine process. Pure encode/decode here; the server does the I/O.
// Documented in docs/bridge-protocol.md; bump PROTOCOL_VERSION on any incompatible change.

import type { LogEvent, ProgressEvent } from '../core/progress.ts';

export const PROTOCOL_VERSION = 1;

export interface HelloMessage { type: 'hello'; protocol: number; engine: string; node: string; pid: number; methods: string[] }
export interface RequestMessage { id: string; method: string; params: Record<string, unknown> }
export interface CancelMessage { type: 'cancel'; id: string }
export interface ProgressMessage extends ProgressEvent { id: string; type: 'progress' }
export interface LogMessage extends LogEvent { id: string; type: 'log' }
export interface ResultMessage { id: string; type: 'result'; result: unknown }
export interface WireError { code: string; message: string; target?: string; data?: Record<string, unknown> }
export interface ErrorMessage { id: string | null; type: 'error'; error: WireError }

export type ClientMessage = RequestMessage | CancelMessage;
export type ServerMessage = HelloMessage | ProgressMessage | LogMessage | ResultMessage | ErrorMessage;

/** A line the server could not use: carries the id when one could be read, so the client can match it. */
export class ProtocolError extends Error {
  readonly id: string | null;
  constructor(message: string, id: string | null) {
    super(message);
    this.name = 'ProtocolError';
    this.id = id;
  }
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function readId(v: Record<string, unknown>): string | null {
  if (typeof v.id === 'string' && v.id.length > 0) return v.id;
  if (typeof v.id === 'number' && Number.isFinite(v.id)) return String(v.id);
  return null;
}

/** Parse one line from the client. Throws ProtocolError naming what is wrong with it. */
export function decodeClientMessage(line: string): ClientMessage {
  let v: unknown;
  try {
    v = JSON.parse(line);
  } catch (err) {
    throw new ProtocolError(`request line is not JSON (${(err as Error).message}): ${line.slice(0, 80)}`, null);
  }
  if (!isObject(v)) throw new ProtocolError(`request line is not a JSON object: ${line.slice(0, 80)}`, null);
  const id = readId(v);
  if (v.type === 'cancel') {
    if (id === null) throw new ProtocolError('cancel message without an id', null);
    return { type: 'cancel', id };
  }
  if (id === null) throw new ProtocolError('request without an id (a string or number)', null);
  if (typeof v.method !== 'string' || v.method === '') throw new ProtocolError(`request ${id} has no method name`, id);
  if (v.params !== undefined && v.params !== null && !isObject(v.params)) throw new ProtocolError(`request ${id} (${v.method}): params must be an object`, id);
  return { id, method: v.method, params: isObject(v.params) ? v.params : {} };
}

export function encodeServerMessage(msg: ServerMessage): string {
  return `${JSON.stringify(msg)}\n`;
}

/** Split a growing text buffer into complete lines; returns [lines, rest]. */
export function splitLines(buffer: string): [string[], string] {
  const parts = buffer.split('\n');
  const rest = parts.pop() ?? '';
  return [parts.map((l) => l.replace(/\r$/, '')).filter((l) => l.trim() !== ''), rest];
}
