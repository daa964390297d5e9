import type { ImageRecord, Job } from '../../messages/image-record.js';
import type { Effect } from '../../messages/effects.js';
import type { ImageEvent } from './events.js';
import { eventOf, type Step } from './steps.js';
import { inFolder } from '../shared/paths.js';

/**
 * BACKUP and RESTORE read an image without locking it (§7.3, §7.13.1): each
 * request is a job on the image until its reply or its deadline, and what the
 * reply means (a backup image, an increment, restored images) is decided here
 * and carried as effects; the driver host only reports what the script printed.
 */
const jobOf = (r: ImageRecord, ev: ImageEvent): Job | undefined => {
  if (ev.type === 'driver.timeout') return r.jobs.find((j) => j.requestId === ev.requestId);
  if (ev.type === 'driver.reply') return r.jobs.find((j) => j.requestId === ev.requestId && j.action === ev.action);
  return undefined;
};

export const matchesJob = (r: ImageRecord, ev: ImageEvent): boolean => jobOf(r, ev) !== undefined;

export const backupJob = (r: ImageRecord, ev: ImageEvent, job: Omit<Extract<Job, { action: 'BACKUP' }>, 'action'>): Pick<ImageRecord, 'jobs'> => ({
  jobs: [...r.jobs.filter((j) => j.requestId !== ev.meta.commandId), { action: 'BACKUP', ...job }],
});
export const restoreJob = (r: ImageRecord, ev: ImageEvent, job: Omit<Extract<Job, { action: 'RESTORE' }>, 'action'>): Pick<ImageRecord, 'jobs'> => ({
  jobs: [...r.jobs.filter((j) => j.requestId !== ev.meta.commandId), { action: 'RESTORE', ...job }],
});

/** The disks a RESTORE printed ("<file>:<size_mb> …", driver-contract §12). */
export function restoredDisks(info: string): { file: string; sizeMb: number }[] | null {
  const disks: { file: string; sizeMb: number }[] = [];
  for (const t of info.trim().split(/\s+/).filter((x) => x !== '')) {
    const m = /^(\/\S+):(\d+)$/.exec(t);
    if (m?.[1] === undefined || m[2] === undefined) return null;
    disks.push({ file: m[1], sizeMb: Number(m[2]) });
  }
  return disks.length > 0 ? disks : null;
}

export const jobAnswered: Step = (r, ev) => {
  const job = jobOf(r, ev);
  if (!job) throw new Error('jobAnswered without a matching job');
  const jobs = r.jobs.filter((j) => j.requestId !== job.requestId);
  const failed = (reason: string) => ({ fact: 'image.jobFailed' as const, changes: { jobs }, detail: { requestId: job.requestId, action: job.action, reason } });
  if (ev.type === 'driver.timeout') return failed(`Timeout: ${job.action} did not answer before its deadline`);
  const reply = eventOf(ev, 'driver.reply');
  if (reply.result === 'FAILURE') return failed(reply.info);
  if (job.action === 'BACKUP') {
    const [source = '', size = '', format = ''] = reply.info.trim().split(/\s+/);
    if (source === '' || !/^\d+$/.test(size) || format === '') return failed(`backup must print "<backup_id> <size_mb> <format>", printed ${JSON.stringify(reply.info)}`);
    const sizeMb = Number(size);
    const effect: Effect = job.chain
      ? { kind: 'image.extendBackup', imageId: job.backupImageId, source, sizeMb }
      : {
          kind: 'image.createBackup',
          imageId: job.backupImageId,
          datastoreId: job.backupDatastoreId,
          vmId: job.vmId,
          source,
          sizeMb,
          format,
          incremental: job.incremental,
          owner: { uid: r.uid, gid: r.gid, uname: r.uname, gname: r.gname },
        };
    return { fact: 'image.backedUp', changes: { jobs }, detail: { requestId: job.requestId, backupImageId: job.backupImageId, source, sizeMb }, effects: [effect] };
  }
  const disks = restoredDisks(reply.info);
  if (disks === null) return failed(`RESTORE must print "<file>:<size_mb> …", printed ${JSON.stringify(reply.info)}`);
  // A restored disk is read from this restore's staging folder only (<BASE_PATH>/.restore/<request>): any other
  // file (another image's SOURCE, a host file) would be copied into the user's new image.
  const staging = ev.ctx.storage === null ? null : `${ev.ctx.storage.folder.replace(/\/+$/, '')}/.restore/${job.requestId}`;
  const outside = disks.find((d) => staging === null || !inFolder(staging, d.file));
  if (outside !== undefined) return failed(`RESTORE printed ${JSON.stringify(outside.file)}, which is not a file of its staging folder ${staging ?? `(the folder of datastore ${r.datastore.id} is not known)`}`);
  const ids = ev.ctx.newImageIds;
  if (ids.length < disks.length) return failed(`no image ids for ${disks.length} restored disks`);
  const base = job.name !== '' ? job.name : r.name.replace(/[^\w.-]+/g, '-');
  const effects: Effect[] = disks.map((d, i) => ({
    kind: 'image.registerRestored',
    imageId: ids[i] ?? -1,
    datastoreId: job.destinationId,
    template: { NAME: `${base}-disk-${i}`, PATH: d.file, SIZE: String(d.sizeMb), TYPE: i === 0 ? 'OS' : 'DATABLOCK', FROM_BACKUP_DS: String(r.datastore.id) },
    owner: job.owner,
  }));
  return { fact: 'image.restored', changes: { jobs }, detail: { requestId: job.requestId, images: ids.slice(0, disks.length).join(' ') }, effects };
};
