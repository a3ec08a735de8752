// Facts about processes on this machine.

import { hostname } from 'node:os';

/** Whether a process with this id runs here (EPERM: it runs, as another user). */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * This host in a file name, letters and digits only: files named after a process (a lock's
 * temp file, a restore's staging folder) say which host's pid they carry, since a share can be
 * used from several hosts and only this host's pids can be checked.
 */
export function hostTag(): string {
  return hostname().replace(/[^A-Za-z0-9]/g, '').slice(0, 32) || 'host';
}
