// Public surface of core/repo for the other engine areas.
export type { Backend, FileType, Handle, ObjectInfo } from './backend.ts';
export { handleString } from './backend.ts';
export { LocalBackend } from './backend-local.ts';
export { MemoryBackend } from './backend-memory.ts';
export { DryRunBackend, type PlannedWrite } from './backend-dryrun.ts';
export { RetryBackend, type RetryOptions } from './backend-retry.ts';
export { Repository, DEFAULT_CHUNK_SIZE, PackReaders, type InitOptions, type OpenOptions } from './repository.ts';
export { openRepository, initRepository } from './local.ts';
export type { ChunkWriter, ChunkWriterStats, PutResult } from './chunk-writer.ts';
export type { RepositoryConfig } from './config.ts';
export { REPOSITORY_VERSION } from './config.ts';
export type { HeldLock, LockInfo } from './lock.ts';
export { isAllZero } from './object-format.ts';
export { decodeManifest, encodeManifest, manifestProblem, namedChunks, isRestorePointId } from './manifest.ts';
export { addPointChunks, diskWindows, pointChunks, type SliceWindow } from './manifest-chunks.ts';
export { plainCodec } from './crypto/index.ts';
