import { type FileHandle, mkdir, open, readdir, rename, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { parseReceipt, type Receipt, sha256Hex } from '../protocol/receipt.ts';
import {
  CERTS_DIR,
  certPath,
  entryHash,
  formatLogLine,
  GENESIS,
  type LogLine,
  logPath,
  MAX_LINE_BYTES,
  parseLogLine,
  readLogLines,
  type TornTail,
} from '../protocol/receipt-audit.ts';

/**
 * The client's receipt log (docs/receipts.md): append-only, hash-chained, in `<dataDir>/receipts`, with
 * the certificate behind each receipt stored once by its SHA-256 so the log can be audited offline.
 *
 * One process owns the log: appends are ordered and chained in memory, so two writers would fork the
 * chain. Within that process any number of appends may run at once. An append resolves only once its line
 * (and its certificate) are on disk; appends made while a write is pending share the next write and fsync
 * (group commit), so under load a request costs a hash and a share of one fsync, not an fsync of its own.
 *
 * A crash can leave the last line torn (no newline: lines are written whole, newline last). `open` cuts
 * exactly those bytes — they were never acknowledged — reports them in `torn`, and continues the chain from
 * the last complete line. Anything else unreadable at the end of the log is not a crash's doing: `open`
 * refuses it (`corrupt`) rather than chain new receipts onto it.
 */

export type ReceiptLogErrorCode =
  | 'corrupt'
  | 'failed'
  | 'closed'
  | 'invalid_receipt'
  | 'certificate_mismatch';

export class ReceiptLogError extends Error {
  constructor(
    readonly code: ReceiptLogErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'ReceiptLogError';
  }
}

export interface ReceiptLogOptions {
  /** Request ids whose line offset is kept in memory for `get`; older ones are found by a scan. */
  indexLimit?: number;
  /**
   * 0 (default): an append resolves once its line is fsynced. Above 0: once it is written (in the page
   * cache, so a crash of the process loses nothing), with an fsync at most this many ms later: an
   * operating-system crash or a power cut may lose the receipts of that last moment, never tear the chain.
   */
  syncIntervalMs?: number;
}

export interface AppendResult {
  seq: number;
  entry: string;
}

/** What the log did, for tests and metrics: group commit shows as `syncs` well below `appends`. */
export interface ReceiptLogStats {
  appends: number;
  writes: number;
  syncs: number;
  certificates: number;
}

interface Pending {
  bytes: Buffer;
  requestId: string;
  result: AppendResult;
  /** A certificate not on disk yet, carried by the first pending entry that needs it. */
  certificate: { hash: string; der: Buffer } | null;
  resolve: (r: AppendResult) => void;
  reject: (err: Error) => void;
}

export const DEFAULT_INDEX_LIMIT = 65_536;

export class ReceiptLog {
  readonly stats: ReceiptLogStats = { appends: 0, writes: 0, syncs: 0, certificates: 0 };
  private readonly index = new Map<string, number>();
  private readonly certsQueued = new Set<string>();
  private pending: Pending[] = [];
  private scheduled = false;
  private flushing = false;
  private idle: Promise<void> = Promise.resolve();
  private failure: ReceiptLogError | null = null;
  private closed = false;

  private constructor(
    readonly dir: string,
    private readonly fh: FileHandle,
    /** Where the next line goes: the end of the last complete line. */
    private size: number,
    private seq: number,
    private head: string,
    private readonly certs: Set<string>,
    /** The bytes `open` cut after the last complete line, if a crash left some. */
    readonly torn: TornTail | null,
    private readonly indexLimit: number,
    private readonly syncIntervalMs: number,
  ) {}

  private syncTimer: NodeJS.Timeout | null = null;

  /** Opens (or creates) the log in `dir`, cutting a torn last line, and continues its chain. */
  static async open(dir: string, opts: ReceiptLogOptions = {}): Promise<ReceiptLog> {
    await mkdir(join(dir, CERTS_DIR), { recursive: true, mode: 0o700 });
    const path = logPath(dir);
    const created = !(await stat(path).catch(() => null));
    if (created) {
      await (await open(path, 'a', 0o600)).close();
      await syncDir(dir);
      await syncDir(dirname(dir));
    }
    const fh = await open(path, 'r+');
    try {
      const size = (await fh.stat()).size;
      const tail = await readTail(fh, size);
      let torn: TornTail | null = null;
      if (tail.end < size) {
        torn = { offset: tail.end, bytes: size - tail.end };
        await fh.truncate(tail.end);
        await fh.datasync();
      }
      const last = tail.last === null ? null : lastLine(path, tail.last);
      const certs = new Set(
        (await readdir(join(dir, CERTS_DIR)))
          .filter((n) => /^[0-9a-f]{64}\.der$/.test(n))
          .map((n) => n.slice(0, 64)),
      );
      return new ReceiptLog(
        dir,
        fh,
        tail.end,
        last?.seq ?? 0,
        last?.entry ?? GENESIS,
        certs,
        torn,
        opts.indexLimit ?? DEFAULT_INDEX_LIMIT,
        opts.syncIntervalMs ?? 0,
      );
    } catch (err) {
      await fh.close();
      throw err;
    }
  }

  /** Entries in the log (acknowledged or about to be). */
  get length(): number {
    return this.seq;
  }

  /**
   * Appends a receipt the client has verified, with the DER of the certificate it was verified against.
   * Resolves with its place in the chain once it is durable; rejects if it could not be written (then the
   * log refuses all further appends until it is reopened: the chain in memory is ahead of the file).
   */
  append(receipt: Receipt, certificateDer: Uint8Array): Promise<AppendResult> {
    if (this.failure) return Promise.reject(this.failure);
    if (this.closed) return Promise.reject(new ReceiptLogError('closed', 'receipt log is closed'));
    // Parsed (once per receipt) so that the log never holds a line its reader would refuse, nor stray keys.
    let r: Receipt;
    try {
      r = parseReceipt(receipt);
    } catch {
      return Promise.reject(new ReceiptLogError('invalid_receipt', 'not a valid receipt'));
    }
    const hash = sha256Hex(certificateDer);
    if (hash !== r.certificate) {
      return Promise.reject(
        new ReceiptLogError('certificate_mismatch', `receipt ${r.requestId} names another certificate`),
      );
    }
    const seq = this.seq + 1;
    const entry = entryHash(this.head, seq, r);
    const bytes = Buffer.from(formatLogLine({ seq, prev: this.head, receipt: r, entry }));
    this.seq = seq;
    this.head = entry;
    this.stats.appends++;
    const newCert = !this.certs.has(hash) && !this.certsQueued.has(hash);
    if (newCert) this.certsQueued.add(hash);
    return new Promise((resolve, reject) => {
      this.pending.push({
        bytes,
        requestId: r.requestId,
        result: { seq, entry },
        certificate: newCert ? { hash, der: Buffer.from(certificateDer) } : null,
        resolve,
        reject,
      });
      this.schedule();
    });
  }

  /** The newest entry for this request id, or null. */
  async get(id: string): Promise<LogLine | null> {
    const offset = this.index.get(id);
    if (offset !== undefined) {
      const line = await this.readAt(offset);
      if (line && line.receipt.requestId === id) return line;
    }
    let found: LogLine | null = null;
    // Only lines holding the id are parsed (ids are never escaped in JSON: see the receipt schema).
    for await (const raw of readLogLines(logPath(this.dir), id)) {
      if (typeof raw.line !== 'string' && raw.line.receipt.requestId === id) found = raw.line;
    }
    return found;
  }

  /** Every line in order, parsed; a line that does not parse is a `corrupt` error. */
  async *entries(): AsyncGenerator<LogLine> {
    for await (const { lineNo, line } of readLogLines(logPath(this.dir))) {
      if (typeof line === 'string')
        throw new ReceiptLogError('corrupt', `${this.dir} line ${lineNo} is ${line}`);
      yield line;
    }
  }

  /** Waits for pending appends, then closes the file. */
  async close(): Promise<void> {
    this.closed = true;
    while (this.flushing || this.scheduled) {
      await (this.flushing ? this.idle : new Promise((r) => setImmediate(r)));
    }
    if (this.syncTimer) {
      clearTimeout(this.syncTimer);
      this.syncTimer = null;
      await this.fh.datasync();
    }
    await this.fh.close();
  }

  private schedule(): void {
    if (this.scheduled || this.flushing) return; // a running flush takes what is pending when it ends
    this.scheduled = true;
    // setImmediate, not a microtask: every append of this turn of the event loop joins the batch.
    setImmediate(() => {
      this.scheduled = false;
      this.flushing = true;
      this.idle = this.flushAll();
    });
  }

  private async flushAll(): Promise<void> {
    try {
      while (this.pending.length > 0 && !this.failure) {
        const batch = this.pending;
        this.pending = [];
        try {
          await this.commit(batch);
        } catch (err) {
          this.fail(err, batch);
          return;
        }
        for (const p of batch) p.resolve(p.result);
      }
    } finally {
      // Cleared in the same turn as the last resolve, before any caller's continuation can append again.
      this.flushing = false;
    }
  }

  private fail(err: unknown, batch: Pending[]): void {
    this.failure = new ReceiptLogError(
      'failed',
      `receipt log ${this.dir}: ${err instanceof Error ? err.message : String(err)}; reopen the log to continue`,
    );
    for (const p of [...batch, ...this.pending]) p.reject(this.failure);
    this.pending = [];
  }

  /** One batch: its new certificates (each durable first), then all its lines in one write and one fsync. */
  private async commit(batch: Pending[]): Promise<void> {
    for (const p of batch) {
      if (!p.certificate) continue;
      await storeCertificate(this.dir, p.certificate.hash, p.certificate.der);
      this.certs.add(p.certificate.hash);
      this.certsQueued.delete(p.certificate.hash);
      this.stats.certificates++;
    }
    const data = Buffer.concat(batch.map((p) => p.bytes));
    await writeAll(this.fh, data, this.size);
    this.stats.writes++;
    if (this.syncIntervalMs > 0) this.syncSoon();
    else {
      await this.fh.datasync();
      this.stats.syncs++;
    }
    let offset = this.size;
    for (const p of batch) {
      this.remember(p.requestId, offset);
      offset += p.bytes.length;
    }
    this.size += data.length;
  }

  /** One fsync for everything written in the last interval. */
  private syncSoon(): void {
    if (this.syncTimer) return;
    this.syncTimer = setTimeout(() => {
      this.syncTimer = null;
      this.fh.datasync().then(
        () => this.stats.syncs++,
        (err) => this.fail(err, []),
      );
    }, this.syncIntervalMs);
  }

  /** Bounded: the oldest ids fall out first and are found by a scan. */
  private remember(id: string, offset: number): void {
    this.index.delete(id);
    this.index.set(id, offset);
    if (this.index.size > this.indexLimit) this.index.delete(this.index.keys().next().value!);
  }

  private async readAt(offset: number): Promise<LogLine | null> {
    const buf = Buffer.alloc(MAX_LINE_BYTES + 1);
    const { bytesRead } = await this.fh.read(buf, 0, buf.length, offset);
    const nl = buf.subarray(0, bytesRead).indexOf(0x0a);
    if (nl < 0) return null;
    const line = parseLogLine(buf.subarray(0, nl).toString('utf8'));
    return typeof line === 'string' ? null : line;
  }
}

/** The end of the last complete line (its newline + 1) and that line's text, reading back from the end. */
async function readTail(fh: FileHandle, size: number): Promise<{ end: number; last: string | null }> {
  const chunk = 64 * 1024;
  let tail = Buffer.alloc(0);
  let from = size;
  for (;;) {
    const lastNl = tail.lastIndexOf(0x0a);
    const prevNl = lastNl > 0 ? tail.lastIndexOf(0x0a, lastNl - 1) : -1;
    if (lastNl >= 0 && (prevNl >= 0 || from === 0)) {
      return { end: from + lastNl + 1, last: tail.subarray(prevNl + 1, lastNl).toString('utf8') };
    }
    if (from === 0) return { end: 0, last: null };
    const start = Math.max(0, from - chunk);
    const buf = Buffer.alloc(from - start);
    await fh.read(buf, 0, buf.length, start);
    tail = Buffer.concat([buf, tail]);
    from = start;
  }
}

/** The last complete line, which the chain continues from: it must parse and hash to its `entry`. */
function lastLine(path: string, text: string): LogLine {
  const line = parseLogLine(text);
  if (typeof line === 'string') {
    throw new ReceiptLogError('corrupt', `the last line of ${path} is ${line} (run cocoon receipts verify)`);
  }
  if (entryHash(line.prev, line.seq, line.receipt) !== line.entry) {
    throw new ReceiptLogError(
      'corrupt',
      `the last line of ${path} does not hash to its entry (run cocoon receipts verify)`,
    );
  }
  return line;
}

async function writeAll(fh: FileHandle, data: Buffer, position: number): Promise<void> {
  for (let done = 0; done < data.length; ) {
    const { bytesWritten } = await fh.write(data, done, data.length - done, position + done);
    done += bytesWritten;
  }
}

/** Written to a temporary name, synced, renamed, and the directory synced: never a half certificate. */
async function storeCertificate(dir: string, hash: string, der: Buffer): Promise<void> {
  const path = certPath(dir, hash);
  const tmp = `${path}.${process.pid}.tmp`;
  const fh = await open(tmp, 'w', 0o600);
  try {
    await writeAll(fh, der, 0);
    await fh.sync();
  } finally {
    await fh.close();
  }
  await rename(tmp, path);
  await syncDir(dirname(path));
}

async function syncDir(path: string): Promise<void> {
  const fh = await open(path, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}
