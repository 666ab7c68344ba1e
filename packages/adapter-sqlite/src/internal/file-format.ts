import { crc32 } from "node:zlib";
import { damagedFileError, wrongKeyError } from "../sqlite-errors.js";
import {
  type AesKey,
  decrypt,
  encrypt,
  freshIv,
  IV_BYTES,
  makeKeyCheck,
  TAG_BYTES,
  verifyKeyCheck,
} from "./cipher.js";

/*
 * On-disk format, version 1. All integers big-endian. Every file starts with the same header:
 *
 *   0   8  magic "CVSQLITE"
 *   8   2  format version (1)
 *  10   1  kind: 1 snapshot, 2 journal
 *  11   1  reserved (0)
 *  12  16  database id (random, fixed when the database is created)
 *  28   8  generation (a snapshot and the journal written on top of it share it)
 *  36  12  key-check IV
 *  48  16  key-check tag: AES-GCM of an empty message, AAD = bytes 0..35
 *  64   4  CRC-32 of bytes 0..63
 *
 * A snapshot continues with IV (12), ciphertext length (8) and the encrypted SQLite image, AAD =
 * bytes 0..87. A journal continues with records:
 *
 *   0   4  ciphertext length N (tag included)
 *   4   8  sequence number, 1 for the first record of a generation
 *  12  12  IV
 *  24   4  CRC-32 of bytes 0..23 and the ciphertext
 *  28   N  ciphertext, AAD = database id + generation + bytes 0..11
 *
 * The CRC finds torn or flipped bytes cheaply; the GCM tag proves the bytes are ours. The AAD
 * binds records to their database, generation and position, so records cannot be spliced
 * between files or reordered without detection.
 */

const MAGIC = new TextEncoder().encode("CVSQLITE");
export const FORMAT_VERSION = 1;
export const HEADER_BYTES = 68;
const SNAPSHOT_PREFIX_BYTES = HEADER_BYTES + IV_BYTES + 8;
const RECORD_PREFIX_BYTES = 28;
/** Larger than any real record; a bigger length field can only be damage. */
const MAX_RECORD_BYTES = 1024 * 1024 * 1024;

export type FileKind = "snapshot" | "journal";
const KIND_CODE: Record<FileKind, number> = { snapshot: 1, journal: 2 };

export interface FileHeader {
  readonly kind: FileKind;
  readonly databaseId: Uint8Array;
  readonly generation: number;
  /** The 68 header bytes as stored. */
  readonly bytes: Uint8Array;
}

const view = (bytes: Uint8Array) => new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
const sameBytes = (a: Uint8Array, b: Uint8Array) =>
  a.length === b.length && a.every((value, i) => value === b[i]);

export async function encodeHeader(key: AesKey, kind: FileKind, databaseId: Uint8Array, generation: number) {
  const bytes = new Uint8Array(HEADER_BYTES);
  const dv = view(bytes);
  bytes.set(MAGIC, 0);
  dv.setUint16(8, FORMAT_VERSION);
  dv.setUint8(10, KIND_CODE[kind]);
  bytes.set(databaseId, 12);
  dv.setBigUint64(28, BigInt(generation));
  const check = await makeKeyCheck(key, bytes.subarray(0, 36));
  bytes.set(check.iv, 36);
  bytes.set(check.tag, 48);
  dv.setUint32(64, crc32(bytes.subarray(0, 64)));
  return { kind, databaseId, generation, bytes } satisfies FileHeader;
}

/** Validates a header: truncation, magic, version, kind, checksum, then the key. */
export async function decodeHeader(
  bytes: Uint8Array,
  key: AesKey,
  kind: FileKind,
  file: string,
  advice: string,
): Promise<FileHeader> {
  const damaged = (problem: string) => damagedFileError(file, problem, advice);
  if (bytes.length < HEADER_BYTES) {
    throw damaged(`it is truncated (${bytes.length} bytes, shorter than the ${HEADER_BYTES}-byte header)`);
  }
  if (!sameBytes(bytes.subarray(0, 8), MAGIC))
    throw damaged("it is not a CentroVision database file (wrong magic)");
  const dv = view(bytes);
  const version = dv.getUint16(8);
  if (version !== FORMAT_VERSION) {
    throw damaged(`it was written in format version ${version}; this version reads format ${FORMAT_VERSION}`);
  }
  if (dv.getUint8(10) !== KIND_CODE[kind]) throw damaged(`it is not a ${kind} file`);
  if (dv.getUint32(64) !== crc32(bytes.subarray(0, 64)))
    throw damaged("its header is damaged (checksum mismatch)");
  const header = bytes.slice(0, HEADER_BYTES);
  if (
    !(await verifyKeyCheck(key, header.subarray(36, 48), header.subarray(48, 64), header.subarray(0, 36)))
  ) {
    throw wrongKeyError(file);
  }
  return { kind, databaseId: header.slice(12, 28), generation: Number(dv.getBigUint64(28)), bytes: header };
}

