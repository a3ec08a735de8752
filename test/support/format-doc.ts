// Reading code snippets out of docs/repository-format.md, for the tests that run them.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

const DOC = join(import.meta.dirname, '..', '..', 'docs', 'repository-format.md');

/** The first fenced block of `lang` after `marker` in the format document. */
export function docBlock(marker: string, lang: string): string {
  const text = readFileSync(DOC, 'utf8');
  const at = text.indexOf(marker);
  assert.ok(at >= 0, `docs/repository-format.md lacks "${marker}"`);
  const m = new RegExp('```' + lang + '\\n([\\s\\S]*?)```').exec(text.slice(at));
  assert.ok(m, `no ${lang} block after "${marker}"`);
  return m[1]!;
}
