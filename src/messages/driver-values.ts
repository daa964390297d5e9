/**
 * Strict forms of the values a client writes that reach a driver document
 * (design principle 8). OpenNebula's own scripts put document values into
 * shell code: `fs/mkfs` runs `eval $(echo "echo \$FS_OPTS_$FS")`, `mkfs_command`
 * splits FORMAT and SIZE into a command line a shell runs, `set_downloader_args`
 * writes MD5 and SHA1 unquoted and PATH inside `'…'` without escaping, `monitor`
 * and `clone` write BASE_PATH, DRIVER and the snapshot paths unquoted. So every
 * such value is refused at the command boundary unless it has the form its
 * field needs, and nothing with shell syntax is ever written into them.
 *
 * Values that cannot have a strict form (a DESCRIPTION, a NAME within §7.1.4,
 * any other free attribute) reach the document only as elements no driver
 * script reads (test/unit/driver-values.test.ts derives what OpenNebula's
 * scripts read from the scripts themselves and checks each is listed here).
 */

/** §2: the file systems MKFS creates inside an empty datablock (OpenNebula's SUPPORTED_FS). */
export const FILE_SYSTEMS = ['ext2', 'ext3', 'ext4', 'xfs'] as const;

/** Disk formats an image or a datastore DRIVER may name (qemu-img's, OpenNebula's dir/iso/swap, backups' rbd). */
export const DISK_FORMATS = ['raw', 'qcow2', 'qcow', 'qed', 'vmdk', 'vdi', 'vhd', 'vhdx', 'vpc', 'luks', 'iso', 'dir', 'swap', 'rbd'] as const;

/** Why a value does not have its field's form, or undefined when it does. */
export type ValueCheck = (value: string) => string | undefined;

const oneOf =
  (list: readonly string[]): ValueCheck =>
  (v) =>
    list.includes(v.trim().toLowerCase()) ? undefined : `must be one of ${list.join(', ')}`;
const matching =
  (re: RegExp, form: string): ValueCheck =>
  (v) =>
    re.test(v.trim()) ? undefined : `must be ${form}`;
const emptyOr =
  (check: ValueCheck): ValueCheck =>
  (v) =>
    v.trim() === '' ? undefined : check(v);

