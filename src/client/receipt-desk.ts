import type { ServerResponse } from 'node:http';
import { NotFoundError, ProtocolError } from '../errors.ts';
import { sendJson } from '../ops/http.ts';
import type { CorsHeaders } from '../ops/http-guard.ts';
import { parseReceipt, type Receipt, verifyReceiptSignature } from '../protocol/receipt.ts';
import { ReceiptLog } from './receipt-log.ts';
import type { CheckedWorker } from './worker-check.ts';

/** Where `GET /v1/receipts/{id}` lives. */
export const RECEIPTS_PREFIX = '/v1/receipts/';

/** What the client knows of a reply on its own: the receipt must say exactly this. */
export interface ReplyFacts {
  requestId: string;
  worker: CheckedWorker;
  /** The proxy the request went through (its Ed25519 key). */
  proxy: string;
  requestHash: string;
  replyHash: string;
}

/**
 * The client's receipts: each reply's receipt is checked against what the client itself sent, received
 * and verified (the worker's key and certificate, the hashes of the request and of the reply as read, the
 * model, image and tier), then kept in the hash-chained log (src/client/receipt-log.ts) before the reply
 * is released, and served by id. A receipt that does not match is a 502 `bad_receipt`, counted.
 */
export class ReceiptDesk {
  private constructor(
    private readonly log: ReceiptLog,
    private readonly refusals: Record<string, number>,
  ) {}

  static async open(dir: string, refusals: Record<string, number>, syncIntervalMs = 0): Promise<ReceiptDesk> {
    return new ReceiptDesk(await ReceiptLog.open(dir, { syncIntervalMs }), refusals);
  }

  /** Checks the receipt of a reply, and keeps it durably. */
  async accept(raw: unknown, facts: ReplyFacts): Promise<Receipt> {
    let receipt: Receipt;
    try {
      receipt = parseReceipt(raw);
      const why = mismatch(receipt, facts);
      if (why) throw new ProtocolError(`the worker's receipt ${why}`, 'bad_receipt');
    } catch (err) {
      this.refusals.bad_receipt = (this.refusals.bad_receipt ?? 0) + 1;
      throw new ProtocolError((err as Error).message, 'bad_receipt');
    }
    await this.log.append(receipt, facts.worker.peer.certificate);
    return receipt;
  }

  /** `GET /v1/receipts/{id}`: the receipt, its place in the log, 404 if there is none. */
  async serve(res: ServerResponse, path: string, cors: CorsHeaders): Promise<void> {
    const id = decodeURIComponent(path.slice(RECEIPTS_PREFIX.length));
    const line = /^[A-Za-z0-9._~:+/=-]{1,100}$/.test(id) ? await this.log.get(id) : null;
    if (!line) throw new NotFoundError(`No receipt '${id}' in this client's log.`, 'receipt_not_found');
    sendJson(res, 200, { id, seq: line.seq, entry: line.entry, receipt: line.receipt }, cors);
  }

  get entries(): number {
    return this.log.length;
  }

  close(): Promise<void> {
    return this.log.close();
  }
}

/** What in the receipt differs from what the client saw itself (null: nothing). */
function mismatch(r: Receipt, f: ReplyFacts): string | null {
  const w = f.worker;
  if (r.worker !== w.peer.publicKey) return 'is signed by another key than the worker checked';
  if (!verifyReceiptSignature(r, w.peer.publicKey)) return 'signature does not verify';
  if (r.requestId !== f.requestId) return `names request ${r.requestId}`;
  if (r.certificate !== w.certificateHash.toString('hex')) return 'names another certificate';
  if (r.requestHash !== f.requestHash) return 'is for another request body';
  if (r.replyHash !== f.replyHash) return 'is for another reply than the one received';
  if (r.proxy !== f.proxy) return 'names another proxy';
  const s = w.serving;
  if (r.model !== s.model || r.image !== s.image || r.tier !== s.tier) {
    return `names ${r.model} / ${r.image} / ${r.tier}, not what the certificate attests`;
  }
  return null;
}
