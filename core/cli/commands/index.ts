// One module per command area; each adds its commands to the program. The areas load on
// demand: a run imports only the area of the command it runs (a scheduled backup pays the
// start-up on every run, and the archive area alone pulls in tar-stream and chokidar);
// help, --version and unknown commands load them all, so help lists every command.
import type { Command } from 'commander';

export interface CommandArea {
  /** Top-level command names the area registers. */
  commands: readonly string[];
  load(): Promise<{ register(program: Command): void }>;
}

export const commandAreas: readonly CommandArea[] = [
  { commands: ['vhdx'], load: () => import('./vhdx.ts') },
  { commands: ['repo'], load: () => import('./repo.ts') },
  { commands: ['backup', 'points', 'restore', 'dump', 'verify'], load: () => import('./backup.ts') },
  { commands: ['vm'], load: () => import('./vm.ts') },
  { commands: ['archive', 'watch'], load: () => import('./archive.ts') },
  { commands: ['retention', 'gc'], load: () => import('./retention.ts') },
  { commands: ['key'], load: () => import('./key.ts') },
  { commands: ['demo'], load: () => import('./demo.ts') },
];

/** The areas a command line needs: the one owning its command, else all of them (in order). */
export function areasFor(argv: readonly string[]): readonly CommandArea[] {
  const name = argv.find((a) => !a.startsWith('-'));
  const area = name === undefined ? undefined : commandAreas.find((a) => a.commands.includes(name));
  return area ? [area] : commandAreas;
}
