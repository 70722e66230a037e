import { createHash } from 'node:crypto';
import { attestedModel } from '../attest/model-identity.ts';
import type { PeerIdentity } from '../attest/types.ts';
import { ProtocolError } from '../errors.ts';
import { PeerHealth } from '../net/peer-health.ts';
import type { Session } from '../net/session.ts';
import type { WorkerAccount } from '../pay/worker-account.ts';
import type { ControlMessage, WorkerInfo } from '../protocol/messages.ts';
import type { OfferedCertificates } from '../protocol/offered-certificates.ts';

/** A connected worker as the proxy sees it: what it serves, how loaded it is, how it has performed. */
export class WorkerConnection {
  running = 0;
  total = 0;
  succeeded = 0;
  failed = 0;
  /** Exponentially weighted mean of request duration, ms; null until the first request finishes. */
  avgQueryMs: number | null = null;
  readonly connectedAt = Date.now();
  /** What the proxy owes this worker's contract, when payments are on. */
  account: WorkerAccount | null = null;
  readonly health = new PeerHealth();

  constructor(
    readonly id: number,
    readonly name: string,
    readonly session: Session,
    readonly peer: PeerIdentity,
    public info: WorkerInfo,
  ) {}

  model(name: string) {
    return this.info.models.find((m) => m.name === name);
  }

  /**
   * What the proxy offers a client for a request on `model`: the client checks the certificate itself.
   * It goes whole the first time on the client's session, then by hash (`offered`, per session).
   */
  offer(requestId: string, model: string, offered: OfferedCertificates): ControlMessage {
    const byHash = offered.offeredBefore(this.certificateHash, this.peer.certificate);
    if (!byHash) this.certificateBase64 ??= this.peer.certificate.toString('base64');
    return {
      type: 'request.offer',
      requestId,
      ...(byHash ? { certificateHash: this.certificateHash } : { certificate: this.certificateBase64! }),
      coefficient: this.model(model)?.coefficient ?? 0,
      worker: this.name,
    };
  }

  /** SHA-256 (hex) of the certificate the worker presented: the one clients seal their requests to. */
  get certificateHash(): string {
    this.certHash ??= createHash('sha256').update(this.peer.certificate).digest('hex');
    return this.certHash;
  }

  private certificateBase64: string | undefined;
  private certHash: string | undefined;

  recordSuccess(durationMs: number): void {
    this.succeeded++;
    this.health.recordSuccess();
    // alpha 0.2: reacts within a few requests, smooths one-off outliers
    this.avgQueryMs = this.avgQueryMs === null ? durationMs : this.avgQueryMs * 0.8 + durationMs * 0.2;
  }

  /** A failure that was the worker's doing (lost, engine error, protocol violation) counts against it. */
  recordFailure(workerFault: boolean): void {
    this.failed++;
    if (workerFault) this.health.recordFailure();
  }
}

/**
 * Refuses a worker's announcement (Hello or `worker.status`) of a model its certificate does not attest.
 * The allow-lists are checked against the certificate's claims, so routing may use only what is in them:
 * otherwise a worker could serve any model by naming it in its Hello.
 */
export function checkAnnouncedModels(peer: PeerIdentity, info: WorkerInfo): void {
  for (const m of info.models) {
    if (attestedModel(peer.claims, m.name) === undefined) {
      throw new ProtocolError(
        `model '${m.name}' is not among the models your certificate attests`,
        'model_not_attested',
      );
    }
  }
}

/** All workers connected to this proxy, by id; grouped by the base model names they serve. */
/** How long a model stays "served here, no worker right now" (503) after its last worker left, not 404. */
export const RECENTLY_SERVED_MS = 10 * 60_000;
/** Models remembered so at most: workers that come and go with ever new model names cannot grow it. */
export const RECENTLY_SERVED_MAX = 4096;

export class WorkerRegistry {
  private readonly workers = new Map<number, WorkerConnection>();
  private nextId = 1;
  /** When the last worker serving each model left (oldest first; at most RECENTLY_SERVED_MAX). */
  private readonly leftAt = new Map<string, number>();

  add(session: Session, peer: PeerIdentity, name: string, info: WorkerInfo): WorkerConnection {
    const w = new WorkerConnection(this.nextId++, name, session, peer, info);
    this.workers.set(w.id, w);
    return w;
  }

  remove(w: WorkerConnection, now = Date.now()): void {
    this.workers.delete(w.id);
    for (const [m, at] of this.leftAt) {
      if (now - at <= RECENTLY_SERVED_MS) break; // in leaving order: the rest are newer
      this.leftAt.delete(m);
    }
    for (const m of w.info.models) {
      if (this.serving(m.name).length > 0) continue;
      this.leftAt.delete(m.name); // re-inserted last: the map stays in leaving order
      this.leftAt.set(m.name, now);
      if (this.leftAt.size > RECENTLY_SERVED_MAX) this.leftAt.delete(this.leftAt.keys().next().value!);
    }
  }

  /** No worker serves `model` now, but one did a moment ago (it is reconnecting, or restarting). */
  recentlyServed(model: string, now = Date.now()): boolean {
    const at = this.leftAt.get(model);
    return at !== undefined && now - at <= RECENTLY_SERVED_MS;
  }

  all(): WorkerConnection[] {
    return [...this.workers.values()];
  }

  get size(): number {
    return this.workers.size;
  }

  /** Workers serving `model`, in connection order. */
  serving(model: string): WorkerConnection[] {
    const out: WorkerConnection[] = [];
    for (const w of this.workers.values()) if (w.model(model)) out.push(w);
    return out;
  }

  models(): string[] {
    const names = new Set<string>();
    for (const w of this.workers.values()) for (const m of w.info.models) names.add(m.name);
    return [...names].sort();
  }
}