/** A whole snapshot file: header, then the encrypted SQLite image. */
export async function encodeSnapshot(
  key: AesKey,
  header: FileHeader,
  image: Uint8Array,
): Promise<Uint8Array[]> {
  const prefix = new Uint8Array(SNAPSHOT_PREFIX_BYTES);
  prefix.set(header.bytes, 0);
  prefix.set(freshIv(), HEADER_BYTES);
  view(prefix).setBigUint64(HEADER_BYTES + IV_BYTES, BigInt(image.length + TAG_BYTES));
  const ciphertext = await encrypt(
    key,
    prefix.subarray(HEADER_BYTES, HEADER_BYTES + IV_BYTES),
    image,
    prefix,
  );
  return [prefix, ciphertext];
}

/** The SQLite image inside a snapshot file, or a clear error naming what is wrong with it. */
export async function decodeSnapshot(bytes: Uint8Array, key: AesKey, file: string, advice: string) {
  const header = await decodeHeader(bytes, key, "snapshot", file, advice);
  const damaged = (problem: string) => damagedFileError(file, problem, advice);
  if (bytes.length < SNAPSHOT_PREFIX_BYTES) throw damaged("it is truncated (the data section is missing)");
  const length = Number(view(bytes).getBigUint64(HEADER_BYTES + IV_BYTES));
  const actual = bytes.length - SNAPSHOT_PREFIX_BYTES;
  if (actual < length) throw damaged(`it is truncated (${actual} of ${length} data bytes present)`);
  if (actual > length) throw damaged(`it has ${actual - length} unexpected bytes after its data`);
  const iv = bytes.subarray(HEADER_BYTES, HEADER_BYTES + IV_BYTES);
  const image = await decrypt(
    key,
    iv,
    bytes.subarray(SNAPSHOT_PREFIX_BYTES),
    bytes.subarray(0, SNAPSHOT_PREFIX_BYTES),
  );
  if (image === null) throw damaged("its data failed authentication (bytes were altered or lost)");
  return { header, image };
}

function recordAad(header: FileHeader, prefix: Uint8Array): Uint8Array {
  const aad = new Uint8Array(24 + 12);
  aad.set(header.databaseId, 0);
  aad.set(header.bytes.subarray(28, 36), 16);
  aad.set(prefix.subarray(0, 12), 24);
  return aad;
}

/** One journal record, ready to append. */
export async function encodeRecord(key: AesKey, header: FileHeader, seq: number, payload: Uint8Array) {
  const prefix = new Uint8Array(RECORD_PREFIX_BYTES);
  const dv = view(prefix);
  dv.setUint32(0, payload.length + TAG_BYTES);
  dv.setBigUint64(4, BigInt(seq));
  prefix.set(freshIv(), 12);
  const ciphertext = await encrypt(key, prefix.subarray(12, 24), payload, recordAad(header, prefix));
  dv.setUint32(24, crc32(ciphertext, crc32(prefix.subarray(0, 24))));
  const frame = new Uint8Array(RECORD_PREFIX_BYTES + ciphertext.length);
  frame.set(prefix, 0);
  frame.set(ciphertext, RECORD_PREFIX_BYTES);
  return frame;
}

export interface ScannedJournal {
  /** Payloads of the valid records, in order. */
  readonly payloads: Uint8Array[];
  /** Bytes from the start of the file up to the end of the last valid record. */
  readonly goodLength: number;
  /** Why scanning stopped before the end of the file, or null when every byte was valid. */
  readonly problem: string | null;
}

/**
 * Reads records until the end of the file or the first record that is torn (a crash mid-append)
 * or damaged. Everything before it is trusted; nothing after it is, because records are only
 * ever appended, so a bad record means the tail after it was never acknowledged or was damaged.
 */
export async function scanRecords(
  bytes: Uint8Array,
  key: AesKey,
  header: FileHeader,
): Promise<ScannedJournal> {
  const payloads: Uint8Array[] = [];
  let offset = HEADER_BYTES;
  const stop = (problem: string): ScannedJournal => ({ payloads, goodLength: offset, problem });
  while (offset < bytes.length) {
    const record = payloads.length + 1;
    if (bytes.length - offset < RECORD_PREFIX_BYTES) return stop(`record ${record} is torn (partial header)`);
    const prefix = bytes.subarray(offset, offset + RECORD_PREFIX_BYTES);
    const dv = view(prefix);
    const length = dv.getUint32(0);
    const end = offset + RECORD_PREFIX_BYTES + length;
    if (length < TAG_BYTES || length > MAX_RECORD_BYTES)
      return stop(`record ${record} has an impossible length`);
    if (end > bytes.length)
      return stop(`record ${record} is torn (${bytes.length - offset} of ${end - offset} bytes)`);
    const ciphertext = bytes.subarray(offset + RECORD_PREFIX_BYTES, end);
    if (dv.getUint32(24) !== crc32(ciphertext, crc32(prefix.subarray(0, 24)))) {
      return stop(`record ${record} is damaged (checksum mismatch)`);
    }
    if (Number(dv.getBigUint64(4)) !== record) return stop(`record ${record} is out of sequence`);
    const payload = await decrypt(key, prefix.subarray(12, 24), ciphertext, recordAad(header, prefix));
    if (payload === null) return stop(`record ${record} failed authentication`);
    payloads.push(payload);
    offset = end;
  }
  return { payloads, goodLength: offset, problem: null };
}
