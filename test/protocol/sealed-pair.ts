import type { E2EKey } from '../../src/attest/e2e-key.ts';
import { openRequest, requestAad, sealRequest } from '../../src/protocol/sealing/index.ts';

/** A request sealed by the real client side and opened by the real worker side: what each keeps for the reply. */
export async function sealedPair(key: E2EKey, maxBytes = 8 << 20) {
  const aad = requestAad({ requestId: 'r1', model: 'm', workerCertHash: Buffer.alloc(32, 1) });
  const client = await sealRequest({
    recipientPublicKey: key.publicKeyHex,
    plaintext: Buffer.from('{}'),
    aad,
    maxReplyPartBytes: maxBytes,
  });
  const worker = await openRequest({ key: key.keyPair, sealed: client.sealed, aad, maxBytes });
  return { client, worker };
}
