import { createHash } from 'node:crypto';
import { open, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { MAX_CERTIFICATE_BYTES, verifyPeerCertificate } from '../attest/certificate.ts';
import type { AttestationVerifier, PeerIdentity } from '../attest/types.ts';
import { x509 } from '../attest/x509.ts';
import { type Receipt, receiptBytes, receiptSchema, sha256Hex, verifyReceiptSignature } from './receipt.ts';

/**
 * The client's receipt log as a file format, and its offline audit (docs/receipts.md). The log is written
 * by src/client/receipt-log.ts; it lives here, in a layer, so that anyone can verify a log without the
 * client: `<dir>/log.jsonl` (one JSON line per receipt, hash-chained) and `<dir>/certs/<sha256>.der` (each
 * worker certificate once, by the SHA-256 of its DER).
 */

/** Under a client's data dir. */
export const RECEIPTS_DIR = 'receipts';
export const LOG_FILE = 'log.jsonl';
export const CERTS_DIR = 'certs';
/** The `prev` of the first entry. */
export const GENESIS = '0'.repeat(64);
/** A line is at most a few KB (a receipt's strings are bounded); anything longer is not one of ours. */
export const MAX_LINE_BYTES = 16 * 1024;

export const receiptsDir = (dataDir: string) => join(dataDir, RECEIPTS_DIR);
export const logPath = (dir: string) => join(dir, LOG_FILE);
export const certPath = (dir: string, hash: string) => join(dir, CERTS_DIR, `${hash}.der`);

const hex32 = z.string().regex(/^[0-9a-f]{64}$/);
export const logLineSchema = z.strictObject({
  seq: z.number().int().min(1),
  prev: hex32,
  receipt: receiptSchema,
  entry: hex32,
});
export type LogLine = z.infer<typeof logLineSchema>;

/**
 * entry = SHA-256(prev ‖ u64be(seq) ‖ canonical receipt bytes ‖ signature): each entry commits to every
 * entry before it, and to the whole receipt (its signature too), so an anchored head fixes the log.
 */
export function entryHash(prev: string, seq: number, receipt: Receipt): string {
  const seqBytes = Buffer.alloc(8);
  seqBytes.writeBigUInt64BE(BigInt(seq));
  const { signature, ...unsigned } = receipt;
  return createHash('sha256')
    .update(Buffer.from(prev, 'hex'))
    .update(seqBytes)
    .update(receiptBytes(unsigned))
    .update(Buffer.from(signature, 'hex'))
    .digest('hex');
}

/** One line as written: the log's own serialization (the key order of the schema). */
export function formatLogLine(line: LogLine): string {
  return `${JSON.stringify({ seq: line.seq, prev: line.prev, receipt: line.receipt, entry: line.entry })}\n`;
}

/** Parses one line's text (without its newline); a string saying what is wrong if it is not a log line. */
export function parseLogLine(text: string): LogLine | string {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    return 'not valid JSON';
  }
  const r = logLineSchema.safeParse(json);
  if (!r.success) {
    const i = r.error.issues[0]!;
    return `malformed: ${i.path.join('.') || '(line)'}: ${i.message}`;
  }
  return r.data;
}

export interface RawLine {
  /** 1-based line number in the file. */
  lineNo: number;
  /** Byte offset of the line in the file. */
  offset: number;
  /** The parsed line, or what is wrong with it. */
  line: LogLine | string;
}

/**
 * The log's complete lines in order, read in chunks (a line longer than MAX_LINE_BYTES is reported, not
 * buffered). Bytes after the last newline — a write cut off by a crash — are not a line: they end the
 * iteration as `{ torn }`. With `containing`, only lines holding that text are parsed and yielded.
 */
