import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { areasFor, commandAreas } from '../../core/cli/commands/index.ts';
import { buildProgram } from '../../core/cli/main.ts';

const root = join(import.meta.dirname, '..', '..');

describe('CLI command areas (loaded on demand)', function () {
  this.timeout(60_000);

  it('each area registers exactly the top-level commands its table entry names', async () => {
    for (const area of commandAreas) {
      const { Command } = await import('commander');
      const program = new Command();
      (await area.load()).register(program);
      assert.deepEqual(program.commands.map((c) => c.name()).sort(), [...area.commands].sort(), `area of ${area.commands.join(', ')}`);
    }
  });

  it('a command line loads only the area of its command; help, --version and unknown commands load all', async () => {
    assert.deepEqual(areasFor(['backup', 'vms/web01', '--repo', 'r', '--json']).map((a) => a.commands), [['backup', 'points', 'restore', 'dump', 'verify']]);
    assert.deepEqual(areasFor(['gc', '--repo', 'r']).map((a) => a.commands), [['retention', 'gc']]);
    for (const argv of [[], ['--help'], ['--version'], ['help', 'backup'], ['bakcup']]) assert.equal(areasFor(argv), commandAreas, argv.join(' '));
    const all = (await buildProgram()).commands.map((c) => c.name());
    assert.deepEqual(all, commandAreas.flatMap((a) => a.commands));
    assert.deepEqual((await buildProgram(['points', '--repo', 'r'])).commands.map((c) => c.name()), ['backup', 'points', 'restore', 'dump', 'verify']);
  });

  it('hvbackup --help lists every command, and a mistyped command still gets a suggestion', () => {
    const main = join(root, 'core', 'cli', 'main.ts');
    const help = spawnSync(process.execPath, [main, '--help'], { encoding: 'utf8' });
    assert.equal(help.status, 0, help.stderr);
    for (const name of commandAreas.flatMap((a) => a.commands)) assert.match(help.stdout, new RegExp(`^\\s+${name}\\b`, 'm'), name);
    const typo = spawnSync(process.execPath, [main, 'bakcup', 'x'], { encoding: 'utf8' });
    assert.equal(typo.status, 2);
    assert.match(typo.stderr, /unknown command 'bakcup'/);
    assert.match(typo.stderr, /Did you mean backup\?/);
  });
});
