import { TRUST_TIER_RANK, type TrustTier } from '../attest/types.ts';
import { ModelNotFoundError, ServiceUnavailableError } from '../errors.ts';
import type { WorkerConnection, WorkerRegistry } from './worker-registry.ts';

/**
 * Picks the worker for a request, as the original COCOON does: among enabled, healthy workers serving the
 * model that are not full and whose price coefficient the caller accepts, the lowest expected wait wins.
 *
 * The original weighs `running × average_query_time`, which gives every idle worker weight 0, so an idle
 * slow worker ties with an idle fast one. We weigh `(running + 1) × average_query_time` — the time until
 * this request would finish if requests run back to back — which keeps the original's order under load and
 * prefers the faster worker when idle. A worker with no history yet weighs as the fastest known one, so
 * new workers get tried. A worker's failure rate scales its weight up, and cooled-down workers (see
 * PeerHealth) are skipped, as are the workers in `exclude` (those a re-dispatched request already tried).
 * Only when every eligible worker is cooling does the best of them get the request: a last resort that
 * may work beats a certain refusal (Envoy's "panic" routing does the same).
 */
export function chooseWorker(
  registry: WorkerRegistry,
  model: string,
  maxCoefficient: number,
  minTier: TrustTier = 'dev',
  exclude?: ReadonlySet<WorkerConnection>,
  now = Date.now(),
): WorkerConnection {
  const candidates = registry.serving(model);
  if (candidates.length === 0) {
    // A worker that served it has just left (a certificate's end, a restart): unavailable, not unknown.
    if (registry.recentlyServed(model, now)) {
      throw new ServiceUnavailableError(
        `No worker serves '${model}' right now (its workers are reconnecting); retry shortly.`,
        'no_worker_connected',
      ).retryAfterSeconds(1);
    }
    throw new ModelNotFoundError(model);
  }
  let fastest = Number.POSITIVE_INFINITY;
  for (const w of candidates) if (w.avgQueryMs !== null && w.avgQueryMs < fastest) fastest = w.avgQueryMs;
  if (!Number.isFinite(fastest)) fastest = 1;

  let best: WorkerConnection | null = null;
  let bestWeight = Number.POSITIVE_INFINITY;
  let cheapestTooExpensive = Number.POSITIVE_INFINITY;
  let full = 0;
  let lastResort: WorkerConnection | null = null;
  let lastResortWeight = Number.POSITIVE_INFINITY;
  let bestTierSeen: TrustTier | null = null;
  const required = TRUST_TIER_RANK[minTier];
  for (const w of candidates) {
    const m = w.model(model)!;
    if (!w.info.enabled || exclude?.has(w)) continue;
    // A hard requirement of the caller (privacy), checked before load or price.
    const tier = w.peer.attestation.tier;
    if (TRUST_TIER_RANK[tier] < required) {
      if (bestTierSeen === null || TRUST_TIER_RANK[tier] > TRUST_TIER_RANK[bestTierSeen]) bestTierSeen = tier;
      continue;
    }
    if (w.running >= m.maxConcurrent) {
      full++;
      continue;
    }
    if (m.coefficient > maxCoefficient) {
      cheapestTooExpensive = Math.min(cheapestTooExpensive, m.coefficient);
      continue;
    }
    const weight = (w.running + 1) * (w.avgQueryMs ?? fastest) * w.health.weightFactor;
    if (!w.health.admits(w.running, now)) {
      if (weight < lastResortWeight) {
        lastResort = w;
        lastResortWeight = weight;
      }
      continue;
    }
    if (weight < bestWeight) {
      best = w;
      bestWeight = weight;
    }
  }
  if (best) return best;
  if (lastResort) return lastResort;
  if (bestTierSeen !== null && full === 0 && !Number.isFinite(cheapestTooExpensive)) {
    throw new ServiceUnavailableError(
      `No worker for '${model}' offers trust tier '${minTier}' (min_trust_tier); the workers serving it prove at most '${bestTierSeen}'.`,
      'trust_tier_unavailable',
    );
  }
  if (Number.isFinite(cheapestTooExpensive)) {
    throw new ServiceUnavailableError(
      `No worker for '${model}' within max_coefficient=${maxCoefficient}; the cheapest available asks coefficient=${cheapestTooExpensive}.`,
      'coefficient_too_low',
    );
  }
  if (full > 0) {
    throw new ServiceUnavailableError(
      `All ${full} workers for '${model}' are at capacity; retry shortly.`,
      'workers_busy',
    ).retryAfterSeconds(1);
  }
  throw new ServiceUnavailableError(`No ready workers for '${model}'.`, 'no_ready_workers');
}
