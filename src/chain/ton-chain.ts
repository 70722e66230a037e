/**
 * How daemons reach TON: a TonClient (toncenter HTTP API v2) pointed at toncenter for testnet/mainnet or at
 * our local chain server for development. Same code path everywhere; the only local-only extras are
 * `/cocoon/info` (global id, chain time) and the dev faucet.
 */
import { type Address, Cell, type Contract, type OpenedContract } from '@ton/core';
import { TonClient } from '@ton/ton';
import { BadGatewayError, GatewayTimeoutError } from '../errors.ts';

export type TonNetwork = 'mainnet' | 'testnet' | 'local';

/** Global ids (config param 19) of the public networks. */
export const GLOBAL_IDS = { mainnet: -239, testnet: -3 } as const;

export interface TonChainOptions {
  /** toncenter-style endpoint: a base (".../api/v2", "http://127.0.0.1:8081") or the full ".../jsonRPC". */
  endpoint: string;
  apiKey?: string;
  /** Which network this is; decides the global id fallback and polling pace. Unset = find out. */
  network?: TonNetwork;
  /** Per-request timeout (default 30 s). */
  timeoutMs?: number;
}

export interface LocalChainInfo {
  label: string;
  globalId: number;
  now: number;
  seqno: number;
}

export interface WaitForOptions {
  /** Poll interval (default 1 s, 100 ms on a local chain). */
  intervalMs?: number;
  /** What is being waited for, for the timeout message. */
  what?: string;
}

export class TonChain {
  readonly client: TonClient;
  /** The JSON-RPC URL TonClient posts to. */
  readonly endpoint: string;
  /** The endpoint without "/jsonRPC". */
  readonly baseUrl: string;
  readonly network: TonNetwork | undefined;
  private readonly apiKey: string | undefined;
  private readonly timeoutMs: number;
  private globalIdPromise: Promise<number> | null = null;

  private constructor(opts: TonChainOptions) {
    const trimmed = opts.endpoint.replace(/\/+$/, '');
    this.endpoint = trimmed.endsWith('/jsonRPC') ? trimmed : `${trimmed}/jsonRPC`;
    this.baseUrl = this.endpoint.slice(0, -'/jsonRPC'.length);
    this.network = opts.network;
    this.apiKey = opts.apiKey;
    this.timeoutMs = opts.timeoutMs ?? 30_000;
    this.client = new TonClient({ endpoint: this.endpoint, apiKey: opts.apiKey, timeout: this.timeoutMs });
  }

  static connect(opts: TonChainOptions): TonChain {
    return new TonChain(opts);
  }

  open<T extends Contract>(contract: T): OpenedContract<T> {
    return this.client.open(contract);
  }

  getBalance(address: Address): Promise<bigint> {
    return this.client.getBalance(address);
  }

  isDeployed(address: Address): Promise<boolean> {
    return this.client.isContractDeployed(address);
  }

  /** Poll interval that suits this network (local chains answer instantly; toncenter rate-limits). */
  get pollIntervalMs(): number {
    return this.network === 'local' ? 100 : 1000;
  }

  /**
   * The network's global id (config param 19), part of wallet ids and signed payloads. Local chain: from
   * /cocoon/info. Otherwise: param 19 via toncenter's getConfigParam, falling back to the known id of the
   * configured network (-239 mainnet, -3 testnet).
   */
  globalId(): Promise<number> {
    this.globalIdPromise ??= this.resolveGlobalId().catch((err) => {
      this.globalIdPromise = null;
      throw err;
    });
    return this.globalIdPromise;
  }

  /** /cocoon/info of a local chain server (fails against toncenter). */
  async localInfo(): Promise<LocalChainInfo> {
    const res = await this.http('GET', '/cocoon/info');
    return res as LocalChainInfo;
  }

