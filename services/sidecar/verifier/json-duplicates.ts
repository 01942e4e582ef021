/**
 * True when JSON text names some object member twice. `JSON.parse` silently keeps the last one, so
 * `{"sub":"alice","sub":"admin"}` would read differently here than in a parser that keeps the first.
 * Rather than a second parser, this counts the member names in the text (strings followed by `:`) and
 * compares with the members the parsed value has: any duplicate makes the text count larger. Only
 * call it on text that `JSON.parse` accepted and with the value it returned.
 */
export function hasDuplicateKeys(text: string, parsed: unknown): boolean {
  return countNamesInText(text) !== countMembers(parsed);
}

function countNamesInText(text: string): number {
  let names = 0;
  let open = text.indexOf('"');
  while (open !== -1) {
    let close = text.indexOf('"', open + 1);
    while (close !== -1 && isEscaped(text, close)) close = text.indexOf('"', close + 1);
    if (close === -1) return -1;
    let next = close + 1;
    let c = text.charCodeAt(next);
    while (c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d) c = text.charCodeAt(++next);
    if (c === 0x3a) names++;
    open = text.indexOf('"', next);
  }
  return names;
}

function isEscaped(text: string, quote: number): boolean {
  let backslashes = 0;
  for (let i = quote - 1; text.charCodeAt(i) === 0x5c; i--) backslashes++;
  return backslashes % 2 === 1;
}

function countMembers(value: unknown): number {
  if (typeof value !== "object" || value === null) return 0;
  let count = 0;
  if (Array.isArray(value)) {
    for (const item of value) count += countMembers(item);
    return count;
  }
  for (const key in value) {
    count += 1 + countMembers((value as Record<string, unknown>)[key]);
  }
  return count;
}
