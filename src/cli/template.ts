import { readFileSync } from 'node:fs';
import { CliError, EXIT } from './output.js';

/**
 * OpenNebula's plain template syntax: `KEY = VALUE` or `KEY = "VALUE"` lines,
 * `#` comments. Used for `--template FILE` and `KEY=VALUE` arguments.
 */
export function parseTemplate(text: string, where: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [n, raw] of text.split('\n').entries()) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)$/.exec(line);
    if (!m?.[1]) throw new CliError(`${where}:${n + 1}: expected KEY = VALUE, found "${line}"`, EXIT.usage);
    out[m[1].toUpperCase()] = (m[2] ?? '').replace(/^"(.*)"$/, '$1');
  }
  return out;
}

export function templateFile(path: string): Record<string, string> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new CliError(`cannot read template ${path}: ${e instanceof Error ? e.message : String(e)}`, EXIT.usage);
  }
  return parseTemplate(text, path);
}
