import { chmodSync, closeSync, openSync } from 'node:fs';
import { chmod, mkdir, readdir } from 'node:fs/promises';
import { join } from 'node:path';

/**
 * The data directory is imgr's alone: the folder 0700 and every file directly
 * in it (imgr.log, principals.json, nats.conf, nats.pid, api-token,
 * secrets.key, imgr.json…) 0600, whatever modes an earlier version or another
 * tool left them with. Sub-folders keep their own modes (the datastores' are
 * the drivers'); the 0700 folder closes them to other users all the same.
 */
export async function secureDataDir(data: string): Promise<void> {
  await mkdir(data, { recursive: true, mode: 0o700 });
  await chmod(data, 0o700);
  for (const e of await readdir(data, { withFileTypes: true })) {
    if (e.isFile()) await chmod(join(data, e.name), 0o600);
  }
}

/** `file` exists with mode 0600 (created so, or made so), so a writer that opens it afterwards keeps that mode. */
export function privateFile(file: string): void {
  closeSync(openSync(file, 'a', 0o600));
  chmodSync(file, 0o600);
}
