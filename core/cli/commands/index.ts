// One module per command area; each adds its commands to the program.
import type { Command } from 'commander';
import { register as vhdx } from './vhdx.ts';
import { register as repo } from './repo.ts';
import { register as backup } from './backup.ts';
import { register as vm } from './vm.ts';
import { register as archive } from './archive.ts';
import { register as retention } from './retention.ts';
import { register as key } from './key.ts';
import { register as demo } from './demo.ts';

export const commandModules: ((program: Command) => void)[] = [vhdx, repo, backup, vm, archive, retention, key, demo];
