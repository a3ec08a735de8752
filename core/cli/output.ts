// What a CLI command prints as its result: indented JSON with --json, else text for people.

/** Writes `value` as indented JSON and a newline. */
export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

/** With --json (`json`) writes `value` as indented JSON, else the text `text` makes. */
export function print(value: unknown, json: boolean | undefined, text: () => string): void {
  if (json) printJson(value);
  else process.stdout.write(text());
}
