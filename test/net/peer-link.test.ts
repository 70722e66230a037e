import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { AttestationError } from '../../src/attest/errors.ts';
import { type CocoonError, PaymentRefusedError, ProtocolError } from '../../src/errors.ts';
import { backoffDelay, PeerLink } from '../../src/net/peer-link.ts';
import { anyRole, credentialsFor, startServer } from './peers.ts';

/** The `down` events of a link to a server that ends each session at once with `hangUp` (if given). */
async function downs(
  hangUp: CocoonError | null,
  n: number,
  onUp: (link: PeerLink) => void = () => {},
): Promise<{ retryInMs: number; refused: boolean; code: string | null }[]> {
  const server = await startServer();
  after(() => server.close());
  const seen = new Set<unknown>();
  const timer = setInterval(() => {
    for (const s of server.sessions) {
      if (seen.has(s)) continue;
      seen.add(s);
      if (hangUp) s.close(hangUp);
    }
  }, 1);
  after(() => clearInterval(timer));
  const link = new PeerLink({
    host: '127.0.0.1',
    port: server.port,
    credentials: await credentialsFor('client'),
    trust: anyRole,
    session: { hello: { role: 'client', name: 'link' } },
    minBackoffMs: 20,
    maxBackoffMs: 5000,
  });
  after(() => link.stop());
  const events: { retryInMs: number; refused: boolean; code: string | null }[] = [];
  await new Promise<void>((resolve) => {
    link.on('up', () => onUp(link));
    link.on('down', (err, { retryInMs, refused }) => {
      events.push({ retryInMs, refused, code: (err as CocoonError).code ?? null });
      if (events.length === n) {
        link.stop();
        resolve();
      }
    });
    link.start();
  });
  return events;
}

test('backoffDelay doubles from min to the cap, with ±25% jitter', () => {
  const mid = () => 0.5;
  assert.deepEqual(
    [0, 1, 2, 3, 10, 100].map((f) => backoffDelay(f, 100, 1000, mid)),
    [100, 200, 400, 800, 1000, 1000],
  );
  assert.equal(
    backoffDelay(0, 100, 1000, () => 0),
    75,
    '-25%',
  );
  assert.ok(Math.abs(backoffDelay(0, 100, 1000, () => 0.999_999) - 125) < 0.001, '+25%');
});

test('a peer that hangs up at once is re-dialled with growing backoff, not at the shortest delay', async () => {
  const d = await downs(new ProtocolError('go away', 'bad_peer'), 5);
  assert.ok(
    d.every((e) => e.code === 'bad_peer' && !e.refused),
    JSON.stringify(d),
  );
  // 20, 40, 80, 160, 320 ms (±25%): each step at least half again the one before.
  for (let i = 1; i < d.length; i++)
    assert.ok(d[i]!.retryInMs > d[i - 1]!.retryInMs * 1.2, JSON.stringify(d));
});

test('a session ended by a certificate expiry, however short, starts the backoff over', async () => {
  const d = await downs(
    new AttestationError('certificate_expired', 'peer certificate expired; reconnect'),
    5,
  );
  assert.ok(
    d.every((e) => e.code === 'certificate_expired' && e.retryInMs <= 25),
    `always near the 20 ms minimum (short-lived certificates keep being renewed): ${JSON.stringify(d)}`,
  );
});

test('a session we refuse is hung up and retried with growing backoff, marked refused; accepted() clears the refusal', async () => {
  const why = new PaymentRefusedError(
    'proxy contract X is not registered in the root',
    'proxy_not_registered',
  );
  let link: PeerLink | null = null;
  const d = await downs(null, 4, (l) => {
    link = l;
    l.refuse(why);
  });
  assert.ok(
    d.every((e) => e.refused && e.code === 'proxy_not_registered'),
    JSON.stringify(d),
  );
  for (let i = 1; i < d.length; i++)
    assert.ok(d[i]!.retryInMs > d[i - 1]!.retryInMs * 1.2, JSON.stringify(d));
  const l = link as PeerLink | null;
  assert.equal(l?.refusal, why, 'the refusal is kept for stats and 503s');
  l!.accepted();
  assert.equal(l!.refusal, null);
});
