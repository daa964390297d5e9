/**
 * `npm run bench`: every scenario, each against its baseline in the same run,
 * written to BENCHMARKS.md. Figures depend on the machine and its load; they
 * are compared within one run, never asserted in tests.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { machine, rate, type Result } from './harness.js';
import { run as decide } from './decide.bench.js';
import { run as baselines } from './baselines.bench.js';
import { run as rebuild } from './rebuild.bench.js';
import { run as pool } from './pool.bench.js';
import { run as lifecycle } from './lifecycle.bench.js';

const MS = Number(process.env['IMGR_BENCH_MS'] ?? 5000);
const only = process.env['IMGR_BENCH_ONLY'];
const suites = { decide, baselines, rebuild, pool, lifecycle };
const results: Result[] = [];
for (const [name, suite] of Object.entries(suites)) if (only === undefined || only.split(',').includes(name)) results.push(...(await suite(MS)));
const fmt = (n: number): string => (n >= 1000 ? `${(n / 1000).toFixed(1)}k` : n.toFixed(0));
const rows = results.map((r) => `| ${r.scenario} | ${r.variant} | ${r.figure ?? `${fmt(rate(r))}/s`} | ${r.figure === undefined ? `${(1e6 / rate(r)).toFixed(0)} µs` : ''} | ${r.target ?? ''} |`);
const text = `# Benchmarks

Measured by \`npm run bench\` (${MS / 1000} s per variant) on ${machine()}, ${new Date().toISOString().slice(0, 10)}.
Each scenario runs against its baseline in the same run; client and server share the machine.

| scenario | variant | figure | per operation | target |
|---|---|---|---|---|
${rows.join('\n')}
`;
// Earlier runs are kept below the current one, as written by hand when a platform changes.
const file = new URL('../BENCHMARKS.md', import.meta.url);
const EARLIER = '\n## Earlier runs\n';
let earlier = '';
try {
  const old = readFileSync(file, 'utf8');
  const at = old.indexOf(EARLIER);
  if (at >= 0) earlier = old.slice(at);
} catch {
  // first run
}
if (only === undefined) writeFileSync(file, text + earlier);
process.stdout.write(text);
