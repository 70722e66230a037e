import { beginCell, type Cell, type TupleReader, toNano } from '@ton/core';
import type { PriceList } from '../../pay/pricing.ts';

/** The network parameters the root contract publishes (`Params` in docs/payments.md). */
export interface RootParams extends PriceList {
  /** Must rise with every `set_params`. */
  paramsVersion: number;
  /** Seconds between `request_close` and `close`. */
  clientCloseDelay: number;
  proxyCloseDelay: number;
  minClientStake: bigint;
  minProxyStake: bigint;
}

export function paramsCell(p: RootParams): Cell {
  return beginCell()
    .storeUint(p.paramsVersion, 32)
    .storeCoins(p.pricePerToken)
    .storeCoins(p.workerFeePerToken)
    .storeUint(p.promptMult, 32)
    .storeUint(p.cachedMult, 32)
    .storeUint(p.completionMult, 32)
    .storeUint(p.reasoningMult, 32)
    .storeUint(p.clientCloseDelay, 32)
    .storeUint(p.proxyCloseDelay, 32)
    .storeCoins(p.minClientStake)
    .storeCoins(p.minProxyStake)
    .endCell();
}

export function parseParams(cell: Cell): RootParams {
  const s = cell.beginParse();
  const p: RootParams = {
    paramsVersion: s.loadUint(32),
    pricePerToken: s.loadCoins(),
    workerFeePerToken: s.loadCoins(),
    promptMult: s.loadUint(32),
    cachedMult: s.loadUint(32),
    completionMult: s.loadUint(32),
    reasoningMult: s.loadUint(32),
    clientCloseDelay: s.loadUint(32),
    proxyCloseDelay: s.loadUint(32),
    minClientStake: s.loadCoins(),
    minProxyStake: s.loadCoins(),
  };
  s.endParse();
  return p;
}

/** Reads the 11 integers `get_params` returns. */
export function readParams(r: TupleReader): RootParams {
  return {
    paramsVersion: r.readNumber(),
    pricePerToken: r.readBigNumber(),
    workerFeePerToken: r.readBigNumber(),
    promptMult: r.readNumber(),
    cachedMult: r.readNumber(),
    completionMult: r.readNumber(),
    reasoningMult: r.readNumber(),
    clientCloseDelay: r.readNumber(),
    proxyCloseDelay: r.readNumber(),
    minClientStake: r.readBigNumber(),
    minProxyStake: r.readBigNumber(),
  };
}

/** Local prices: 1000 nanoton per token, 800 of it the worker's; cached prompt tokens at half price. */
export const LOCAL_PARAMS: RootParams = {
  paramsVersion: 1,
  pricePerToken: 1000n,
  workerFeePerToken: 800n,
  promptMult: 10_000,
  cachedMult: 5_000,
  completionMult: 10_000,
  reasoningMult: 10_000,
  // A day for a client to leave (far above any proxy's settlement interval: what it signed is redeemed
  // before it can close), two for a proxy (workers redeem their payouts before its stake can go).
  clientCloseDelay: 86_400,
  proxyCloseDelay: 172_800,
  minClientStake: toNano('1'),
  minProxyStake: toNano('10'),
};
