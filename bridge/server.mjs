#!/usr/bin/env node
// Entry of the engine process behind the PowerShell module (bridge/server.ts; the module starts
// this file). Plain JavaScript, so Node's compile cache is on before the first .ts module loads:
// without it every PowerShell session's engine strips the TypeScript of the whole engine again
// (~150 ms of CPU on its first call, measured with --cpu-prof), as bin/hvbackup.js does for the CLI.
//   node bridge/server.mjs [--test-methods <module.ts>]
import module from 'node:module';

module.enableCompileCache?.();
const { startServer } = await import('./server.ts');
startServer(process.argv.slice(2));
