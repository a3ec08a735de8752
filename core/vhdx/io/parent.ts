// Parent locator keys (MS-VHDX 2.6.2.6): building them for a new child and resolving
// them to a file when a child is opened.
import { dirname, isAbsolute, relative, resolve, sep } from 'node:path';
import { HvError } from '../../errors.ts';
import { PARENT_LOCATOR_TYPE_VHDX } from '../format/constants.ts';
import { bracedGuid, normalizeGuid } from '../format/guid.ts';
import type { ParentLocator } from '../format/metadata.ts';
import type { VhdxInfo } from '../index.ts';

export type ParentInfo = NonNullable<VhdxInfo['parent']>;

export function parentInfoFromLocator(childPath: string, loc: ParentLocator): ParentInfo & { linkage2?: string } {
  if (loc.locatorType !== PARENT_LOCATOR_TYPE_VHDX) {
    throw new HvError('ERR_UNSUPPORTED', `${childPath}: parent locator type ${loc.locatorType} is not the VHDX type ${PARENT_LOCATOR_TYPE_VHDX}`, { target: childPath });
  }
  const get = (k: string) => loc.entries.find(([key]) => key === k)?.[1];
  const linkage = get('parent_linkage');
  if (!linkage || !normalizeGuid(linkage)) {
    throw new HvError('ERR_CORRUPT', `${childPath}: parent locator has no valid parent_linkage`, { target: childPath });
  }
  const info: ParentInfo & { linkage2?: string } = { linkage };
  const rel = get('relative_path'), abs = get('absolute_win32_path'), vol = get('volume_path'), l2 = get('parent_linkage2');
  if (rel) info.relativePath = rel;
  if (abs) info.absoluteWin32Path = abs;
  if (vol) info.volumePath = vol;
  if (l2) info.linkage2 = l2;
  return info;
}

const WIN32_PREFIX = '\\\\?\\';

/**
 * Candidate parent files in the spec's order: relative_path, volume_path,
 * absolute_win32_path (the volume path only means something on Windows).
 */
export function parentCandidates(childPath: string, p: ParentInfo): string[] {
  const out: string[] = [];
  const win = process.platform === 'win32';
  if (p.relativePath) out.push(resolve(dirname(childPath), ...p.relativePath.split('\\').filter((s) => s !== '.' && s !== '')));
  if (win && p.volumePath) out.push(p.volumePath);
  if (p.absoluteWin32Path) {
    const a = p.absoluteWin32Path;
    if (win) out.push(a);
    else {
      // We store POSIX paths as Wine does, drive Z: mapping to "/" (see absoluteWin32Path).
      const m = /^\\\\\?\\[Zz]:(\\.*)$/.exec(a);
      if (m) out.push(m[1].split('\\').join('/'));
    }
  }
  return [...new Set(out)];
}

/**
 * The locator value Hyper-V would write is "\\?\D:\VMs\disk.vhdx". On Linux there is
 * no drive letter, so the absolute POSIX path is stored under Z: (Wine's mapping of
 * "/"), e.g. "\\?\Z:\srv\vms\disk.vhdx", which maps back losslessly.
 */
export function absoluteWin32Path(path: string): string {
  const abs = resolve(path);
  if (process.platform === 'win32') return abs.startsWith(WIN32_PREFIX) ? abs : WIN32_PREFIX + abs;
  return `${WIN32_PREFIX}Z:${abs.split('/').join('\\')}`;
}

export function relativeParentPath(childPath: string, parentPath: string): string {
  const rel = relative(dirname(resolve(childPath)), resolve(parentPath));
  return isAbsolute(rel) ? rel : rel.split(sep).join('\\');
}

export function buildParentLocator(childPath: string, parentPath: string, parentDataWriteGuid: string): ParentLocator {
  return {
    locatorType: PARENT_LOCATOR_TYPE_VHDX,
    entries: [
      ['parent_linkage', bracedGuid(parentDataWriteGuid)],
      ['relative_path', relativeParentPath(childPath, parentPath)],
      ['absolute_win32_path', absoluteWin32Path(parentPath)],
    ],
  };
}

export function linkageMatches(p: ParentInfo & { linkage2?: string }, parentDataWriteGuid: string): boolean {
  const want = normalizeGuid(parentDataWriteGuid);
  return [p.linkage, p.linkage2].some((l) => l !== undefined && normalizeGuid(l) === want);
}

