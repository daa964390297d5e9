import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Command } from './commands.js';
import { CliError, EXIT } from './output.js';
import { fingerprintFile, publicKeyOfFile, publishSecretsKey } from '../secrets/keyring.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const defaultKeyFile = (): string => process.env['IMGR_SECRETS_KEY_FILE'] ?? resolve(process.env['IMGR_DATA_DIR'] ?? resolve(ROOT, '.data'), 'secrets.key');

/**
 * The secrets key's public half is written by the manager role only (the
 * drivers role may not write imgr_meta): `npm start` does it at first start;
 * driver hosts run on their own need an operator to run this once, with the
 * manager's credentials, on the host that has the key file.
 */
export const SECRETS_COMMANDS: Command[] = [
  {
    name: 'secrets publish',
    usage: 'secrets publish [--key FILE]',
    summary: "publish the driver hosts' secrets key for clients to seal to, and pin its fingerprint beside the credentials",
    example: 'imgr secrets publish --key /var/lib/imgr/secrets.key',
    options: { key: { type: 'string' } },
    run: async (_c, _a, v, x) => {
      const file = typeof v['key'] === 'string' ? v['key'] : defaultKeyFile();
      let pem: string;
      try {
        pem = await publicKeyOfFile(file);
      } catch (e) {
        throw new CliError(`cannot read a key from ${file}: ${e instanceof Error ? e.message : String(e)}`, EXIT.usage, 'a driver host creates it at its first start (IMGR_SECRETS_KEY_FILE, default <data>/secrets.key)');
      }
      // Another key published, or pinned here, is refused: secrets sealed to the first would no longer open.
      const fingerprint = await publishSecretsKey(await x.admin(), pem).catch((e: unknown) => {
        throw new CliError(e instanceof Error ? e.message : String(e), EXIT.failed);
      });
      const pin = fingerprintFile();
      return { human: `secrets key ${fingerprint} published; fingerprint pinned in ${pin} (copy it beside the credentials of every client that seals)`, json: { fingerprint, pin, key: file } };
    },
  },
];
