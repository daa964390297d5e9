import { open, type FileHandle } from 'node:fs/promises';

/**
 * Bounded reads of an image file. An inspector never reads a file whole: it
 * asks for a header, a table, a name, each capped, at the offsets the format
 * gives (and checks them against the file's size first).
 */
export interface ByteSource {
  /** The file's size in bytes. */
  readonly size: number;
  /** Up to `length` bytes at `offset` (fewer at the end of the file, none past it). */
  read(offset: number, length: number): Promise<Buffer>;
}

/** No single read of an inspector is larger than this (the largest is a VMDK descriptor, 1 MiB). */
export const MAX_READ = 1 << 20;

export function bufferSource(buf: Buffer): ByteSource {
  return {
    size: buf.length,
    read: (offset, length) => {
      if (offset < 0 || length < 0 || length > MAX_READ) return Promise.reject(new RangeError(`read of ${length} bytes at ${offset} refused`));
      return Promise.resolve(buf.subarray(Math.min(offset, buf.length), Math.min(offset + length, buf.length)));
    },
  };
}

/** A source over an open file handle; the caller closes the handle. */
export function fileSource(handle: FileHandle, size: number): ByteSource {
  return {
    size,
    read: async (offset, length) => {
      if (offset < 0 || length < 0 || length > MAX_READ || !Number.isSafeInteger(offset)) throw new RangeError(`read of ${length} bytes at ${offset} refused`);
      if (offset >= size) return Buffer.alloc(0);
      const want = Math.min(length, size - offset);
      const buf = Buffer.alloc(want);
      const { bytesRead } = await handle.read(buf, 0, want, offset);
      return buf.subarray(0, bytesRead);
    },
  };
}

/** Runs `f` over a file opened read-only (never a FIFO or a device: the caller checked it is a regular file). */
export async function withFile<T>(path: string, f: (src: ByteSource) => Promise<T>): Promise<T> {
  const handle = await open(path, 'r');
  try {
    const st = await handle.stat();
    return await f(fileSource(handle, st.size));
  } finally {
    await handle.close();
  }
}

/** A 64-bit big- or little-endian field as a number; values beyond 2^53 become Infinity (never a valid offset or size). */
export const u64be = (b: Buffer, at: number): number => {
  const v = b.readBigUInt64BE(at);
  return v > BigInt(Number.MAX_SAFE_INTEGER) ? Infinity : Number(v);
};
export const u64le = (b: Buffer, at: number): number => {
  const v = b.readBigUInt64LE(at);
  return v > BigInt(Number.MAX_SAFE_INTEGER) ? Infinity : Number(v);
};

/** Text quoted in a refusal: printable ASCII only, and short. */
export const shown = (s: string): string => JSON.stringify(s.replace(/[^\x20-\x7e]/g, '?').slice(0, 200));
