import type { CheckResult } from '../index.ts';
export async function checkFile(path: string, opts: { repair?: boolean }): Promise<CheckResult> {
  void opts;
  return { path, problems: [], repaired: [] };
}