export async function* readLogLines(
  path: string,
  containing?: string,
): AsyncGenerator<RawLine, { torn: TornTail | null }> {
  const fh = await open(path, 'r');
  try {
    const chunk = Buffer.alloc(64 * 1024);
    let readTo = 0; // file offset of the next byte to read
    let lineStart = 0;
    let lineNo = 0;
    let carry: Buffer[] = []; // the current line's bytes so far, unless it is already too long
    let carried = 0;
    let overlong = false;
    for (;;) {
      const { bytesRead } = await fh.read(chunk, 0, chunk.length, null);
      if (bytesRead === 0) break;
      const data = chunk.subarray(0, bytesRead);
      let from = 0;
      for (let nl = data.indexOf(0x0a); nl >= 0; nl = data.indexOf(0x0a, from)) {
        lineNo++;
        const text = overlong ? null : Buffer.concat([...carry, data.subarray(from, nl)]);
        if (text === null || text.length > MAX_LINE_BYTES) {
          if (containing === undefined)
            yield { lineNo, offset: lineStart, line: `longer than ${MAX_LINE_BYTES} bytes` };
        } else if (containing === undefined || text.includes(containing)) {
          yield { lineNo, offset: lineStart, line: parseLogLine(text.toString('utf8')) };
        }
        lineStart = readTo + nl + 1;
        from = nl + 1;
        carry = [];
        carried = 0;
        overlong = false;
      }
      const rest = data.subarray(from);
      if (!overlong && carried + rest.length > MAX_LINE_BYTES) {
        overlong = true; // keep counting its bytes, not holding them
        carry = [];
      } else if (!overlong) {
        carry.push(Buffer.from(rest));
        carried += rest.length;
      }
      readTo += bytesRead;
    }
    return { torn: readTo > lineStart ? { offset: lineStart, bytes: readTo - lineStart } : null };
  } finally {
    await fh.close();
  }
}

export interface TornTail {
  /** Where the torn bytes start (the end of the last complete line). */
  offset: number;
  bytes: number;
}

// ─── verification ───

export type ProblemCode =
  | 'malformed_line'
  | 'seq_gap'
  | 'prev_mismatch'
  | 'entry_mismatch'
  | 'bad_signature'
  | 'duplicate_seqno'
  | 'certificate_missing'
  | 'certificate_corrupt'
  | 'certificate_refused'
  | 'certificate_not_worker'
  | 'certificate_key_mismatch'
  | 'tier_mismatch'
  | 'image_mismatch'
  | 'model_not_attested'
  | 'not_found';

export interface Problem {
  /** The entry's `seq`; null when its line cannot be read. */
  seq: number | null;
  /** Its line in the file (1-based); null for a receipt not found. */
  line: number | null;
  requestId: string | null;
  code: ProblemCode;
  /** One line naming the entry: "entry 7 (req-abc): signature does not verify with worker key 1f2e…". */
  message: string;
}

export interface AuditOptions {
  /** The attestation verifiers of the trust mode (`trustSetup(mode).verifiers`). */
  verifiers: ReadonlyMap<string, AttestationVerifier>;
}

export interface AuditReport {
  /** Complete lines read. */
  entries: number;
  problems: Problem[];
  /** Bytes after the last complete line (a crash mid-write): never an acknowledged receipt. */
  torn: TornTail | null;
  /** `entry` of the last line: the head to anchor elsewhere, so that dropping newer lines shows. */
  head: string | null;
}

const short = (hex: string) => `${hex.slice(0, 8)}…`;

/** Checks the chain's links line by line; each line is judged against the line before it. */
class ChainCheck {
  private expectedSeq = 1;
  private prevEntry = GENESIS;

