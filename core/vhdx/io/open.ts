// Opening a VHDX as a Disk, resolving a differencing disk's parent chain.
import { existsSync } from 'node:fs';
import type { Disk } from '../../disk/disk.ts';
import { HvError, isHvError } from '../../errors.ts';
import { linkageMatches, parentCandidates, parentInfoFromLocator, type ParentInfo } from './parent.ts';
import { VhdxDisk } from './vhdx-disk.ts';
import { VhdxFile, type VhdxFileOpenOptions } from './vhdx-file.ts';

export interface VhdxOpenOptions extends VhdxFileOpenOptions {
  /** Open a child without its parent: reads of sectors it does not hold return zeros. */
  withoutParent?: boolean;
}

export async function openVhdxDisk(path: string, opts: VhdxOpenOptions = {}): Promise<VhdxDisk> {
  const file = await VhdxFile.open(path, opts);
  let parent: Disk | undefined;
  try {
    let info: ParentInfo | undefined;
    const loc = file.metadata.parentLocator;
    if (file.metadata.fileParameters.hasParent && loc) {
      info = parentInfoFromLocator(path, loc);
      if (!opts.withoutParent) {
        const p = await openParent(path, info, opts);
        parent = p;
        info.resolvedPath = p.path;
      }
    }
    return new VhdxDisk(file, parent, info);
  } catch (err) {
    await parent?.close().catch(() => {});
    await file.close().catch(() => {});
    throw err;
  }
}

/** Find and open the parent read-only and check that it is the one the child was made from. */
export async function openParent(childPath: string, info: ParentInfo & { linkage2?: string }, opts: VhdxOpenOptions = {}): Promise<VhdxDisk> {
  const tried = parentCandidates(childPath, info);
  const found = tried.find((p) => existsSync(p));
  if (!found) {
    throw new HvError('ERR_PARENT', `parent of ${childPath} not found (tried: ${tried.join(', ') || 'no usable locator path'})`, { target: childPath, data: { tried } });
  }
  let parent: VhdxDisk;
  try {
    parent = await openVhdxDisk(found, { replayLogInMemory: opts.replayLogInMemory });
  } catch (err) {
    if (isHvError(err)) throw new HvError(err.code === 'ERR_LOG_REPLAY_NEEDED' ? err.code : 'ERR_PARENT', `parent ${found} of ${childPath}: ${err.message}`, { target: childPath, cause: err });
    throw err;
  }
  const guid = parent.file.header.dataWriteGuid;
  if (!linkageMatches(info, guid)) {
    await parent.close();
    throw new HvError('ERR_PARENT',
      `${childPath} does not match its parent ${found}: the child expects parent_linkage ${info.linkage} but the parent's DataWriteGuid is {${guid}} (the parent was modified after the child was created)`,
      { target: childPath, data: { parent: found, expected: info.linkage, actual: `{${guid}}` } });
  }
  return parent;
}
