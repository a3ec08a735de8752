// Child process for the interrupted-export test: exports a repository to a pool, printing a
// line as each medium starts, and is killed by the parent at some moment.
import { exportArchive } from '../../core/api/archive.ts';

await exportArchive({ onLog: (e) => process.stdout.write(`${e.message}\n`) }, { repository: process.argv[2]!, pool: 'crash', mediaDir: process.argv[3]!, capacity: '2M' });
process.stdout.write('done\n');
