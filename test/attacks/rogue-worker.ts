import { type E2EKey, generateE2EKey } from '../../src/attest/e2e-key.ts';
import { generateNodeKey, type NodeKey } from '../../src/attest/identity.ts';
import { makeCredentials, trustSetup } from '../../src/attest/trust-setup.ts';
import type { Session } from '../../src/net/session.ts';
import { dialPeer } from '../../src/net/tls.ts';
import type { ProxyNode } from '../../src/proxy/proxy-node.ts';

const dev = trustSetup('dev');

/**
 * A properly attested worker (dev tier, with an E2E key, so the proxy offers it to clients) that runs no
 * code of ours: the test answers its calls frame by frame, to misbehave as it likes.
 */
export async function rogueWorker(
  proxy: ProxyNode,
  model: string,
  over: {
    coefficient?: number;
    maxConcurrent?: number;
    name?: string;
    /** Models its certificate attests (default `[model]`; null: none at all). */
    attested?: string[] | null;
    /** Models its Hello announces (default `[model]`). */
    announced?: string[];
    /** Its node key (default: a new one). */
    key?: NodeKey;
    /** Its E2E key (default: a new one): given, the test can open what clients seal to it. */
    e2eKey?: E2EKey;
    /** Where its fees go (a paying proxy bills only workers that name one). */
    payoutAddress?: string;
  } = {},
): Promise<Session> {
  const e2eKey = over.e2eKey ?? (await generateE2EKey());
  const e2e = { suite: e2eKey.suite, publicKey: e2eKey.publicKeyHex };
  const attested = over.attested === null ? undefined : (over.attested ?? [model]);
  const extra = { e2e };
  const { credentials } = await makeCredentials(
    over.key ?? generateNodeKey(),
    'worker',
    dev.provider,
    attested,
    undefined,
    extra,
  );
  const announced = over.announced ?? [model];
  const { session } = await dialPeer({
    host: '127.0.0.1',
    port: proxy.workerPort,
    credentials,
    trust: { verifiers: dev.verifiers, roles: ['proxy'], minTier: 'dev' },
    session: {
      hello: {
        role: 'worker',
        name: over.name ?? 'rogue',
        info: {
          models: announced.map((name) => ({
            name,
            maxConcurrent: over.maxConcurrent ?? 1,
            coefficient: over.coefficient ?? 1000,
          })),
          ...(over.payoutAddress ? { payoutAddress: over.payoutAddress } : {}),
        },
      },
    },
  });
  return session;
}
