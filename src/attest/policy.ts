import { AttestationError } from './errors.ts';
import { parseModelIdentity } from './model-identity.ts';
import type { PeerIdentity } from './types.ts';

/**
 * Which images and models a node accepts from its peers, as the original COCOON's policies per role:
 * client → proxy image; proxy → worker image + model; worker → proxy image. `null` means unrestricted
 * (dev setups); a set — even an empty one — is enforced. The lists come from the root contract
 * (`src/chain/root-policy.ts`) or from config, through the same interface.
 */
export interface TrustLists {
  proxyImages: ReadonlySet<string> | null;
  workerImages: ReadonlySet<string> | null;
  /** Allowed model content hashes (hex); a worker must serve `name@revision:hash` with one of them. */
  models: ReadonlySet<string> | null;
}

export const UNRESTRICTED: TrustLists = { proxyImages: null, workerImages: null, models: null };

export interface PolicySource {
  current(): TrustLists;
  /** Called after the lists changed, so connected peers can be checked again. */
  onChange(listener: (lists: TrustLists) => void): void;
  stop?(): void;
}

/** Lists given once (config), or replaced by hand (tests, operators). */
export class StaticPolicy implements PolicySource {
  private listeners: ((l: TrustLists) => void)[] = [];
  constructor(private lists: TrustLists = UNRESTRICTED) {}

  static fromConfig(c: {
    allowedProxyImages?: string[];
    allowedWorkerImages?: string[];
    allowedModels?: string[];
  }) {
    const set = (xs?: string[]) => (xs ? new Set(xs.map((x) => x.toLowerCase())) : null);
    return new StaticPolicy({
      proxyImages: set(c.allowedProxyImages),
      workerImages: set(c.allowedWorkerImages),
      models: set(c.allowedModels),
    });
  }

  current(): TrustLists {
    return this.lists;
  }

  update(lists: TrustLists): void {
    this.lists = lists;
    for (const l of this.listeners) l(lists);
  }

  onChange(listener: (lists: TrustLists) => void): void {
    this.listeners.push(listener);
  }
}

/** The content hash in a model identity `name@revision:hash`, or null for a bare or malformed name. */
export function modelHashOf(identity: string): string | null {
  try {
    return parseModelIdentity(identity).hash;
  } catch {
    return null;
  }
}

/** Throws AttestationError (image_not_allowed / model_not_allowed) if the peer is not on the lists. */
export function checkPeerPolicy(peer: PeerIdentity, lists: TrustLists): void {
  const images =
    peer.role === 'proxy' ? lists.proxyImages : peer.role === 'worker' ? lists.workerImages : null;
  if (images && !images.has(peer.attestation.imageHash)) {
    throw new AttestationError(
      'image_not_allowed',
      `${peer.role} image ${peer.attestation.imageHash} is not on the allow-list`,
    );
  }
  if (peer.role === 'worker' && lists.models) {
    for (const model of peer.claims.models ?? []) {
      const hash = modelHashOf(model);
      if (!hash) {
        throw new AttestationError(
          'model_not_allowed',
          `model '${model}' has no content hash (serve it as name@revision:hash), and models are allow-listed`,
        );
      }
      if (!lists.models.has(hash)) {
        throw new AttestationError('model_not_allowed', `model '${model}' is not on the allow-list`);
      }
    }
  }
}