/** Characters of a local path: letters, digits and `. _ - + @ % = , : ~ /`; no blank, quote or shell syntax. */
const PATH_CHARS = '[A-Za-z0-9._+@%=,:~/-]';
const LOCAL_PATH = new RegExp(`^(file://)?/${PATH_CHARS}*$`);
/** A relative path (oned takes it; the driver then fails on it), never one that starts like an option. */
const RELATIVE_PATH = new RegExp(`^[A-Za-z0-9._+@%=,:~]${PATH_CHARS}*$`);
/** A URL's characters less those with a meaning to a shell (`'`, `"`, `` ` ``, `$`, `;`, `|`, `<`, `>`, `(`, `)`, `!`, `*`, `\`, blanks): percent-encode them. */
const URL_FORM = /^https?:\/\/[A-Za-z0-9._~:/?#[\]@&+,=%-]+$/i;

const path: ValueCheck = (v) =>
  LOCAL_PATH.test(v.trim()) || RELATIVE_PATH.test(v.trim()) || URL_FORM.test(v.trim())
    ? undefined
    : "must be an absolute path, a file:// path or an http(s) URL, of letters, digits and . _ - + @ % = , : ~ / (and ? # & [ ] in a URL); no blank, quote or shell character";
const localPath = matching(LOCAL_PATH, 'an absolute path of letters, digits and . _ - + @ % = , : ~ /');
const pathList = matching(new RegExp(`^(/${PATH_CHARS}*)?([ ]+/${PATH_CHARS}*)*$`), 'absolute paths of letters, digits and . _ - + @ % = , : ~ /, separated by blanks');
const hostName = '[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?';
const hostList = matching(new RegExp(`^(${hostName}([ ]+${hostName})*)?$`), 'host names separated by blanks');
const yesNo = matching(/^(yes|no)?$/i, 'YES or NO');
const digits = matching(/^\d+$/, 'a whole number');

/** The image's own fields and template attributes a driver reads, each with its form (keys upper-case). */
export const IMAGE_VALUE_FORMS: Readonly<Record<string, ValueCheck>> = {
  PATH: emptyOr(path),
  SOURCE: emptyOr(matching(new RegExp(`^[A-Za-z0-9._+@%=,:~/]${PATH_CHARS}*$`), 'a path of letters, digits and . _ - + @ % = , : ~ /, not starting with -')),
  FORMAT: emptyOr(oneOf(DISK_FORMATS)),
  FS: emptyOr(oneOf(FILE_SYSTEMS)),
  SIZE: emptyOr(matching(/^\d+(\.\d+)?[ ]*[A-Za-z]{0,3}$/, 'a size in MB (a number, optionally with a unit)')),
  MD5: emptyOr(matching(/^[0-9a-fA-F]{32}$/, '32 hexadecimal digits')),
  SHA1: emptyOr(matching(/^[0-9a-fA-F]{40}$/, '40 hexadecimal digits')),
  DEV_PREFIX: emptyOr(matching(/^[a-z]{1,8}$/, 'a device prefix of lower-case letters (hd, sd, vd, xvd)')),
  BACKUP_JOB_ID: emptyOr(digits),
  FROM_BACKUP_DS: emptyOr(digits),
};

/** The datastore attributes a driver reads (OpenNebula's fs, imgr's bundled ones), each with its form. */
export const DATASTORE_VALUE_FORMS: Readonly<Record<string, ValueCheck>> = {
  DS_MAD: matching(/^([A-Za-z0-9][A-Za-z0-9_-]*)?$/, 'a driver name of letters, digits, _ and -'),
  TM_MAD: matching(/^([A-Za-z0-9][A-Za-z0-9_-]*)?$/, 'a driver name of letters, digits, _ and -'),
  BASE_PATH: emptyOr(localPath),
  DRIVER: emptyOr(oneOf(DISK_FORMATS)),
  SAFE_DIRS: pathList,
  RESTRICTED_DIRS: pathList,
  STAGING_DIR: emptyOr(localPath),
  BRIDGE_LIST: hostList,
  SOURCE_BRIDGE_LIST: hostList,
  NO_DECOMPRESS: yesNo,
  CONVERT: yesNo,
  SPARSE: yesNo,
  NFS_AUTO_ENABLE: yesNo,
  NFS_AUTO_HOST: emptyOr(matching(new RegExp(`^${hostName}$`), 'a host name')),
  NFS_AUTO_PATH: emptyOr(localPath),
  NFS_AUTO_OPTS: emptyOr(matching(/^[A-Za-z0-9][A-Za-z0-9=,._-]*$/, 'mount options of letters, digits and = , . _ -')),
  LIMIT_TRANSFER_BW: emptyOr(matching(/^\d+[KMGkmg]?$/, 'a rate such as 10M')),
  LIMIT_MB: emptyOr(digits),
  RSYNC_HOST: emptyOr(matching(new RegExp(`^${hostName}$`), 'a host name')),
  RSYNC_USER: emptyOr(matching(/^[a-z_][a-z0-9_-]*$/, 'a user name')),
};

export interface ValueRefusal {
  readonly attr: string;
  readonly value: string;
  readonly reason: string;
}

/** The first attribute of `template` (keys compared upper-case) that does not have its form in `forms`. */
export function valueRefusal(forms: Readonly<Record<string, ValueCheck>>, template: Readonly<Record<string, string>>): ValueRefusal | undefined {
  for (const [k, value] of Object.entries(template)) {
    const attr = k.trim().toUpperCase();
    const check = forms[attr];
    const reason = check?.(value);
    if (reason !== undefined) return { attr, value, reason };
  }
  return undefined;
}