  /** DEV ONLY, local chain: mints `amount` nanoton to `address`. */
  async localFaucet(address: Address, amount: bigint): Promise<{ balance: bigint }> {
    const res = (await this.http('POST', '/cocoon/faucet', {
      address: address.toString(),
      amount: amount.toString(),
    })) as { balance: string };
    return { balance: BigInt(res.balance) };
  }

  /** Polls `predicate` until it returns a truthy value; see `waitFor`. */
  waitFor<T>(predicate: () => T | Promise<T>, timeoutMs: number, opts: WaitForOptions = {}): Promise<T> {
    return waitFor(predicate, timeoutMs, { intervalMs: this.pollIntervalMs, ...opts });
  }

  private async resolveGlobalId(): Promise<number> {
    if (this.network !== 'mainnet' && this.network !== 'testnet') {
      try {
        return (await this.localInfo()).globalId;
      } catch (err) {
        if (this.network === 'local') throw err;
      }
    }
    try {
      const res = (await this.rpc('getConfigParam', { config_id: 19 })) as { config?: { bytes?: string } };
      const bytes = res.config?.bytes;
      if (bytes) return Cell.fromBase64(bytes).beginParse().loadInt(32);
    } catch (err) {
      if (!this.network) {
        throw new BadGatewayError(
          `Cannot read the global id (config param 19) from ${this.endpoint}: ${(err as Error).message}. ` +
            `Set the network (mainnet/testnet) explicitly.`,
        );
      }
    }
    if (this.network === 'mainnet' || this.network === 'testnet') return GLOBAL_IDS[this.network];
    throw new BadGatewayError(
      `Cannot determine the global id of ${this.endpoint}; set the network explicitly.`,
    );
  }

  private async rpc(method: string, params: Record<string, unknown>): Promise<unknown> {
    return this.http('POST', '/jsonRPC', { id: '1', jsonrpc: '2.0', method, params });
  }

  /** A toncenter-shaped call ({ok, result} / {ok: false, error}) to the base URL. */
  private async http(method: 'GET' | 'POST', path: string, body?: unknown): Promise<unknown> {
    const headers: Record<string, string> = { accept: 'application/json' };
    if (body !== undefined) headers['content-type'] = 'application/json';
    if (this.apiKey) headers['x-api-key'] = this.apiKey;
    let res: Response;
    try {
      res = await fetch(`${this.baseUrl}${path}`, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(this.timeoutMs),
      });
    } catch (err) {
      throw new BadGatewayError(`${method} ${this.baseUrl}${path} failed: ${(err as Error).message}`);
    }
    const text = await res.text();
    let json: { ok?: boolean; result?: unknown; error?: string } | null = null;
    try {
      json = JSON.parse(text);
    } catch {
      // not JSON: reported below
    }
    if (!res.ok || !json?.ok) {
      throw new BadGatewayError(
        `${method} ${this.baseUrl}${path}: HTTP ${res.status} ${json?.error ?? text.slice(0, 200)}`,
      );
    }
    return json.result;
  }
}

/**
 * Calls `predicate` every `intervalMs` until it returns a truthy value, which is returned. Errors thrown by
 * the predicate count as "not yet" (RPC hiccups) and are reported if the deadline passes.
 */
export async function waitFor<T>(
  predicate: () => T | Promise<T>,
  timeoutMs: number,
  opts: WaitForOptions = {},
): Promise<T> {
  const interval = opts.intervalMs ?? 1000;
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown = null;
  for (;;) {
    try {
      const v = await predicate();
      if (v) return v;
      lastError = null;
    } catch (err) {
      lastError = err;
    }
    const left = deadline - Date.now();
    if (left <= 0) {
      const why = lastError instanceof Error ? ` (last error: ${lastError.message})` : '';
      throw new GatewayTimeoutError(
        `Timed out after ${timeoutMs} ms waiting for ${opts.what ?? 'the chain'}${why}.`,
      );
    }
    await new Promise((r) => setTimeout(r, Math.min(interval, left)));
  }
}
