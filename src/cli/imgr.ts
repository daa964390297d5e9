/**
 * imgr: the operator's command line, in the spirit of oneimage and
 * onedatastore. Every command prints a human answer, or JSON with --json;
 * exit codes tell refusals (2), timeouts (3) and connection errors (4) apart.
 */
import { parseArgs } from 'node:util';
import type { NatsConnection } from '@nats-io/transport-node';
import { ImgrClient } from '../client/index.js';
import { ImgrError } from '../messages/failures.js';
import { connectAs } from '../platform/nats.js';
import { COMMANDS, parse, type Command } from './commands.js';
import { CliError, EXIT, EXIT_FOR_FAILURE } from './output.js';
import { completion } from './completion.js';
import { serve } from '../main.js';

const GLOBAL = {
  nats: { type: 'string' },
  principal: { type: 'string' },
  user: { type: 'string' },
  uid: { type: 'string' },
  gid: { type: 'string' },
  json: { type: 'boolean' },
  wait: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

function help(cmd?: Command): string {
  if (cmd) return `usage: imgr ${cmd.usage} [--json] [--wait]\n\n${cmd.summary}\n\nexample:\n  ${cmd.example}\n`;
  const width = Math.max(...COMMANDS.map((c) => c.name.length));
  return [
    'usage: imgr [--nats URL] [--principal NAME] [--user NAME --uid N --gid N] [--json] [--wait] COMMAND ...',
    '',
    'commands:',
    ...COMMANDS.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`),
    `  ${'completion bash'.padEnd(width)}  print a bash completion script`,
    `  ${'serve --role R'.padEnd(width)}  run one role in this process: manager, drivers, projections, api`,
    '',
    'global options:',
    '  --nats URL   the NATS system (default $NATS_URL or nats://127.0.0.1:4222)',
    '  --principal NAME  authenticate as this principal (default $IMGR_PRINCIPAL or oneadmin)',
    '  --user NAME  act as this user (default oneadmin, uid 0, gid 0; another needs a delegating principal)',
    '  --json       print JSON for scripts',
    '  --wait       follow the operation to its end',
    '',
    'exit codes: 0 done, 1 usage, 2 refused, 3 timeout, 4 cannot reach imgr, 5 the operation failed',
    '',
    'examples:',
    '  imgr image create --datastore 1 --name ubuntu --path /var/tmp/ubuntu.qcow2 --wait',
    '  imgr image list --state READY',
    '  imgr history image 42',
    '',
  ].join('\n');
}

/** The --nats value among the global options, for `serve`. */
function natsOption(globals: readonly string[]): string | undefined {
  const i = globals.findIndex((a) => a === '--nats' || a.startsWith('--nats='));
  if (i < 0) return undefined;
  const a = globals[i] ?? '';
  return a.includes('=') ? a.slice(a.indexOf('=') + 1) : globals[i + 1];
}

/** Splits argv into global options, the command (one or two words) and its own arguments. */
function locate(argv: string[]): { cmd: Command | undefined; rest: string[]; words: string[] } {
  const words = argv.filter((a) => !a.startsWith('-')).slice(0, 2);
  const cmd = COMMANDS.find((c) => c.name === words.join(' ')) ?? COMMANDS.find((c) => c.name === words[0]);
  if (!cmd) return { cmd, rest: argv, words };
  const used = cmd.name.split(' ');
  const rest = [...argv];
  for (const w of used) rest.splice(rest.indexOf(w), 1);
  return { cmd, rest, words };
}

export async function main(argv: string[], out: (s: string) => void, err: (s: string) => void, isTty: boolean): Promise<number> {
  // Global options may appear anywhere; everything else is the command and its own arguments.
  const globalNames = new Set(Object.keys(GLOBAL));
  const globals: string[] = [];
  const remaining: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] ?? '';
    const name = a.replace(/^--?/, '').split('=')[0] ?? '';
    if (a.startsWith('-') && (globalNames.has(name) || a === '-h')) {
      globals.push(a);
      const spec = GLOBAL[name as keyof typeof GLOBAL] as { type: string } | undefined;
      if (spec?.type === 'string' && !a.includes('=')) globals.push(argv[++i] ?? '');
    } else remaining.push(a);
  }
  if (remaining[0] === 'completion') {
    out(completion(COMMANDS.map((c) => c.name)));
    return EXIT.ok;
  }
  if (remaining[0] === 'serve') {
    // Runs a role in this process until it is stopped (it never returns on success).
    const r = parseArgs({ args: remaining.slice(1), options: { role: { type: 'string' } }, strict: true });
    const role = r.values.role ?? 'manager';
    if (natsOption(globals) !== undefined) process.env['NATS_URL'] = natsOption(globals);
    await serve(role);
    return new Promise<number>(() => undefined);
  }
  const { cmd, rest: own, words } = locate(remaining);
  const g = parseArgs({ args: globals, options: GLOBAL, strict: true }).values;
  if (g.help === true || words.length === 0) {
    out(help(cmd));
    return words.length === 0 && g.help !== true ? EXIT.usage : EXIT.ok;
  }
  if (!cmd) {
    err(`imgr: unknown command "${words.join(' ')}"\n\n${help()}`);
    return EXIT.usage;
  }
  const json = g.json === true;
  let client: ImgrClient | undefined;
  let reader: NatsConnection | undefined;
  let admin: NatsConnection | undefined;
  try {
    const { args, values } = parse(cmd, own);
    const servers = g.nats ?? process.env['NATS_URL'] ?? 'nats://127.0.0.1:4222';
    try {
      client = await ImgrClient.connect({
        servers,
        principal: g.principal ?? process.env['IMGR_PRINCIPAL'] ?? 'oneadmin',
        actor: { uid: Number(g.uid ?? 0), gid: Number(g.gid ?? 0), name: g.user ?? 'oneadmin', service: 'cli' },
      });
    } catch (e) {
      throw new CliError(`cannot reach imgr at ${servers}: ${e instanceof Error ? e.message : String(e)}`, EXIT.connection, 'start it with `npm start`, or name its NATS system with --nats or NATS_URL');
    }
    const spinner = { shown: false };
    const progress = (s: string): void => {
      if (!isTty || json) return;
      spinner.shown = true;
      err(`\r\x1b[2K${'⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏'[Math.floor(Date.now() / 100) % 10] ?? '-'} ${s}`);
    };
    const reader_ = async (): Promise<NatsConnection> => (reader ??= await connectAs('auditor', servers, 'imgr-cli-audit'));
    const admin_ = async (): Promise<NatsConnection> => (admin ??= await connectAs('manager', servers, 'imgr-cli-admin'));
    const r = await cmd.run(client, args, values, { wait: g.wait === true, progress, reader: reader_, admin: admin_ });
    if (spinner.shown) err('\r\x1b[2K');
    out(r.raw ?? (json ? `${JSON.stringify(r.json, null, 2)}\n` : `${r.human}\n`));
    return EXIT.ok;
  } catch (e) {
    if (e instanceof CliError) {
      if (json) out(`${JSON.stringify({ error: e.message, exitCode: e.exitCode })}\n`);
      else err(`imgr: ${e.message}\n${e.hint ? `hint: ${e.hint}\n` : ''}`);
      return e.exitCode;
    }
    if (e instanceof ImgrError) {
      if (json) out(`${JSON.stringify({ error: e.message, code: e.code, exitCode: EXIT_FOR_FAILURE[e.code] })}\n`);
      else err(`imgr: ${e.message} (${e.code})\n`);
      return EXIT_FOR_FAILURE[e.code];
    }
    throw e;
  } finally {
    await client?.close();
    await reader?.close();
    await admin?.close();
  }
}

/** Exits once stdout and stderr have flushed, so a pipe (`imgr export | gzip`) gets everything. */
function exitAfterFlush(code: number): void {
  process.stdout.write('', () => process.stderr.write('', () => process.exit(code)));
}

if (import.meta.url === `file://${process.argv[1] ?? ''}`) {
  main(process.argv.slice(2), (s) => process.stdout.write(s), (s) => process.stderr.write(s), process.stderr.isTTY).then(exitAfterFlush, (e: unknown) => {
    process.stderr.write(`imgr: ${e instanceof Error ? e.message : String(e)}\n`);
    exitAfterFlush(EXIT.failed);
  });
}
