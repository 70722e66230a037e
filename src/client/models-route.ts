import type { ServerResponse } from 'node:http';
import { BadRequestError, ModelNotFoundError, ServiceUnavailableError } from '../errors.ts';
import { sendJson } from '../ops/http.ts';
import { MAX_MODEL_NAME_CHARS } from '../protocol/limits.ts';
import { type ModelList, modelListSchema, parseMessage } from '../protocol/messages.ts';
import type { ProxyConnection } from './proxy-pool.ts';

/** The network's models: what every connected proxy serves, merged. */
export async function networkModels(proxies: readonly ProxyConnection[]): Promise<ModelList> {
  const sessions = proxies.flatMap((c) => (c.session && !c.draining ? [c.session] : []));
  if (sessions.length === 0) {
    throw new ServiceUnavailableError(
      'Not connected to any proxy; retry shortly.',
      'no_proxy',
    ).retryAfterSeconds(1);
  }
  const lists = await Promise.allSettled(
    sessions.map(async (session) => {
      const stream = session.openStream({ method: 'models' });
      stream.end();
      return parseMessage(modelListSchema, await stream.readAll(), 'model list');
    }),
  );
  const byId = new Map<string, ModelList['models'][number]>();
  let answered = 0;
  for (const l of lists) {
    if (l.status !== 'fulfilled') continue;
    answered++;
    for (const m of l.value.models) {
      const known = byId.get(m.id);
      if (known) known.workers.push(...m.workers);
      else byId.set(m.id, { id: m.id, workers: [...m.workers] });
    }
  }
  if (answered === 0) throw (lists[0] as PromiseRejectedResult).reason;
  return { models: [...byId.values()].sort((a, b) => (a.id < b.id ? -1 : 1)) };
}

/** The model id of `GET /v1/models/{id}`, percent-decoded; bad encoding or a too-long name is a 400. */
export function modelIdOf(path: string): string {
  let id: string;
  try {
    id = decodeURIComponent(path.slice(MODEL_PREFIX.length));
  } catch {
    throw new BadRequestError(
      'The model id in the URL is not valid percent-encoding (UTF-8 bytes as %XX).',
      'model',
      'invalid_url',
    );
  }
  if (id.length > MAX_MODEL_NAME_CHARS) {
    throw new BadRequestError(
      `Invalid 'model': must have at most ${MAX_MODEL_NAME_CHARS} characters, but got ${id.length}.`,
      'model',
      'invalid_value',
    );
  }
  return id;
}

export const MODEL_PREFIX = '/v1/models/';

/** `GET /v1/models` and `GET /v1/models/{id}` in OpenAI's shape, with the trust tiers each model's workers prove. */
export function sendModels(
  res: ServerResponse,
  list: ModelList,
  id: string | null,
  headers: Record<string, string>,
) {
  const data = list.models.map((m) => ({
    id: m.id,
    object: 'model',
    created: 0,
    owned_by: 'cocoon',
    // The trust tiers the workers serving it prove (what `min_trust_tier` can ask for).
    trust_tiers: [...new Set(m.workers.map((w) => w.tier ?? 'dev'))],
    workers: m.workers,
  }));
  if (id === null) {
    sendJson(res, 200, { object: 'list', data }, headers);
    return;
  }
  const model = data.find((m) => m.id === id);
  if (!model) throw new ModelNotFoundError(id);
  sendJson(res, 200, model, headers);
}
