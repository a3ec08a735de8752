#!/usr/bin/env node
// Print the full path of the PowerShell the project uses (system pwsh, Windows PowerShell
// 5.1 on Windows, else the copy `npm run setup` installed under tools/pwsh), or nothing.
// Plain ESM JavaScript: it may run on an old system Node.
import { findPwsh } from './pwsh-locate.mjs';

const found = findPwsh();
if (found) process.stdout.write(`${found}\n`);
