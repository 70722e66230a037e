import type { Address, Transaction } from '@ton/core';
import { TonClient } from '@ton/ton';

/**
 * An auditor's view of a set of accounts, read from the chain's own transaction history (the toncenter
 * API anyone can query), never from what our daemons say about themselves.
 *
 * Each account's balance must be explained exactly by its transactions (so none is missing):
 *   balance = Σ value in − Σ (value + forwarding fees) out − Σ fees.
 * Every message between the accounts is tallied by receiver and opcode, and every message that enters from
 * outside the set (minting) or leaves it (a leak) is listed.
 */
export interface Audit {
  balances: Map<string, bigint>;
  /** Value that came in from outside the set, by sender (raw address). */
  inflows: Map<string, bigint>;
  /** Value sent to addresses outside the set, by receiver. */
  outflows: Map<string, bigint>;
  /** Fees the accounts paid: gas, storage, forwarding. */
  fees: bigint;
  /** Accounts whose balance their transactions do not explain: label → [balance, explained]. */
  unexplained: Map<string, [bigint, bigint]>;
  /** Σ value of internal messages received by `to` with opcode `op`. */
  received(to: Address, op: number): bigint;
}

/** toncenter's page: the local chain keeps this many transactions an address. */
const PAGE = 100;

export async function auditAccounts(endpoint: string, accounts: Map<string, Address>): Promise<Audit> {
  const client = new TonClient({ endpoint: `${endpoint}/jsonRPC` });
  const inSet = new Set([...accounts.values()].map((a) => a.toRawString()));
  const audit: Audit = {
    balances: new Map(),
    inflows: new Map(),
    outflows: new Map(),
    fees: 0n,
    unexplained: new Map(),
    received: (to, op) => byOp.get(`${to.toRawString()}/${op}`) ?? 0n,
  };
  const byOp = new Map<string, bigint>();
  const add = (m: Map<string, bigint>, k: string, v: bigint) => m.set(k, (m.get(k) ?? 0n) + v);
  for (const [label, address] of accounts) {
    const txs = await client.getTransactions(address, { limit: PAGE });
    if (txs.length >= PAGE) throw new Error(`${label}: ${txs.length} transactions, more than one page`);
    let explained = 0n;
    for (const tx of txs) {
      const flow = transactionFlow(tx);
      explained += flow.in - flow.out - flow.fees;
      audit.fees += flow.fees;
      if (flow.from && !inSet.has(flow.from)) add(audit.inflows, flow.from, flow.in);
      if (flow.op !== null) add(byOp, `${address.toRawString()}/${flow.op}`, flow.in);
      for (const [to, value] of flow.sent) if (!inSet.has(to)) add(audit.outflows, to, value);
    }
    const balance = await client.getBalance(address);
    audit.balances.set(label, balance);
    if (balance !== explained) audit.unexplained.set(label, [balance, explained]);
  }
  return audit;
}

interface TxFlow {
  in: bigint;
  from: string | null;
  op: number | null;
  /** Value out. */
  out: bigint;
  /** The transaction's fees and the forwarding fees of what it sent. */
  fees: bigint;
  sent: [string, bigint][];
}

function transactionFlow(tx: Transaction): TxFlow {
  const flow: TxFlow = { in: 0n, from: null, op: null, out: 0n, fees: tx.totalFees.coins, sent: [] };
  const m = tx.inMessage;
  if (m?.info.type === 'internal') {
    flow.in = m.info.value.coins;
    flow.from = m.info.src.toRawString();
    const body = m.body.beginParse();
    flow.op = body.remainingBits >= 32 ? body.loadUint(32) : null;
  }
  for (const o of tx.outMessages.values()) {
    if (o.info.type !== 'internal') continue;
    flow.out += o.info.value.coins;
    // Not ihrFee: since TVM 11 that field holds the message's extra flags (1 = rich bounce), not a fee.
    flow.fees += o.info.forwardFee;
    flow.sent.push([o.info.dest.toRawString(), o.info.value.coins]);
  }
  return flow;
}