  check(l: LogLine, problem: (code: ProblemCode, msg: string) => void): void {
    if (l.seq !== this.expectedSeq) {
      const msg =
        l.seq > this.expectedSeq
          ? `seq ${l.seq} follows ${this.expectedSeq - 1}: entries ${this.expectedSeq}..${l.seq - 1} are missing`
          : `seq ${l.seq} follows ${this.expectedSeq - 1}: out of order or repeated`;
      problem('seq_gap', msg);
    }
    if (l.prev !== this.prevEntry) {
      problem(
        'prev_mismatch',
        `prev ${short(l.prev)} is not the previous entry's hash ${short(this.prevEntry)}`,
      );
    }
    const computed = entryHash(l.prev, l.seq, l.receipt);
    if (computed !== l.entry) {
      problem(
        'entry_mismatch',
        `entry hash ${short(l.entry)} does not match its contents (computed ${short(computed)})`,
      );
    }
    this.expectedSeq = l.seq + 1;
    this.prevEntry = l.entry;
  }
}

type CertVerdict =
  | { identity: PeerIdentity; notBefore: number; notAfter: number }
  | { problem: string; code: ProblemCode };

/**
 * Judges the stored certificates behind receipts: the file exists and hashes to its name, and the
 * certificate verifies (signature, claims, quote) at the receipt's time. A verification is kept and reused
 * for the next receipt inside the certificate's validity window: a log holds many receipts per certificate.
 */
class CertificateJudge {
  private readonly verdicts = new Map<string, CertVerdict>();

  constructor(
    private readonly dir: string,
    private readonly verifiers: ReadonlyMap<string, AttestationVerifier>,
  ) {}

  async judge(hash: string, time: number): Promise<CertVerdict> {
    const known = this.verdicts.get(hash);
    if (known && ('problem' in known || (time >= known.notBefore && time <= known.notAfter))) return known;
    const der = await this.read(hash);
    if (!Buffer.isBuffer(der)) return der;
    if (sha256Hex(der) !== hash) {
      const v = {
        problem: `stored certificate ${short(hash)} does not hash to its name`,
        code: 'certificate_corrupt',
      } as const;
      this.verdicts.set(hash, v);
      return v;
    }
    try {
      const identity = await verifyPeerCertificate(der, { verifiers: this.verifiers, now: new Date(time) });
      const cert = new x509.X509Certificate(der);
      const v = { identity, notBefore: cert.notBefore.getTime(), notAfter: cert.notAfter.getTime() };
      this.verdicts.set(hash, v);
      return v;
    } catch (err) {
      // Not kept: a refusal may depend on the time (expired at this receipt, valid at another).
      const why = err instanceof Error ? err.message : String(err);
      return {
        problem: `certificate ${short(hash)} is refused at the receipt's time: ${why}`,
        code: 'certificate_refused',
      };
    }
  }

  private async read(hash: string): Promise<Buffer | Extract<CertVerdict, { problem: string }>> {
    const path = certPath(this.dir, hash);
    const st = await stat(path).catch(() => null);
    if (!st?.isFile()) {
      return { problem: `certificate ${short(hash)} is not stored (${path})`, code: 'certificate_missing' };
    }
    if (st.size > MAX_CERTIFICATE_BYTES) {
      return {
        problem: `stored certificate ${short(hash)} is ${st.size} bytes`,
        code: 'certificate_corrupt',
      };
    }
    return readFile(path);
  }
}

/** Checks one receipt: its signature, then the attestation behind it. */
async function checkReceipt(
  r: Receipt,
  certs: CertificateJudge,
  problem: (code: ProblemCode, msg: string) => void,
): Promise<void> {
  if (!verifyReceiptSignature(r, r.worker)) {
    problem('bad_signature', `signature does not verify with worker key ${short(r.worker)}`);
  }
  const v = await certs.judge(r.certificate, r.time);
  if ('problem' in v) {
    problem(v.code, v.problem);
    return;
  }
  const { claims, attestation, role } = v.identity;
  if (role !== 'worker')
    problem('certificate_not_worker', `certificate ${short(r.certificate)} is a ${role}'s`);
  if (claims.publicKey !== r.worker) {
    problem(
      'certificate_key_mismatch',
      `certificate ${short(r.certificate)} names key ${short(claims.publicKey)}, not worker ${short(r.worker)}`,
    );
  }
  if (attestation.tier !== r.tier) {
    problem('tier_mismatch', `receipt says tier ${r.tier}, the attestation proves ${attestation.tier}`);
  }
  if (attestation.imageHash !== r.image) {
    problem(
      'image_mismatch',
      `receipt says image ${short(r.image)}, the attestation measures ${short(attestation.imageHash)}`,
    );
  }
  if (claims.models && !claims.models.includes(r.model)) {
    problem('model_not_attested', `model '${r.model}' is not among the certificate's models`);
  }
}

