import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';

/**
 * The API keys a daemon accepts. A presented key is hashed and compared with every key's hash in constant
 * time, all of them every time: neither the time taken nor where a comparison stops says how much of a
 * guess was right, or which key it was close to.
 */
export class ApiKeys {
  private readonly digests: Buffer[];

  constructor(keys: readonly string[]) {
    this.digests = keys.map(digest);
  }

  get enabled(): boolean {
    return this.digests.length > 0;
  }

  /** Whether `key` is one of ours. */
  accepts(key: string): boolean {
    const d = digest(key);
    let ok = 0;
    for (const k of this.digests) ok |= timingSafeEqual(d, k) ? 1 : 0;
    return ok === 1;
  }

  /**
   * The key a request presents: `Authorization: Bearer <key>` (what OpenAI SDKs send), or, where `basic`
   * is allowed, HTTP Basic with the key as password, so a browser can open the stats pages after its
   * login prompt.
   */
  static presented(req: IncomingMessage, basic: boolean): string | null {
    const auth = req.headers.authorization;
    if (!auth) return null;
    // RFC 9110 §11.1: the scheme is case-insensitive.
    const space = auth.indexOf(' ');
    const scheme = space < 0 ? '' : auth.slice(0, space).toLowerCase();
    const credentials = auth.slice(space + 1).trim();
    if (scheme === 'bearer') return credentials;
    if (basic && scheme === 'basic') {
      const decoded = Buffer.from(credentials, 'base64').toString('utf8');
      const colon = decoded.indexOf(':');
      return colon < 0 ? null : decoded.slice(colon + 1);
    }
    return null;
  }
}

function digest(key: string): Buffer {
  return createHash('sha256').update(key).digest();
}
