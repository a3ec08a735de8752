// Child process for the GC kill test: runs GC on a repository whose chunk removals are
// slowed down (so a kill lands mid-way), after printing "ready".
import { LocalBackend } from '../../core/repo/backend-local.ts';
import { Repository } from '../../core/repo/repository.ts';
import { collectGarbageIn } from '../../core/retention/gc.ts';

const backend = new LocalBackend(process.argv[2]!);
const slow = new Proxy(backend, {
  get(target, prop, receiver) {
    if (prop === 'remove') {
      return async (...args: Parameters<LocalBackend['remove']>) => {
        await new Promise((r) => setTimeout(r, 3));
        return target.remove(...args);
      };
    }
    const v = Reflect.get(target, prop, receiver);
    return typeof v === 'function' ? v.bind(target) : v;
  },
});
const repo = await Repository.open(slow, { threads: 0 });
process.stdout.write('ready\n');
const r = await collectGarbageIn({}, repo);
await repo.close();
process.stdout.write(`done ${r.chunksRemoved}\n`);
