import { safeJson } from '../platform/json.js';
import { access, constants, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { jetstream, jetstreamManager, type JetStreamClient, type JsMsg } from '@nats-io/jetstream';
import { followDurable, nakQuietly, type Follower } from '../store/follow.js';
import { untilDone } from '../platform/retry.js';
import type { Dirent } from 'node:fs';
import { BOUNDS } from '../messages/bounds.js';
import type { NatsConnection, Subscription } from '@nats-io/transport-node';
import type { Logger } from '../platform/logger.js';
import { ImgrMetrics } from '../platform/metrics.js';
import type { Clock } from '../platform/clock.js';
import { DriverRequestSchema, subjects, type CommandInput, type DriverRequest } from '../messages/wire.js';
import { Publisher } from '../reactors/publish.js';
import { isReplyAction } from '../messages/driver.js';
import type { OpenNebulaConfig } from '../platform/settings.js';
import { DriverSources } from './driver-source.js';
import { DRIVERS_DURABLE, STREAMS } from '../store/provision.js';
import { actionDocument, actionEnvironment } from './document.js';
import { runScript } from './run.js';
import { inspectAfter, inspectBefore } from './inspection.js';
import { classifyStderr, replyFor, type LogLine } from './reply.js';
import { Semaphore } from './semaphore.js';
import { isSealed, unseal } from '../secrets/sealed.js';
import { isPublishedKey, loadOrCreateKey, type SecretsKey } from '../secrets/keyring.js';
import { prepareInput, statOfUrl, sweepStaging } from './staging.js';


export interface DriverHostOptions {
  /** The folder with one sub-folder per DS_MAD. */
  readonly driversDir: string;
  /** DS_MADs that run from an OpenNebula installation, unchanged (imgr configuration "opennebula"). */
  readonly opennebula?: OpenNebulaConfig;
  /** Parallel executions per driver (reference -t, default 15). */
  readonly concurrency: number;
  /** Between SIGTERM and SIGKILL when a script overruns its deadline. */
  readonly graceMs: number;
  readonly maxStdoutBytes: number;
  /**
   * The private key that opens sealed secret attributes (W23), created at
   * first start (0600); the manager role publishes its public half for
   * clients (keyring.ts). Without it sealed values reach drivers as they are.
   */
  readonly secretsKeyFile?: string;
  /**
   * Where a URL import's bytes wait for the datastore's cp (0700; staging.ts);
   * a private temporary folder when absent.
   */
  readonly stagingDir?: string;
}

/**
 * Runs drivers/<DS_MAD>/<action> for each driver request (competing
 * consumers: several hosts share the work), enforces the request's deadline,
 * records stderr log lines on the image, validates the output, and publishes
 * the reply. A request is acknowledged only after its reply is published, so
 * a host restart loses nothing.
 */
export class DriverHost {
  private readonly js: JetStreamClient;
  private readonly out: Publisher;
  private readonly limits = new Map<string, Semaphore>();
  private readonly running = new Set<Promise<void>>();
  private follower: Follower | undefined;
  private stopping = false;
  private readonly underway = new Map<string, Promise<void>>();
  private statSub: Subscription | undefined;
  private key: SecretsKey | undefined;

  constructor(
    private readonly nc: NatsConnection,
    private readonly o: DriverHostOptions,
    private readonly clock: Clock,
    private readonly log: Logger,
    private readonly metrics: ImgrMetrics = new ImgrMetrics(),
  ) {
    this.js = jetstream(nc);
    // Replies and reports go on the driver hosts' own subject: the drivers role may publish on no other.
    this.out = new Publisher(nc, 'driver-host', subjects.driverReply);
  }

  async start(): Promise<void> {
    if (this.o.secretsKeyFile !== undefined) {
      this.key = await loadOrCreateKey(this.o.secretsKeyFile);
      // The manager role publishes it (npm start, `imgr secrets publish`); a driver host only checks it is its own.
      if (!(await isPublishedKey(this.nc, this.key))) {
        this.log.warn({ keyFile: this.o.secretsKeyFile }, `imgr's secrets key is not published yet: clients cannot seal secrets until an operator runs \`imgr secrets publish --key ${this.o.secretsKeyFile}\``);
      }
    }
    const leftover = await sweepStaging(this.o);
    if (leftover > 0) this.log.info({ stagingDir: this.o.stagingDir, removed: leftover }, 'downloads a stopped driver host left staged were removed');
    // STAT is synchronous (§9.3): request/reply in a queue group, not the work queue.
    this.statSub = this.nc.subscribe('imgr.stat', {
      queue: 'imgr-drivers',
      callback: (err, m) => {
        if (err) return;
        const req = DriverRequestSchema.safeParse(safeJson(m.string()));
        if (!req.success || req.data.action !== 'STAT') {
          m.respond(JSON.stringify({ result: 'FAILURE', info: 'malformed STAT request' }));
          return;
        }
        // A secret that does not open is a FAILURE answer, not a throw in this callback.
        Promise.resolve()
          .then(() => this.run(this.opened(req.data), req.data.datastore.dsMad))
          .then(
            // The script's log lines travel with the answer: a refusal for a failed size check shows its cause.
            (r) => m.respond(JSON.stringify({ result: r.result, info: r.info, logs: r.logs.map((l) => `${l.severity} ${l.text}`) })),
            (e: unknown) => m.respond(JSON.stringify({ result: 'FAILURE', info: `Internal error ${String(e)}` })),
          );
      },
    });
    const jsm = await jetstreamManager(this.nc, { checkAPI: false });
    this.metrics.watchConsumer(jsm, STREAMS.driver, DRIVERS_DURABLE);
    this.follower = await followDurable(this.js, jsm, {
      stream: STREAMS.driver,
      durable: DRIVERS_DURABLE,
      consume: { max_messages: 100 },
      log: this.log,
      onMessage: (m) => {
        const p = this.handle(m)
          .catch((e: unknown) => this.log.error({ err: e, subject: m.subject }, 'driver request left for redelivery'))
          .finally(() => this.running.delete(p));
        this.running.add(p);
      },
    });
  }

  async stop(): Promise<void> {
    this.stopping = true;
    this.statSub?.unsubscribe();
    await this.follower?.stop();
    await Promise.allSettled(this.running);
  }

  private async handle(m: JsMsg): Promise<void> {
    const parsed = DriverRequestSchema.safeParse(safeJson(m.string()));
    if (!parsed.success) {
      this.log.error({ subject: m.subject, issues: parsed.error.issues.slice(0, 5) }, 'unreadable driver request dropped');
      m.term();
      return;
    }
    const req = parsed.data;
    // Keep the request ours while the script runs (ack_wait is shorter than most deadlines).
    const keepAlive = setInterval(() => m.working(), 10_000);
    try {
      // A server that restarted from a crash may deliver a request again while it runs here: it is
      // the same work, answered by the run under way, never a second script on the same files.
      const underway = this.underway.get(req.requestId);
      if (underway) this.log.info({ requestId: req.requestId }, 'request delivered again while it runs; waiting for that run');
      const run = underway ?? this.execute(req).finally(() => this.underway.delete(req.requestId));
      if (!underway) this.underway.set(req.requestId, run);
      await run;
      m.ack();
    } catch (e) {
      this.log.error({ err: e, requestId: req.requestId }, 'reply not published, the request will run again');
      nakQuietly(m, 2000);
    } finally {
      clearInterval(keepAlive);
    }
  }

  private async execute(req: DriverRequest): Promise<void> {
    const mad = req.datastore.type === 'SYSTEM_DS' ? req.datastore.tmMad : req.datastore.dsMad;
    const started = this.clock.now();
    if (req.deadline <= started) {
      // Nobody ran it in time (no host was up): the watchdog has failed the operation already.
      await this.reply(req, 'FAILURE', `Deadline passed before ${req.action} could run`);
      return;
    }
    let opened: DriverRequest;
    try {
      opened = this.opened(req);
    } catch (e) {
      await this.reply(req, 'FAILURE', e instanceof Error ? e.message : String(e));
      return;
    }
    const r = await this.run(opened, mad);
    if (r.result === 'FAILURE') this.log.warn({ requestId: req.requestId, commandLine: r.commandLine, info: r.info }, 'driver action failed');
    // What the script did is done: running it again later (after its deadline) could not report it, and a
    // file it stored would be nobody's. So its lines and its reply are published until they are.
    await this.surely(req, async () => {
      if (r.logs.length > 0 && req.image) await this.logLines(req, r.logs);
      await this.reply(req, r.result, r.info);
    });
    if (req.action === 'MONITOR' && r.result === 'SUCCESS') await this.sweep(req);
    this.log.info({ requestId: req.requestId, action: req.action, result: r.result, ms: this.clock.now() - started }, 'driver action');
  }

  /** Runs a driver action (its secrets opened) within its driver's concurrency limit, timed and counted. */
  private run(opened: DriverRequest, mad: string): Promise<ActionResult> {
    return this.limitFor(mad).use(async () => {
      const running = performance.now();
      const r = await runAction(opened, this.o, this.clock);
      this.metrics.driverSeconds.observe({ mad, action: opened.action, result: r.result }, (performance.now() - running) / 1000);
      if (r.result === 'FAILURE') this.metrics.driverFailures.inc({ mad, action: opened.action });
      return r;
    });
  }

  /**
   * After a monitor of a datastore whose driver keeps its images as files in
   * BASE_PATH (fs): the files there and their age, for the manager to find
   * the ones no image names. A folder this host cannot see is skipped.
   */
  private async sweep(req: DriverRequest): Promise<void> {
    if (req.datastore.dsMad !== 'fs' || req.datastore.type === 'SYSTEM_DS' || req.datastore.type === 'BACKUP_DS') return;
    const base = req.datastore.basePath;
    let entries: Dirent[];
    try {
      entries = await readdir(base, { withFileTypes: true });
    } catch {
      return;
    }
    const now = this.clock.now();
    const files: { path: string; ageSec: number }[] = [];
    for (const e of entries) {
      if (!e.isFile() || e.name.startsWith('.')) continue;
      try {
        const st = await stat(join(base, e.name));
        files.push({ path: join(base, e.name), ageSec: Math.max(0, Math.floor((now - st.mtimeMs) / 1000)) });
      } catch {
        // Removed meanwhile.
      }
    }
    // The oldest first: a bounded message still carries the likeliest orphans.
    files.sort((a, b) => b.ageSec - a.ageSec);
    await this.command({ type: 'datastore.swept', datastoreId: req.datastoreId, files: files.slice(0, BOUNDS.list) }, `sweep-${req.requestId}`).catch((e: unknown) =>
      this.log.warn({ err: e, datastoreId: req.datastoreId }, 'sweep not reported; the next monitor sweeps again'),
    );
  }

  private surely(req: DriverRequest, publish: () => Promise<void>): Promise<void> {
    return untilDone(publish, {
      stopped: () => this.stopping,
      firstDelayMs: 200,
      onFirstFailure: (e) => this.log.warn({ err: e, requestId: req.requestId }, 'reply not published yet; retrying until it is'),
    });
  }

  /** The request with its datastore's sealed attributes opened, in memory only, for the one script that needs them. */
  private opened(req: DriverRequest): DriverRequest {
    const sealed = Object.entries(req.datastore.template).filter(([, v]) => isSealed(v));
    if (sealed.length === 0) return req;
    const key = this.key;
    const template = { ...req.datastore.template };
    for (const [k, v] of sealed) {
      if (!key) throw new Error(`Cannot open the secret attribute ${k}: this driver host has no secrets key`);
      try {
        template[k] = unseal(key.privateKey, v);
      } catch {
        throw new Error(`Cannot open the secret attribute ${k}: it was sealed to another key`);
      }
    }
    return { ...req, datastore: { ...req.datastore, template } };
  }

  /** Each driver runs at most `concurrency` scripts at a time (reference -t). */
  private limitFor(mad: string): Semaphore {
    let limit = this.limits.get(mad);
    if (!limit) {
      limit = new Semaphore(this.o.concurrency);
      this.limits.set(mad, limit);
    }
    return limit;
  }

  private async logLines(req: DriverRequest, lines: readonly LogLine[]): Promise<void> {
    for (let i = 0; i < lines.length; i += 200) {
      await this.command(
        { type: 'driver.log', imageId: req.imageId, requestId: req.requestId, action: req.action, lines: lines.slice(i, i + 200).map((l) => ({ ...l, text: l.text.slice(0, 4096) })) },
        `log-${req.requestId}-${i / 200}`,
      );
    }
  }

  private async reply(req: DriverRequest, result: 'SUCCESS' | 'FAILURE', info: string): Promise<void> {
    const commandId = `reply-${req.requestId}`;
    if (req.action === 'MONITOR') {
      const b64 = result === 'SUCCESS' ? info : Buffer.from(info, 'utf8').toString('base64');
      await this.command({ type: 'datastore.monitored', datastoreId: req.datastoreId, result, info: b64 }, commandId);
    } else if (req.imageId < 0) {
      // An RM of an orphaned file (no image owns it): the log line is the whole answer.
      this.log.info({ requestId: req.requestId, action: req.action, result, info }, 'orphaned file reclaimed');
    } else if (isReplyAction(req.action)) {
      // What the reply means (a new image, a backup, restored disks) is the image machine's to decide.
      await this.command({ type: 'driver.reply', imageId: req.imageId, requestId: req.requestId, action: req.action, result, info }, commandId);
    } else {
      // STAT answers a caller, not an image: recorded in the log until allocation runs it.
      this.log.info({ requestId: req.requestId, action: req.action, result, info }, 'driver answer');
    }
  }

  private command(input: CommandInput, commandId: string): Promise<void> {
    return this.out.command(input, commandId, null, this.clock.now());
  }
}

export interface ActionResult {
  readonly result: 'SUCCESS' | 'FAILURE';
  readonly info: string;
  readonly logs: LogLine[];
  readonly commandLine: string;
}

/**
 * Runs the script of one request the way the driver contract says: the
 * document on stdin (base64), the id as the only argument, the IMGR_*
 * environment, the deadline enforced on the process group; then validates
 * what it printed.
 */
export async function runAction(
  req: DriverRequest,
  o: Pick<DriverHostOptions, 'driversDir' | 'opennebula' | 'graceMs' | 'maxStdoutBytes' | 'stagingDir'>,
  clock: Clock,
): Promise<ActionResult> {
  const mad = req.datastore.type === 'SYSTEM_DS' ? req.datastore.tmMad : req.datastore.dsMad;
  const id = req.action === 'MONITOR' ? req.datastoreId : req.imageId;
  const unavailable = { result: 'FAILURE' as const, info: `Datastore driver '${mad}' not available`, logs: [], commandLine: '' };
  const place = new DriverSources(o.driversDir, o.opennebula ?? null).placeOf(mad);
  if (!place) return unavailable;
  try {
    await access(place.dir, constants.R_OK);
  } catch {
    return unavailable;
  }
  const script = join(place.dir, req.action.toLowerCase());
  const commandLine = `${script} ${id}`;
  // A user's URL is imgr's to reach, never the driver's (staging.ts).
  const sized = await statOfUrl(req, clock);
  if (sized) return { ...sized, logs: [], commandLine };
  const input = await prepareInput(req, o, clock);
  if (!input.ok) return { result: 'FAILURE', info: input.failure, logs: [], commandLine };
  try {
    // Images are data, never references: every file of a client's the action opens is inspected first (inspection.ts).
    const inspected = await inspectBefore(input.request);
    if (inspected.refusal !== null) return { result: 'FAILURE', info: input.shown(inspected.refusal), logs: [], commandLine };
    const x = await runScript({
      script,
      args: [String(id)],
      stdin: Buffer.from(actionDocument(input.request), 'utf8').toString('base64'),
      env: { ...actionEnvironment(input.request), ...inspected.env, ...place.env },
      cwd: place.cwd,
      timeoutMs: Math.max(1, req.deadline - clock.now()),
      graceMs: o.graceMs,
      maxStdoutBytes: o.maxStdoutBytes,
    });
    const replied = replyFor(req.action, commandLine, x);
    // What it made from such a file is inspected in its turn (a file changed between the two checks is still refused).
    const refusedAfter = replied.result === 'SUCCESS' ? await inspectAfter(input.request, replied.info) : null;
    const r = refusedAfter === null ? replied : { result: 'FAILURE' as const, info: refusedAfter };
    // A failure names what the user gave (the URL), not the staged file; a success's SOURCE is the datastore's.
    return { ...r, info: r.result === 'FAILURE' ? input.shown(r.info) : r.info, logs: [...input.logs, ...classifyStderr(x.stderr).logs.map((l) => ({ ...l, text: input.shown(l.text) }))], commandLine };
  } finally {
    await input.release();
  }
}
