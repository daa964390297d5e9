import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * Crafted images for the "images are data, never references" suite: each
 * names a secret file (standing in for /etc/shadow or imgr's credentials)
 * the way a hostile upload would, or lies about its format.
 */
export interface Crafted {
  readonly name: string;
  readonly file: string;
  /** The format the image record or the template declares for it. */
  readonly declared: string;
  /** What the refusal must say (after `Image <file> refused: `). */
  readonly reason: RegExp;
}

export interface Secret {
  readonly file: string;
  /** Bytes only the secret holds: found anywhere else, the secret leaked. */
  readonly marker: string;
}

export function makeSecret(dir: string): Secret {
  const marker = `SECRET-${Date.now().toString(36)}-${process.pid}`;
  const file = join(dir, 'shadow');
  // 1 MiB of it, so a 1 MiB virtual disk read through a reference is all secret.
  writeFileSync(file, `${marker}\n`.repeat(Math.ceil((1024 * 1024) / (marker.length + 1))).slice(0, 1024 * 1024));
  return { file, marker };
}

const qemu = (...args: string[]): string => execFileSync('qemu-img', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });

/** The five kinds of the issue: a backing file, an external data file, a VMDK descriptor, a raw file claiming qcow2, a qcow2 declared raw. */
export function craft(dir: string, secret: Secret): Crafted[] {
  const backing = join(dir, 'backing.qcow2');
  qemu('create', '-q', '-f', 'qcow2', '-F', 'raw', '-b', secret.file, backing, '1M');
  const dataFile = join(dir, 'datafile.qcow2');
  // qemu-img would write zeros over the data file when it makes the image: it is made beside, then pointed at the secret.
  const scratch = join(dir, 'scratch.raw');
  writeFileSync(scratch, Buffer.alloc(1024 * 1024));
  qemu('create', '-q', '-f', 'qcow2', '-o', `data_file=${scratch},data_file_raw=on`, dataFile, '1M');
  qemu('amend', '-q', '-f', 'qcow2', '-o', `data_file=${secret.file}`, dataFile);
  const vmdk = join(dir, 'descriptor.vmdk');
  writeFileSync(
    vmdk,
    ['# Disk DescriptorFile', 'version=1', 'CID=fffffffe', 'parentCID=ffffffff', 'createType="monolithicFlat"', '', `RW 20480 FLAT "${secret.file}" 0`, '', 'ddb.adapterType = "ide"', ''].join('\n'),
  );
  const raw = join(dir, 'plainraw.img');
  writeFileSync(raw, Buffer.alloc(1024 * 1024, 0x5a));
  const q = join(dir, 'plainqcow2.img');
  qemu('create', '-q', '-f', 'qcow2', q, '1M');
  const path = secret.file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  return [
    { name: 'qcow2 backing file to a secret', file: backing, declared: 'qcow2', reason: new RegExp(`qcow2 backing file "${path}"`) },
    { name: 'qcow2 external data file', file: dataFile, declared: 'qcow2', reason: new RegExp(`qcow2 external data file "${path}"`) },
    { name: 'VMDK descriptor naming a secret', file: vmdk, declared: 'vmdk', reason: new RegExp(`VMDK descriptor file .*VMDK extent "${path}"`) },
    { name: 'raw file declared qcow2', file: raw, declared: 'qcow2', reason: /content is raw, declared qcow2/ },
    { name: 'qcow2 declared raw', file: q, declared: 'raw', reason: /content is qcow2, declared raw/ },
  ];
}

/** The refusal a driver action answers for a crafted file. */
export const refusalOf = (file: string, c: Crafted): RegExp => new RegExp(`^Image ${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} refused: .*${c.reason.source}.* \\(images are data, never references\\)$`);

/** A copy of a crafted file at `to` (an image's SOURCE a VM wrote it into). */
export const plant = (c: Crafted, to: string): string => (copyFileSync(c.file, to), to);

/**
 * Every file under `roots` holding the secret's bytes or naming the secret
 * (a reference to it), except the crafted files the test itself placed.
 */
export function leaks(secret: Secret, roots: readonly string[], placed: ReadonlySet<string> = new Set()): string[] {
  const found: string[] = [];
  const walk = (p: string): void => {
    if (!existsSync(p)) return;
    const st = statSync(p);
    if (st.isDirectory()) {
      for (const n of readdirSync(p)) walk(join(p, n));
      return;
    }
    if (!st.isFile() || placed.has(p) || p === secret.file) return;
    const bytes = readFileSync(p);
    if (bytes.includes(secret.marker) || bytes.includes(secret.file)) found.push(p);
  };
  for (const r of roots) walk(r);
  return found;
}
