/**
 * What an inspection finds in an image file, read from its bytes only: the
 * format qemu would see, the virtual size, and every reason the file is not
 * plain data (a reference to another file, a feature nobody checked).
 */
export const CONTENT_FORMATS = ['raw', 'qcow2', 'qed', 'vmdk', 'vhd', 'vhdx', 'vdi', 'iso', 'luks', 'qcow', 'bochs', 'cloop', 'parallels'] as const;
export type ContentFormat = (typeof CONTENT_FORMATS)[number];

export type ViolationKind =
  | 'backing-file'
  | 'data-file'
  | 'unknown-features'
  | 'vmdk-descriptor'
  | 'vmdk-extent'
  | 'differencing'
  | 'parent-locator'
  | 'unsupported'
  | 'malformed'
  | 'format-mismatch';

export interface Violation {
  readonly kind: ViolationKind;
  /** What a refusal says, e.g. `qcow2 backing file "/etc/shadow"`. */
  readonly message: string;
  /** The other file the image names, when the violation is a reference (backing file, data file, extent). */
  readonly reference?: string;
}

export interface Inspection {
  readonly format: ContentFormat;
  /** The size the disk has for a VM, in bytes; null when the header does not say (LUKS). */
  readonly virtualSize: number | null;
  readonly violations: readonly Violation[];
}

/** The name qemu-img's -f takes for a content format (an ISO or a LUKS container is read as raw by imgr's drivers). */
export const qemuFormat = (f: ContentFormat): string => (f === 'vhd' ? 'vpc' : f === 'iso' || f === 'luks' ? 'raw' : f);
