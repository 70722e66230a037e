import { closeSync, fsyncSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import type { NodeKey } from '../attest/identity.ts';
import { type Receipt, type ReceiptFields, signReceipt } from '../protocol/receipt.ts';

/** Receipt sequence numbers reserved on disk at a time: one small write per this many receipts. */
const SEQNO_BLOCK = 100_000n;
const SEQNO_FILE = 'receipt-seqno';

/**
 * Signs a worker's receipts with its node key (the key its certificate's claims name), numbering them so
 * that no two receipts of this key share a seqno, across restarts too: the file holds the end of the
 * block in use, written (atomically) before any seqno of the block is signed. A crash skips the rest of
 * its block; it never repeats one.
 */
export class ReceiptSigner {
  private constructor(
    private readonly key: NodeKey,
    private readonly path: string,
    private next: bigint,
    private reserved: bigint,
    private readonly now: () => number,
  ) {}

  static open(dataDir: string, key: NodeKey, now: () => number = Date.now): ReceiptSigner {
    const path = join(dataDir, SEQNO_FILE);
    let start = 0n;
    try {
      const text = readFileSync(path, 'utf8').trim();
      if (!/^\d{1,20}$/.test(text)) throw new Error(`${path} does not hold a receipt seqno`);
      start = BigInt(text);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    reserve(path, start + SEQNO_BLOCK);
    return new ReceiptSigner(key, path, start, start + SEQNO_BLOCK, now);
  }

  sign(fields: Omit<ReceiptFields, 'seqno' | 'time'>): Receipt {
    if (this.next >= this.reserved) {
      this.reserved += SEQNO_BLOCK;
      reserve(this.path, this.reserved);
    }
    const seqno = this.next++;
    return signReceipt({ ...fields, seqno: seqno.toString(), time: this.now() }, this.key);
  }
}

/** Durable before it returns: a power cut must not give back a block already signed from. */
function reserve(path: string, upTo: bigint): void {
  const tmp = `${path}.${process.pid}.tmp`;
  const fd = openSync(tmp, 'w', 0o600);
  try {
    writeSync(fd, `${upTo}\n`);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
}