/** Collects problems, each message naming its entry. */
function problemSink(problems: Problem[], lineNo: number, seq: number | null, requestId: string | null) {
  const who = seq === null ? `line ${lineNo}` : `entry ${seq}${requestId ? ` (${requestId})` : ''}`;
  return (code: ProblemCode, msg: string) =>
    problems.push({ seq, line: lineNo, requestId, code, message: `${who}: ${msg}` });
}

/**
 * Verifies a whole log: the chain (seq without gaps, prev links, entry hashes), each receipt's signature
 * with its worker key, no worker seqno twice, and the stored certificate behind each receipt (it exists,
 * names the worker's key, verifies at the receipt's time, attests its tier, image and model).
 * Read only: nothing is written, a torn tail is reported, not cut.
 */
export async function verifyLog(dir: string, opts: AuditOptions): Promise<AuditReport> {
  const problems: Problem[] = [];
  const chain = new ChainCheck();
  const certs = new CertificateJudge(dir, opts.verifiers);
  // Receipts are signed, but the chain is not: a rewritten log could repeat one. A worker signs each
  // seqno once, so a repeat is a copy (memory: one short string per receipt).
  const seen = new Map<string, number>();
  let entries = 0;
  let head: string | null = null;
  const lines = readLogLines(logPath(dir));
  let next = await lines.next();
  for (; !next.done; next = await lines.next()) {
    entries++;
    const { lineNo, line } = next.value;
    if (typeof line === 'string') {
      problemSink(problems, lineNo, null, null)('malformed_line', line);
      continue;
    }
    const sink = problemSink(problems, lineNo, line.seq, line.receipt.requestId);
    chain.check(line, sink);
    head = line.entry;
    const key = `${line.receipt.worker}:${line.receipt.seqno}`;
    const first = seen.get(key);
    if (first !== undefined) {
      sink(
        'duplicate_seqno',
        `worker ${short(line.receipt.worker)} seqno ${line.receipt.seqno} already in entry ${first}`,
      );
    } else seen.set(key, line.seq);
    await checkReceipt(line.receipt, certs, sink);
  }
  return { entries, problems, torn: next.value.torn, head };
}

/**
 * Verifies the receipt(s) with this request id: the chain's links up to it (hashes only; receipts before
 * it are not checked), then the receipt itself and its certificate.
 */
export async function verifyOne(
  dir: string,
  id: string,
  opts: AuditOptions,
): Promise<{ found: LogLine | null; problems: Problem[] }> {
  const problems: Problem[] = [];
  const chain = new ChainCheck();
  const certs = new CertificateJudge(dir, opts.verifiers);
  let found: LogLine | null = null;
  let chainProblems: Problem[] = [];
  for await (const { lineNo, line } of readLogLines(logPath(dir))) {
    if (typeof line === 'string') {
      problemSink(chainProblems, lineNo, null, null)('malformed_line', line);
      continue;
    }
    chain.check(line, problemSink(chainProblems, lineNo, line.seq, line.receipt.requestId));
    if (line.receipt.requestId !== id) continue;
    // Chain problems up to this entry belong to it; later ones do not.
    problems.push(...chainProblems);
    chainProblems = [];
    found = line;
    await checkReceipt(line.receipt, certs, problemSink(problems, lineNo, line.seq, id));
  }
  if (!found)
    problems.push({
      seq: null,
      line: null,
      requestId: id,
      code: 'not_found',
      message: `no receipt with id ${id}`,
    });
  return { found, problems };
}
