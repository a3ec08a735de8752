// Encryption at rest for repositories: the public surface core/repo codes against.
// Layout and key file format: docs/repository-format.md, "Encryption".

import { HvError } from '../../errors.ts';
import type { ObjectCodec } from './codec.ts';
import { EncryptedCodec } from './encrypted-codec.ts';
import { masterKeysFromTransferable } from './master-keys.ts';
import { plainCodec } from './plain-codec.ts';

export type { ObjectCodec } from './codec.ts';
export type { ScryptParams } from './key-file.ts';
export { plainCodec } from './plain-codec.ts';
export { SEAL_OVERHEAD } from './sealed-object.ts';
export {
  addKeyFile, checkConfigCrypto, checkKeyRemoval, clearUnlockMemo, createEncryptedRepositoryKeys, DEFAULT_SCRYPT, describeKeyFile, unlockRepository,
  type KeyOptions, type KeySummary, type NewRepositoryKeys, type UnlockedRepository,
} from './keys.ts';

/** Rebuild a codec inside a worker thread from `codec.toTransferable()`. */
export function codecFromTransferable(t: { encrypted: boolean; keys?: Record<string, string> }): ObjectCodec {
  if (!t || typeof t !== 'object') throw new HvError('ERR_INVALID_ARGUMENT', 'codecFromTransferable: expected the object toTransferable() returned');
  return t.encrypted ? new EncryptedCodec(masterKeysFromTransferable(t.keys)) : plainCodec();
}
