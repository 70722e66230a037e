import { toNano } from '@ton/core';

/** Message opcodes of the four contracts (docs/payments.md, "Operations"). */
export const Op = {
  rootSetParams: 0x52500001,
  rootAddProxyHash: 0x52500002,
  rootDelProxyHash: 0x52500003,
  rootAddWorkerHash: 0x52500004,
  rootDelWorkerHash: 0x52500005,
  rootAddModelHash: 0x52500006,
  rootDelModelHash: 0x52500007,
  rootRegisterProxy: 0x52500008,
  rootUpdateProxy: 0x52500009,
  rootUnregisterProxy: 0x5250000a,
  rootChangeOwner: 0x5250000b,

  clientTopUp: 0x43500001,
  clientIncreaseStake: 0x43500002,
  clientWithdraw: 0x43500003,
  clientRequestClose: 0x43500004,
  clientClose: 0x43500005,
  clientCharge: 0x43500006,
  /** Notice to the client owner carrying a withdrawal or the close refund. */
  clientRefund: 0x43500007,
  /** Owner: raise stake and close delay (never lower). */
  clientRaiseTerms: 0x43500008,

  workerPayout: 0x57500001,
  workerPayoutRefused: 0x57500002,
  /** Notice to the worker owner carrying the worker's fee. */
  workerPaid: 0x57500003,

  proxyChargeProceeds: 0x50500001,
  proxyWorkerPayoutRequest: 0x50500002,
  proxyAddStake: 0x50500003,
  proxyWithdrawCommission: 0x50500004,
  proxyRequestClose: 0x50500005,
  proxyClose: 0x50500006,
  /** Notice to the proxy owner carrying the commission or the close payout. */
  proxyPaid: 0x50500007,
  /** Owner: raise the proxy contract's close delay (never lower). */
  proxyRaiseCloseDelay: 0x50500008,

  /** Returns the unused part of an incoming value. */
  excesses: 0xd53276db,
  /** Returns the value of a non-bounceable message a contract refused; `query_id:uint64 exit_code:int32`. */
  returned: 0xd53276dd,
} as const;

/** Exit codes of refused messages. */
export const ExitCode = {
  unknownOp: 100,
  notAllowed: 101,
  badSignature: 102,
  wrongContract: 103,
  wrongTagOrNetwork: 104,
  /** No longer raised: signed messages are ordered by their cumulative totals. */
  staleSeqno: 105,
  totalNotAbovePaid: 106,
  wrongState: 107,
  tooEarly: 108,
  notEnoughFunds: 109,
  invalidParams: 110,
  notEnoughValue: 111,
  noSuchEntry: 112,
} as const;

/** `state` of the client and proxy contracts. */
export const ContractState = { open: 0, closing: 1, closed: 2 } as const;
export type ContractState = (typeof ContractState)[keyof typeof ContractState];

/** `kind` of the root's allow-lists. */
export const HashKind = { proxy: 0, worker: 1, model: 2 } as const;
export type HashKind = (typeof HashKind)[keyof typeof HashKind];

/** Longest close delay (seconds, 400 days) a contract or the root accepts. */
export const MAX_CLOSE_DELAY = 34_560_000;

/** Kept on every contract on top of its tracked funds (storage fees). */
export const STORAGE_RESERVE = toNano('0.01');
/** Least value of a message that sends messages on (charge, payout, withdrawals, closes); top-ups and
 * stake additions need this on top of the amount. */
export const MIN_FORWARD_VALUE = toNano('0.05');
/** Least value a `charge_proceeds` carries on top of its amount. */
export const MIN_PROCEEDS_GAS = toNano('0.01');
