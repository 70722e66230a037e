import assert from 'node:assert/strict';
import { it } from 'node:test';
import { Address, fromNano, internal, toNano } from '@ton/core';
import {
  Blockchain,
  type SandboxContract,
  type SendMessageResult,
  type TreasuryContract,
} from '@ton/sandbox';
import { ClientContract, clientChargeBody } from '../../src/chain/contracts/client-contract.ts';
import {
  ExitCode,
  MIN_FORWARD_VALUE,
  MIN_PROCEEDS_GAS,
  Op,
  STORAGE_RESERVE,
} from '../../src/chain/contracts/opcodes.ts';
import type { RootParams } from '../../src/chain/contracts/params.ts';
import {
  ProxyContract,
  proxyTracked,
  workerPayoutRequestBody,
} from '../../src/chain/contracts/proxy-contract.ts';
import { RootContract } from '../../src/chain/contracts/root-contract.ts';
import { WorkerContract, workerPayoutBody } from '../../src/chain/contracts/worker-contract.ts';
import { PaymentRequiredError } from '../../src/errors.ts';
import { ClientAccount } from '../../src/pay/client-account.ts';
import { requestCost } from '../../src/pay/pricing.ts';
import {
  type ClientAuth,
  GLOBAL_ID,
  type Signed,
  signClientAuth,
  signWorkerPayout,
  type WorkerPayout,
} from '../../src/pay/signed-messages.ts';
import { WorkerAccount } from '../../src/pay/worker-account.ts';
import type { TokenUsage } from '../../src/protocol/inference.ts';
import { balanceOf, contractCodes, flatten, GAS, type Keys, plain, receivedBy, T0, txOf } from './helpers.ts';
import {
  acceptedOf,
  CLOSED,
  CLOSING,
  type ClientModel,
  fullyMaturedAt,
  isRefused,
  keysFrom,
  modelAddStake,
  modelCharge,
  modelClose,
  modelIncreaseStake,
  modelPayoutAtProxy,
  modelPayoutAtWorker,
  modelProxyClose,
  modelProxyRequestClose,
  modelRaiseCloseDelay,
  modelRaiseTerms,
  modelRequestClose,
  modelTopUp,
  modelWithdraw,
  modelWithdrawCommission,
  OPEN,
  type ProxyModel,
  Rng,
  type WorkerModel,
} from './property-model.ts';

/**
 * Randomized property test on the real TVM (sandbox): one root, one staked proxy contract, several clients
 * and workers, a few hundred random operations (requests billed with `requestCost` and accrued with the
 * proxy's own ClientAccount / WorkerAccount; charges with new, older and replayed authorisations, two at a
 * time too; worker payouts, held payouts and replays; forged, cross-contract and cross-network messages;
 * top-ups, withdrawals and stake changes on and around their limits; closes; commission), every step checked
 * against a bigint model of docs/payments.md (property-model.ts) through every getter. Then everything is
 * settled and checked for conservation to the nanoton, of the tracked funds and of TON itself (balances +
 * fees); finally the proxy contract closes and what is sent to it bounces back and is rolled back.
 *
 * Deterministic from the seed (keys too); replay a failure with COCOON_PROPERTY_SEED=<seed>.
 */

const SEED = Number(process.env.COCOON_PROPERTY_SEED ?? 0xc0c0a11) >>> 0;
const STEPS = Number(process.env.COCOON_PROPERTY_STEPS ?? 220);
const N_CLIENTS = 4;
const N_WORKERS = 3;
/** This client signs whatever it is billed; the proxy serves the others only within `ClientAccount` credit. */
const RECKLESS = N_CLIENTS - 1;

interface Client {
  index: number;
  owner: SandboxContract<TreasuryContract>;
  keys: Keys;
  contract: SandboxContract<ClientContract>;
  /** The proxy's view: credit, bills, the newest authorisation. */
  account: ClientAccount;
  /** Every authorisation the client signed, oldest first (`signed[k].payload.seqno === k + 1`). */
  signed: Signed<ClientAuth>[];
  model: ClientModel;
  /** A charge ever took less than its authorisation allowed (the balance ran out). */
  everCapped: boolean;
  /** The newest accepted charge did not redeem all it allowed (the balance ran out, or it bounced). */
  short: boolean;
  toppedUp: bigint;
  /** Received by the owner in `refund` messages (withdrawals and the close). */
  refunded: bigint;
}

interface Worker {
  index: number;
  owner: SandboxContract<TreasuryContract>;
  contract: SandboxContract<WorkerContract>;
  /** The proxy's ledger for this worker: accrued fees and the newest signed payout. */
  account: WorkerAccount;
  /** Every payout the proxy signed for it, oldest first. */
  signed: Signed<WorkerPayout>[];
  model: WorkerModel;
  /** Received by the owner in `worker_paid` messages. */
  received: bigint;
}

type Outcome = 'ok' | 'refused' | 'skipped';

const maturingOf = (p: { maturingNew: bigint; maturingOld: bigint }) => p.maturingNew + p.maturingOld;

it('randomized operations keep every contract on the model and conserve value to the nanoton', async (t) => {
  const started = Date.now();
  t.diagnostic(
    `seed ${SEED} (0x${SEED.toString(16)}), ${STEPS} steps; replay with COCOON_PROPERTY_SEED=${SEED}`,
  );
  const rng = new Rng(SEED);
  const codes = await contractCodes();
  // The slim network config: the emulator parses it on every call, so this is several times faster. It is
  // the default one without the validator sets etc.: the same global_id (−239) and gas, storage and
  // forwarding prices (params 18–25).
  const blockchain = await Blockchain.create({ config: 'slim' });
  blockchain.now = T0;
  const now = () => blockchain.now ?? T0;

  // --- participants -------------------------------------------------------------------------------------
  const rootOwner = await blockchain.treasury('root-owner');
  const proxyOwner = await blockchain.treasury('proxy-owner');
  const proxyNode = await blockchain.treasury('proxy-node'); // submits the charges
  const stranger = await blockchain.treasury('stranger');
  const clientOwners: SandboxContract<TreasuryContract>[] = [];
  for (let i = 0; i < N_CLIENTS; i++) clientOwners.push(await blockchain.treasury(`client-${i}`));
  const workerOwners: SandboxContract<TreasuryContract>[] = [];
  for (let i = 0; i < N_WORKERS; i++) workerOwners.push(await blockchain.treasury(`worker-${i}`));

  // Multipliers: 10 000 = 1× (src/pay/pricing.ts, src/local/local-ton.ts); the root allows up to 10⁶.
  const params: RootParams = {
    paramsVersion: 2,
    pricePerToken: rng.big(5_000n, 40_000n),
    workerFeePerToken: 0n,
    promptMult: rng.int(2_000, 30_000),
    cachedMult: rng.int(500, 10_000),
    completionMult: rng.int(2_000, 30_000),
    reasoningMult: rng.int(2_000, 30_000),
    clientCloseDelay: rng.int(600, 3_600),
    proxyCloseDelay: 86_400,
    minClientStake: rng.big(toNano('0.5'), toNano('1.5')),
    minProxyStake: rng.big(toNano('1'), toNano('3')),
  };
  params.workerFeePerToken = rng.big(0n, params.pricePerToken);
  const root = blockchain.openContract(
    RootContract.fromInit({ owner: rootOwner.address, params: { ...params, paramsVersion: 1 } }, codes.root),
  );
  const proxyKeys = keysFrom(rng);
  const proxy = blockchain.openContract(
    ProxyContract.fromInit(
      {
        owner: proxyOwner.address,
        root: root.address,
        proxyKey: proxyKeys.uint,
        workerCode: codes.worker,
      },
      codes.proxy,
    ),
  );
  const clients: Client[] = clientOwners.map((owner, index) => {
    const keys = keysFrom(rng);
    const contract = blockchain.openContract(
      ClientContract.fromInit(
        {
          owner: owner.address,
          proxy: proxy.address,
          clientKey: keys.uint,
        },
        codes.client,
      ),
    );
    return {
      index,
      owner,
      keys,
      contract,
      account: new ClientAccount(contract.address, owner.address, keys.publicKey, GLOBAL_ID.mainnet, null),
      signed: [],
      // deployed with stake and close delay 0; the owner raises them with its first deposit
      model: { state: OPEN, balance: 0n, stake: 0n, charged: 0n, seqno: 0n, unlockAt: 0, closeDelay: 0 },
      everCapped: false,
      short: false,
      toppedUp: 0n,
      refunded: 0n,
    };
  });
  const workers: Worker[] = workerOwners.map((owner, index) => {
    const contract = blockchain.openContract(
      WorkerContract.fromInit(
        { owner: owner.address, proxy: proxy.address, proxyKey: proxyKeys.uint },
        codes.worker,
      ),
    );
    return {
      index,
      owner,
      contract,
      account: new WorkerAccount(contract.address, owner.address, GLOBAL_ID.mainnet),
      signed: [],
      model: { deployed: false, seqno: 0n, paidWorker: 0n, paidProxy: 0n },
      received: 0n,
    };
  });
  const pm: ProxyModel = {
    state: OPEN,
    stake: 0n,
    pool: 0n,
    commission: 0n,
    maturingNew: 0n,
    maturingOld: 0n,
    epoch: 0,
    unlockAt: 0,
    closeDelay: 0,
  };

  // A client and a worker contract bound to a proxy contract that never exists (used at the very end).
  const ghostProxy = ProxyContract.fromInit(
    {
      owner: stranger.address,
      root: root.address,
      proxyKey: proxyKeys.uint,
      workerCode: codes.worker,
    },
    codes.proxy,
  );
  const orphanKeys = keysFrom(rng);
  const orphanClient = blockchain.openContract(
    ClientContract.fromInit(
      {
        owner: stranger.address,
        proxy: ghostProxy.address,
        clientKey: orphanKeys.uint,
      },
      codes.client,
    ),
  );
  const orphanWorker = blockchain.openContract(
    WorkerContract.fromInit(
      { owner: stranger.address, proxy: ghostProxy.address, proxyKey: proxyKeys.uint },
      codes.worker,
    ),
  );

  // --- TON-level bookkeeping -----------------------------------------------------------------------------
  const accounts = [
    rootOwner,
    proxyOwner,
    proxyNode,
    stranger,
    ...clientOwners,
    ...workerOwners,
    root,
    proxy,
    ...clients.map((c) => c.contract),
    ...workers.map((w) => w.contract),
    ghostProxy,
    orphanClient,
    orphanWorker,
  ].map((a) => a.address);
  const known = new Set(accounts.map((a) => a.toRawString()));
  const tonTotal = async () => {
    let sum = 0n;
    for (const a of accounts) sum += await balanceOf(blockchain, a);
    return sum;
  };
  const initialTon = await tonTotal();
  let fees = 0n; // Σ tx.totalFees
  let fwdInFlight = 0n; // Σ fwd_fee left in the headers of internal messages (see (5) below)
  /** Payments of nothing (docs: "Nothing is sent for a zero amount"), as `<op sent> after <op received>`. */
  const zeroPayments: string[] = [];
  /** Whether the last transaction of an account ran without error (its balance is then exact). */
  const lastOk = new Map<string, boolean>();

  // --- tracked value ------------------------------------------------------------------------------------
  let stakeAdded = 0n;
  /** Maturing commission the proxy contract used to pay workers (when the pool ran short). */
  let commissionSpent = 0n;
  /** Received by the proxy owner in `proxy_paid` messages (commission, and the close payout). */
  let proxyOwnerReceived = 0n;
  const stats: Record<string, number> = {};
  const count = (k: string) => {
    stats[k] = (stats[k] ?? 0) + 1;
  };

  /** Books every transaction of `r`: fees, forwarded fees, payments received by the owners. */
  const track = (r: SendMessageResult): SendMessageResult => {
    for (const tx of r.transactions) {
      const at = new Address(0, Buffer.from(tx.address.toString(16).padStart(64, '0'), 'hex'));
      assert.ok(known.has(at.toRawString()), `a transaction on an account outside the test: ${at}`);
      fees += tx.totalFees.coins;
      for (const m of tx.outMessages.values()) {
        if (m.info.type === 'internal') fwdInFlight += m.info.forwardFee;
        else assert.fail('no contract here sends external messages');
      }
      const f = flatten(tx);
      lastOk.set(at.toRawString(), !(f.aborted && f.exitCode !== undefined));
      for (const o of f.outValues) {
        if (o.op === Op.clientRefund || o.op === Op.workerPaid || o.op === Op.proxyPaid) {
          if (o.value === 0n) zeroPayments.push(`${o.op.toString(16)} after ${f.op?.toString(16)}`);
        }
      }
    }
    for (const c of clients) c.refunded += receivedBy(r, c.owner.address, Op.clientRefund);
    for (const w of workers) w.received += receivedBy(r, w.owner.address, Op.workerPaid);
    proxyOwnerReceived += receivedBy(r, proxyOwner.address, Op.proxyPaid);
    return r;
  };

  const wallets = new Set(
    [rootOwner, proxyOwner, proxyNode, stranger, ...clientOwners, ...workerOwners].map((w) =>
      w.address.toRawString(),
    ),
  );
  /** The transactions of `r` that failed (a refusal, or a bounce of one, coming back). A wallet that runs
   * out of gas on a non-bounceable payment too small to pay for its own code (a worker fee of a few
   * nanoton, say) is not one: it keeps the value all the same (`receivedBy` counts it). */
  const failures = (r: SendMessageResult) =>
    r.transactions
      .map(flatten)
      .filter((f) => (f.aborted && f.exitCode !== undefined) || f.bounced)
      .filter((f) => f.bounced || f.bounce || !(f.to && wallets.has(f.to.toRawString())));

  /** The messages of `op` that reached `to` in `r` were refused with `codes` (in order; `null`: accepted). */
  const assertHops = (r: SendMessageResult, to: Address, op: number, codes: (number | null)[]) => {
    const hops = r.transactions.map(flatten).filter((f) => f.to?.equals(to) && f.op === op && !f.bounced);
    assert.equal(hops.length, codes.length, `expected ${codes.length} transactions of op ${op.toString(16)}`);
    for (const [i, code] of codes.entries()) {
      const f = hops[i]!;
      if (code === null) assert.ok(!f.aborted, `op ${op.toString(16)} #${i} failed with ${f.exitCode}`);
      else {
        assert.ok(f.aborted, `op ${op.toString(16)} #${i} went through; expected refusal ${code}`);
        assert.equal(f.exitCode, code, `op ${op.toString(16)} #${i}`);
      }
    }
  };
  /** As assertHops, and nothing else in `r` failed. */
  const assertOutcome = (
    r: SendMessageResult,
    to: Address,
    op: number,
    codes: (number | null)[],
    laterRefusals = 0,
  ) => {
    assertHops(r, to, op, codes);
    // each refusal: the failed transaction, and its bounce arriving back at the sender
    const refusals = codes.filter((c) => c !== null).length + laterRefusals;
    const failed = failures(r);
    assert.equal(
      failed.length,
      2 * refusals,
      `unexpected failures: ${failed.map((f) => `${f.to} op ${f.op?.toString(16)} exit ${f.exitCode}${f.bounced ? ' (bounce)' : ''}`).join(', ')}`,
    );
  };

  /** The `amount` (first Coins after op and query_id, or after an address with `skipAddress`) of every
   * message of `op` that `to` received and kept in `r`. */
  const amountsIn = (r: SendMessageResult, to: Address, op: number, skipAddress = false): bigint[] =>
    r.transactions
      .map(flatten)
      .filter((f) => f.to?.equals(to) && f.op === op && !f.aborted)
      .map((f) => {
        const s = f.raw.inMessage!.body.beginParse().skip(32 + 64);
        if (skipAddress) s.loadAddress();
        return s.loadCoins();
      });

  // --- reading the chain back ---------------------------------------------------------------------------
  const isActive = async (a: Address) => (await blockchain.getContract(a)).accountState?.type === 'active';
  /** Every getter of the proxy, client and worker contracts (the root's never changes; checked at the end). */
  const view = async () => ({
    proxy: await proxy.getProxyData(),
    clients: await Promise.all(clients.map((c) => c.contract.getClientData())),
    workers: await Promise.all(
      workers.map(async (w) => ((await isActive(w.contract.address)) ? w.contract.getWorkerData() : null)),
    ),
  });
  type View = Awaited<ReturnType<typeof view>>;

  /** Every getter equals the model; every contract holds its tracked funds plus the storage reserve. */
  const checkModel = async (label: string): Promise<View> => {
    const v = await view();
    const p = v.proxy;
    assert.deepEqual(
      {
        state: p.state,
        stake: p.stake,
        pool: p.pool,
        commission: p.commission,
        maturingNew: p.maturingNew,
        maturingOld: p.maturingOld,
        epoch: p.epoch,
        unlockAt: p.unlockAt,
        closeDelay: p.closeDelay,
      },
      { ...pm },
      `${label}: proxy`,
    );
    await checkHeld(proxy.address, proxyTracked(p), label);
    for (const c of clients) {
      const d = v.clients[c.index]!;
      const { state, balance, stake, charged, seqno, unlockAt, closeDelay } = d;
      assert.deepEqual(
        { state, balance, stake, charged, seqno, unlockAt, closeDelay },
        { ...c.model },
        `${label}: client ${c.index}`,
      );
      await checkHeld(c.contract.address, d.balance, label);
    }
    for (const w of workers) {
      assert.equal(
        await isActive(w.contract.address),
        w.model.deployed,
        `${label}: worker ${w.index} deployed`,
      );
      const d = v.workers[w.index];
      if (!d) continue;
      assert.deepEqual(
        { deployed: true, seqno: d.seqno, paidWorker: d.paidWorker, paidProxy: d.paidProxy },
        { ...w.model },
        `${label}: worker ${w.index}`,
      );
      await checkHeld(w.contract.address, 0n, label);
      // (3), continuously: the owner got exactly what the contract counts as paid, never more than signed
      assert.equal(w.received, w.model.paidWorker, `${label}: worker ${w.index} received`);
      const signedMax = w.signed.at(-1)?.payload.workerTotal ?? 0n; // signed totals never fall
      assert.ok(
        w.received <= signedMax && signedMax <= w.account.accruedWorker,
        `${label}: worker ${w.index}`,
      );
    }
    for (const c of clients) {
      // (2), continuously: charged = the newest accepted authorisation, or less only if it ran dry
      const accepted = c.model.seqno === 0n ? 0n : c.signed[Number(c.model.seqno) - 1]!.payload.total;
      assert.ok(c.model.charged <= accepted, `${label}: client ${c.index} charged beyond its authorisation`);
      assert.ok(c.short || c.model.charged === accepted, `${label}: client ${c.index} charged ≠ accepted`);
      assert.ok(accepted <= (c.signed.at(-1)?.payload.total ?? 0n));
    }
    return v;
  };

  /** `tracked + STORAGE_RESERVE` after a successful transaction; after a refusal it may be short by the
   * storage fee that transaction paid out of the reserve (the bounce takes the rest of the incoming value
   * back), never short of `tracked`. */
  const checkHeld = async (a: Address, tracked: bigint, label: string) => {
    const balance = await balanceOf(blockchain, a);
    if (lastOk.get(a.toRawString()) !== false) {
      assert.equal(balance, tracked + STORAGE_RESERVE, `${label}: balance of ${a}`);
    } else {
      assert.ok(balance <= tracked + STORAGE_RESERVE && balance > tracked, `${label}: balance of ${a}`);
    }
  };

  // --- operations ---------------------------------------------------------------------------------------
  const sendTopUp = async (
    c: Client,
    amount: bigint,
    attached: bigint,
    from: SandboxContract<TreasuryContract>,
  ) => {
    const expected = modelTopUp(c.model, amount, attached, MIN_FORWARD_VALUE);
    const r = track(await c.contract.sendTopUp(from.getSender(), attached, amount));
    assertOutcome(r, c.contract.address, Op.clientTopUp, [expected?.refused ?? null]);
    if (expected) return 'refused';
    c.toppedUp += amount;
    return 'ok';
  };

  /** Submits `auths` to `c` (several at once: one external, so all first hops run before the proxy's). */
  const submitCharges = async (c: Client, auths: Signed<ClientAuth>[]): Promise<Outcome> => {
    const expected = auths.map((a) => modelCharge(c.model, pm, a.payload));
    const r = track(
      auths.length === 1
        ? await c.contract.sendCharge(proxyNode.getSender(), GAS, auths[0]!)
        : await proxyNode.sendMessages(
            auths.map((a) =>
              internal({ to: c.contract.address, value: GAS, bounce: true, body: clientChargeBody(a) }),
            ),
          ),
    );
    const accepted = acceptedOf(expected);
    const bounced = accepted.filter((e) => e.bounced);
    assertOutcome(
      r,
      c.contract.address,
      Op.clientCharge,
      expected.map((e) => (isRefused(e) ? e.refused : null)),
      bounced.length,
    );
    assertHops(
      r,
      proxy.address,
      Op.proxyChargeProceeds,
      accepted.map((e) => (e.bounced ? ExitCode.wrongState : null)),
    );
    // the proxy contract was credited exactly what each charge took
    assert.deepEqual(
      amountsIn(r, proxy.address, Op.proxyChargeProceeds),
      accepted.filter((e) => !e.bounced).map((e) => e.taken),
    );
    for (const e of expected) {
      if (isRefused(e)) count(`charge refused ${e.refused}`);
      else {
        count(
          e.bounced
            ? 'charge bounced by the closed proxy, rolled back'
            : e.capped
              ? 'charge capped at the balance'
              : 'charge',
        );
        c.everCapped ||= e.capped;
      }
    }
    // short: what was charged is below the newest (highest) authorisation accepted
    const newestAccepted = c.model.seqno === 0n ? 0n : c.signed[Number(c.model.seqno) - 1]!.payload.total;
    c.short = c.model.charged < newestAccepted;
    return accepted.length === 0 ? 'refused' : 'ok';
  };

  /** Submits `payouts` for `w` (several at once: all worker hops first, then the proxy's, then rollbacks). */
  const submitPayouts = async (w: Worker, payouts: Signed<WorkerPayout>[]): Promise<Outcome> => {
    const atWorker = payouts.map((s) => modelPayoutAtWorker(w.model, s.payload));
    const atProxy = atWorker.map((x) =>
      isRefused(x) ? null : modelPayoutAtProxy(w.model, pm, x.dw, x.dp, now()),
    );
    const r = track(
      payouts.length === 1
        ? await w.contract.sendPayout(w.owner.getSender(), GAS, payouts[0]!)
        : await w.owner.sendMessages(
            payouts.map((s) =>
              internal({ to: w.contract.address, value: GAS, bounce: true, body: workerPayoutBody(s) }),
            ),
          ),
    );
    assertOutcome(
      r,
      w.contract.address,
      Op.workerPayout,
      atWorker.map((x) => (isRefused(x) ? x.refused : null)),
    );
    const forwarded = acceptedOf(atWorker);
    assertHops(
      r,
      proxy.address,
      Op.proxyWorkerPayoutRequest,
      forwarded.map(() => null),
    );
    // the proxy was asked for exactly the differences the worker contract computed
    assert.deepEqual(
      amountsIn(r, proxy.address, Op.proxyWorkerPayoutRequest, true),
      forwarded.map((x) => x.dw),
    );
    const refusedByProxy = atProxy.filter((paid) => paid === false).length;
    assertHops(r, w.contract.address, Op.workerPayoutRefused, Array(refusedByProxy).fill(null));
    let paidNow = 0n;
    for (const [i, x] of atWorker.entries()) {
      if (isRefused(x)) count(`payout refused ${x.refused}`);
      else if (atProxy[i]) {
        count(atProxy[i].fromMaturing > 0n ? 'payout backed by maturing commission' : 'payout');
        commissionSpent += atProxy[i].fromMaturing;
        paidNow += x.dw;
      } else count('payout refused by the proxy (pool + stake too small), rolled back');
    }
    assert.equal(receivedBy(r, w.owner.address, Op.workerPaid), paidNow);
    return atWorker.every(isRefused) ? 'refused' : 'ok';
  };

  const randomUsage = (): TokenUsage => {
    if (rng.chance(0.04))
      return { promptTokens: 0, cachedTokens: 0, completionTokens: 0, reasoningTokens: 0 };
    const promptTokens = rng.int(0, 6_000);
    const completionTokens = rng.int(0, 3_000);
    return {
      promptTokens,
      cachedTokens: rng.chance(0.5) ? 0 : rng.int(0, promptTokens + 100),
      completionTokens,
      reasoningTokens: rng.chance(0.5) ? 0 : rng.int(0, completionTokens + 100),
    };
  };

  const signAuth = (c: Client, more: bigint): Signed<ClientAuth> => {
    const prev = c.signed.at(-1)?.payload;
    return signClientAuth(
      {
        globalId: GLOBAL_ID.mainnet,
        contract: c.contract.address,
        seqno: (prev?.seqno ?? 0n) + 1n,
        total: (prev?.total ?? 0n) + more,
      },
      c.keys.privateKey,
    );
  };

  /** A request: billed with requestCost, signed by the client, accrued by the proxy for the worker. */
  const request = async (step: number): Promise<Outcome> => {
    const c = rng.chance(0.35) ? clients[RECKLESS]! : rng.pick(clients);
    const w = rng.pick(workers);
    const usage = randomUsage();
    const cost = requestCost(usage, rng.int(200, 4_000), params);
    assert.equal(cost.workerPart + cost.proxyPart, cost.totalCost);
    assert.ok(cost.workerPart >= 0n && cost.proxyPart >= 0n);
    const d = await c.contract.getClientData();
    c.account.chain = { deployed: true, ...d };
    if (c.index !== RECKLESS || c.model.state !== OPEN) {
      try {
        c.account.reserve(cost.totalCost); // the proxy's credit check, before any worker runs
      } catch (err) {
        if (!(err instanceof PaymentRequiredError)) throw err;
        count('request refused by the proxy (402)');
        return 'skipped';
      }
      c.account.release(cost.totalCost);
    }
    const id = `req-${step}`;
    c.account.addBill(id, cost.totalCost);
    const auth = signAuth(c, cost.totalCost);
    const msg = {
      requestIds: [id],
      seqno: auth.payload.seqno,
      total: auth.payload.total,
      signature: auth.signature,
    };
    c.account.applyAuth(msg, c.account.checkAuth(msg));
    c.signed.push(auth);
    w.account.accrue(cost.workerPart, cost.proxyPart);
    count(cost.totalCost === 0n ? 'request (free)' : 'request');
    return 'skipped'; // nothing on chain
  };

  const charge = async (): Promise<Outcome> => {
    const candidates = clients.filter((c) => c.signed.length > 0);
    if (candidates.length === 0) return 'skipped';
    const c = rng.pick(candidates);
    const unredeemed = c.signed.filter((a) => a.payload.seqno > c.model.seqno);
    const stale = c.signed.filter((a) => a.payload.seqno <= c.model.seqno);
    if (unredeemed.length > 0 && (stale.length === 0 || rng.chance(0.75))) {
      // usually the newest; sometimes an older one not yet redeemed (valid, takes less)
      return submitCharges(c, [rng.chance(0.8) ? c.signed.at(-1)! : rng.pick(unredeemed)]);
    }
    return submitCharges(c, [rng.pick(stale)]); // a replay
  };

  const chargeBatch = async (): Promise<Outcome> => {
    const candidates = clients.filter((c) => c.signed.length > 0);
    if (candidates.length === 0) return 'skipped';
    const c = rng.pick(candidates);
    return submitCharges(c, [rng.pick(c.signed), rng.pick(c.signed)]);
  };

  const signPayout = (w: Worker): Signed<WorkerPayout> => {
    const s = w.account.signPayout(proxyKeys.privateKey);
    assert.equal(s.payload.seqno, BigInt(w.signed.length + 1));
    w.signed.push(s);
    return s;
  };

  const payout = async (): Promise<Outcome> => {
    const w = rng.pick(workers);
    if (rng.chance(0.25)) {
      const stale = w.signed.filter((s) => s.payload.seqno <= w.model.seqno);
      if (stale.length === 0) return 'skipped';
      return submitPayouts(w, [rng.pick(stale)]); // a replay
    }
    const held = w.signed.filter((s) => s.payload.seqno > w.model.seqno);
    if (!w.model.deployed) {
      // the first payout deploys the worker contract: it must be one the contract takes
      if (w.account.accruedWorker + w.account.accruedProxy === 0n) return 'skipped';
      return submitPayouts(w, [held.length > 0 && rng.chance(0.5) ? rng.pick(held) : signPayout(w)]);
    }
    return submitPayouts(w, [held.length > 0 && rng.chance(0.4) ? rng.pick(held) : signPayout(w)]);
  };

  const payoutBatch = async (): Promise<Outcome> => {
    const deployed = workers.filter((x) => x.model.deployed);
    if (deployed.length === 0) return 'skipped';
    const w = rng.pick(deployed);
    const fresh = rng.chance(0.5) ? signPayout(w) : rng.pick(w.signed);
    const other = rng.pick(w.signed);
    return submitPayouts(w, rng.chance(0.5) ? [fresh, other] : [other, fresh]);
  };

  /** The proxy signs a payout the worker keeps for later (so older, unredeemed payouts exist). */
  const holdPayout = async (): Promise<Outcome> => {
    const w = rng.pick(workers);
    if (w.account.unsigned === 0n) return 'skipped';
    signPayout(w);
    count('payout signed and held');
    return 'skipped';
  };

  const topUp = async (): Promise<Outcome> => {
    const c = rng.pick(clients);
    const amount = rng.big(toNano('0.01'), toNano('1.5'));
    const attached = rng.pick([
      amount + GAS,
      amount + GAS,
      amount + GAS,
      amount + MIN_FORWARD_VALUE, // the least it takes
      amount + MIN_FORWARD_VALUE - 1n, // one nanoton short: 111
      amount + MIN_FORWARD_VALUE - rng.big(1n, toNano('0.01')),
    ]);
    const refusal = modelTopUp({ ...c.model }, amount, attached, MIN_FORWARD_VALUE);
    const outcome = await sendTopUp(c, amount, attached, rng.chance(0.2) ? stranger : c.owner);
    count(refusal ? `top-up refused ${refusal.refused}` : 'top-up');
    return outcome;
  };

  const withdraw = async (): Promise<Outcome> => {
    const c = rng.pick(clients);
    const free = c.model.balance - c.model.stake;
    const mode = rng.weighted({ valid: 5, all: 1, oneTooMany: 1, tooMuch: 2, stranger: 1, zero: 1 });
    const floor = free > 0n ? free : 0n;
    const amount =
      mode === 'valid' && free > 0n
        ? rng.big(1n, free)
        : mode === 'zero'
          ? 0n
          : mode === 'all'
            ? floor // down to exactly the stake
            : mode === 'oneTooMany'
              ? floor + 1n
              : floor + rng.big(1n, toNano('1'));
    const byOwner = mode !== 'stranger';
    const expected = modelWithdraw(c.model, amount, byOwner);
    const r = track(await c.contract.sendWithdraw((byOwner ? c.owner : stranger).getSender(), GAS, amount));
    assertOutcome(r, c.contract.address, Op.clientWithdraw, [expected?.refused ?? null]);
    assert.equal(receivedBy(r, c.owner.address, Op.clientRefund), expected ? 0n : amount);
    count(expected ? `withdraw refused ${expected.refused}` : 'withdraw');
    return expected ? 'refused' : 'ok';
  };

  /** Authorisations the contract must refuse whatever its state: forged, for another contract, or for
   * another network. */
  const forgedCharge = async (): Promise<Outcome> => {
    const c = rng.pick(clients);
    const other = rng.pick(clients.filter((x) => x !== c));
    const next = (c.signed.at(-1)?.payload.seqno ?? 0n) + 1n;
    const total = (c.signed.at(-1)?.payload.total ?? 0n) + rng.big(1n, toNano('1'));
    const kind = rng.weighted({ othersAuth: 1, otherContract: 1, otherNetwork: 1, badSignature: 1 });
    const payload: ClientAuth = {
      globalId: GLOBAL_ID.mainnet,
      contract: c.contract.address,
      seqno: next,
      total,
    };
    let auth: Signed<ClientAuth>;
    let code: number;
    if (kind === 'othersAuth') {
      // another client's key over this contract's payload (or simply another client's own newest one)
      auth = other.signed.at(-1) ?? signClientAuth(payload, other.keys.privateKey);
      if (rng.chance(0.5)) auth = signClientAuth(payload, other.keys.privateKey);
      code = ExitCode.badSignature;
    } else if (kind === 'otherContract') {
      auth = signClientAuth({ ...payload, contract: other.contract.address }, c.keys.privateKey);
      code = ExitCode.wrongContract;
    } else if (kind === 'otherNetwork') {
      auth = signClientAuth({ ...payload, globalId: GLOBAL_ID.testnet }, c.keys.privateKey);
      code = ExitCode.wrongTagOrNetwork;
    } else {
      auth = { ...signClientAuth(payload, c.keys.privateKey), signature: rng.bytes(64) };
      code = ExitCode.badSignature;
    }
    if (c.model.state === CLOSED) code = ExitCode.wrongState; // checked first
    const r = track(await c.contract.sendCharge(proxyNode.getSender(), GAS, auth));
    assertOutcome(r, c.contract.address, Op.clientCharge, [code]);
    count(`forged charge refused ${code}`);
    return 'refused';
  };

  /** Payouts a worker contract must refuse: another worker's, another network's, or not the proxy's key. */
  const forgedPayout = async (): Promise<Outcome> => {
    const deployed = workers.filter((x) => x.model.deployed);
    if (deployed.length === 0) return 'skipped';
    const w = rng.pick(deployed);
    const other = rng.pick(workers.filter((x) => x !== w));
    const payload: WorkerPayout = {
      globalId: GLOBAL_ID.mainnet,
      contract: w.contract.address,
      seqno: w.model.seqno + BigInt(rng.int(1, 3)),
      workerTotal: w.account.accruedWorker + rng.big(1n, toNano('1')),
      proxyTotal: w.account.accruedProxy + rng.big(0n, toNano('1')),
    };
    const kind = rng.weighted({ othersPayout: 2, otherNetwork: 1, otherKey: 1 });
    let payout: Signed<WorkerPayout>;
    let code: number;
    if (kind === 'othersPayout') {
      // the same proxy key signs every worker's payouts: only the address tells them apart
      payout =
        other.signed.length > 0 && rng.chance(0.5)
          ? rng.pick(other.signed)
          : signWorkerPayout({ ...payload, contract: other.contract.address }, proxyKeys.privateKey);
      code = ExitCode.wrongContract;
    } else if (kind === 'otherNetwork') {
      payout = signWorkerPayout({ ...payload, globalId: GLOBAL_ID.testnet }, proxyKeys.privateKey);
      code = ExitCode.wrongTagOrNetwork;
    } else {
      payout = signWorkerPayout(payload, rng.pick(clients).keys.privateKey);
      code = ExitCode.badSignature;
    }
    const r = track(await w.contract.sendPayout(w.owner.getSender(), GAS, payout));
    assertOutcome(r, w.contract.address, Op.workerPayout, [code]);
    count(`forged payout refused ${code}`);
    return 'refused';
  };

  /** A stranger asks the proxy contract directly: for a worker's pay (only that worker's contract may), or
   * to credit its pool with less value than it names. */
  const strangerAtProxy = async (): Promise<Outcome> => {
    const amount = rng.big(1n, toNano('1'));
    if (rng.chance(0.5)) {
      const owner = rng.pick(workers).owner.address;
      const body = workerPayoutRequestBody(owner, amount, 0n, stranger.address);
      const r = track(await proxy.sendBody(stranger.getSender(), GAS, body));
      assertOutcome(r, proxy.address, Op.proxyWorkerPayoutRequest, [ExitCode.notAllowed]);
      count('stranger payout request refused 101');
    } else {
      const short = amount + MIN_PROCEEDS_GAS - rng.big(1n, MIN_PROCEEDS_GAS);
      const r = track(await proxy.sendChargeProceeds(stranger.getSender(), short, amount, stranger.address));
      const code = pm.state === CLOSED ? ExitCode.wrongState : ExitCode.notEnoughValue;
      assertOutcome(r, proxy.address, Op.proxyChargeProceeds, [code]);
      count(`stranger charge_proceeds refused ${code}`);
    }
    return 'refused';
  };

  const withdrawCommission = async (): Promise<Outcome> => {
    const amount = modelWithdrawCommission(pm, now());
    const r = track(await proxy.sendWithdrawCommission(proxyOwner.getSender(), GAS));
    assertOutcome(r, proxy.address, Op.proxyWithdrawCommission, [null]);
    assert.equal(receivedBy(r, proxyOwner.address, Op.proxyPaid), amount);
    count('withdraw commission');
    return 'ok';
  };

  const addStake = async (amount: bigint, attached: bigint): Promise<Outcome> => {
    const expected = modelAddStake(pm, amount, attached, MIN_FORWARD_VALUE);
    const r = track(await proxy.sendAddStake(proxyOwner.getSender(), attached, amount));
    assertOutcome(r, proxy.address, Op.proxyAddStake, [expected?.refused ?? null]);
    count(expected ? `add stake refused ${expected.refused}` : 'add stake');
    if (expected) return 'refused';
    stakeAdded += amount;
    return 'ok';
  };

  const raiseTerms = async (c: Client, stake: bigint, closeDelay: number, byOwner: boolean) => {
    const expected = modelRaiseTerms(c.model, stake, closeDelay, byOwner);
    const r = track(
      await c.contract.sendRaiseTerms((byOwner ? c.owner : stranger).getSender(), GAS, stake, closeDelay),
    );
    assertOutcome(r, c.contract.address, Op.clientRaiseTerms, [expected?.refused ?? null]);
    count(expected ? `raise terms refused ${expected.refused}` : 'raise terms');
    return expected ? 'refused' : 'ok';
  };

  const increaseStake = async (): Promise<Outcome> => {
    const c = rng.pick(clients);
    const byOwner = !rng.chance(0.1);
    if (rng.chance(0.4)) {
      // raise_terms: stake and close delay together, now and then one of them lower (110)
      const stake = rng.chance(0.15) ? c.model.stake - rng.big(1n, c.model.stake + 1n) : c.model.stake;
      const delay = rng.chance(0.15) ? c.model.closeDelay - 1 : c.model.closeDelay + rng.int(0, 600);
      return raiseTerms(c, stake < 0n ? 0n : stake + rng.big(0n, toNano('0.2')), delay, byOwner);
    }
    const stake = rng.chance(0.2)
      ? c.model.stake - rng.big(0n, c.model.stake)
      : c.model.stake + rng.big(1n, toNano('0.5'));
    const expected = modelIncreaseStake(c.model, stake, byOwner);
    const r = track(
      await c.contract.sendIncreaseStake((byOwner ? c.owner : stranger).getSender(), GAS, stake),
    );
    assertOutcome(r, c.contract.address, Op.clientIncreaseStake, [expected?.refused ?? null]);
    count(expected ? `increase stake refused ${expected.refused}` : 'increase stake');
    return expected ? 'refused' : 'ok';
  };

  /** The owner starts closing; the proxy, seeing it, redeems the newest authorisation at once. */
  const requestClose = async (c: Client): Promise<Outcome> => {
    const expected = modelRequestClose(c.model, now());
    const r = track(await c.contract.sendRequestClose(c.owner.getSender(), GAS));
    assertOutcome(r, c.contract.address, Op.clientRequestClose, [expected?.refused ?? null]);
    if (expected) return 'refused';
    count('request close');
    const newest = c.signed.at(-1);
    if (newest && newest.payload.seqno > c.model.seqno) await submitCharges(c, [newest]);
    return 'ok';
  };

  const close = async (c: Client): Promise<Outcome> => {
    const expected = modelClose(c.model, now());
    const r = track(await c.contract.sendClose(c.owner.getSender(), GAS));
    assertOutcome(r, c.contract.address, Op.clientClose, [isRefused(expected) ? expected.refused : null]);
    if (isRefused(expected)) {
      count(`close refused ${expected.refused}`);
      return 'refused';
    }
    assert.equal(receivedBy(r, c.owner.address, Op.clientRefund), expected.refund);
    count('close');
    return 'ok';
  };

  // --- set-up -------------------------------------------------------------------------------------------
  let r = track(await root.sendSetParams(rootOwner.getSender(), GAS, params)); // deploys the root
  assertOutcome(r, root.address, Op.rootSetParams, [null]);
  assert.deepEqual(await root.getParams(), params);
  const proxyStake = params.minProxyStake + rng.big(0n, toNano('1'));
  await addStake(proxyStake, proxyStake + GAS); // deploys the proxy contract, close delay 0
  assert.equal(modelRaiseCloseDelay(pm, params.proxyCloseDelay, now()), null);
  r = track(await proxy.sendRaiseCloseDelay(proxyOwner.getSender(), GAS, params.proxyCloseDelay));
  assertOutcome(r, proxy.address, Op.proxyRaiseCloseDelay, [null]);
  for (const c of clients) {
    const deposit = rng.big(params.minClientStake, params.minClientStake + toNano('3'));
    assert.equal(await sendTopUp(c, deposit, deposit + GAS, c.owner), 'ok'); // deploys the client contract
    // … and the root's terms, as the first deposit sets them
    assert.equal(await raiseTerms(c, params.minClientStake, params.clientCloseDelay, true), 'ok');
  }
  let last = await checkModel('set-up');

  // --- random steps -------------------------------------------------------------------------------------
  let closingStarted = false;
  for (let step = 0; step < STEPS; step++) {
    blockchain.now = now() + rng.int(0, 120);
    const kind = rng.weighted({
      request: 30,
      charge: 16,
      chargeBatch: 4,
      payout: 14,
      payoutBatch: 4,
      holdPayout: 4,
      topUp: 8,
      withdraw: 9,
      commission: 2,
      addStake: 2,
      increaseStake: 2,
      forgedCharge: 2,
      forgedPayout: 2,
      strangerAtProxy: 1,
      requestClose: 1,
      close: 1,
    });
    let outcome: Outcome;
    switch (kind) {
      case 'request':
        outcome = await request(step);
        break;
      case 'charge':
        outcome = await charge();
        break;
      case 'chargeBatch':
        outcome = await chargeBatch();
        break;
      case 'payout':
        outcome = await payout();
        break;
      case 'payoutBatch':
        outcome = await payoutBatch();
        break;
      case 'holdPayout':
        outcome = await holdPayout();
        break;
      case 'topUp':
        outcome = await topUp();
        break;
      case 'withdraw':
        outcome = await withdraw();
        break;
      case 'commission':
        outcome = await withdrawCommission();
        break;
      case 'addStake': {
        const amount = rng.big(toNano('0.1'), toNano('1'));
        const short = rng.chance(0.2);
        outcome = await addStake(amount, amount + (short ? MIN_FORWARD_VALUE - 1n : GAS));
        break;
      }
      case 'forgedCharge':
        outcome = await forgedCharge();
        break;
      case 'forgedPayout':
        outcome = await forgedPayout();
        break;
      case 'strangerAtProxy':
        outcome = await strangerAtProxy();
        break;
      case 'increaseStake': {
        outcome = await increaseStake();
        break;
      }
      case 'requestClose': {
        // at most one client closes during the run, and not before a third of it
        const open = clients.filter((c) => c.model.state === OPEN);
        if (closingStarted || step < STEPS / 3 || open.length === 0) outcome = 'skipped';
        else {
          closingStarted = true;
          outcome = await requestClose(rng.pick(open));
        }
        break;
      }
      case 'close':
        outcome = await close(rng.pick(clients));
        break;
    }
    const v = await checkModel(`step ${step} (${kind})`);
    if (outcome === 'refused' || outcome === 'skipped') {
      assert.deepEqual(plain(v), plain(last), `step ${step} (${kind}): a refused message changed a getter`);
    }
    last = v;
  }

  // --- settle everything --------------------------------------------------------------------------------
  for (const c of clients) {
    const newest = c.signed.at(-1);
    if (c.model.state !== CLOSED && newest && newest.payload.seqno > c.model.seqno) {
      await submitCharges(c, [newest]);
    }
  }
  for (const w of workers) {
    for (
      let round = 0;
      w.model.paidWorker + w.model.paidProxy < w.account.accruedWorker + w.account.accruedProxy;
      round++
    ) {
      assert.ok(round < 3, `worker ${w.index} could not be paid in full`);
      const due = w.account.accruedWorker - w.model.paidWorker + w.account.accruedProxy - w.model.paidProxy;
      const available = pm.pool + pm.maturingNew + pm.maturingOld + pm.stake; // matured commission aside
      if (due > available) {
        // first try it short, to see the refusal, then top up the stake so the proxy covers its loss
        if (round > 0) {
          const amount = due - available + toNano('0.1');
          await addStake(amount, amount + GAS);
        }
      }
      await submitPayouts(w, [signPayout(w)]);
    }
  }
  // Commission matures one to two close delays after it was credited: withdraw it once all has.
  assert.equal(await withdrawCommission(), 'ok');
  if (fullyMaturedAt(pm) > now()) blockchain.now = fullyMaturedAt(pm);
  await withdrawCommission();
  await checkModel('settled');

  // One client closes in full: too early first, then after the delay; then nothing can be charged.
  const closer = clients.find((c) => c.model.state === OPEN && c.index !== RECKLESS) ?? clients[0]!;
  if (closer.model.state === OPEN) assert.equal(await requestClose(closer), 'ok');
  if (closer.model.state === CLOSING) {
    if (now() < closer.model.unlockAt) {
      last = await checkModel('closing');
      assert.equal(await close(closer), 'refused');
      assert.deepEqual(plain(await checkModel('closing, too early')), plain(last));
      blockchain.now = closer.model.unlockAt;
    }
    assert.equal(await close(closer), 'ok');
  }
  last = await checkModel('closed');
  const late = signAuth(closer, 1n);
  closer.signed.push(late);
  assert.equal(await submitCharges(closer, [late]), 'refused');
  assert.deepEqual(plain(await checkModel('charge after close')), plain(last));
  closer.signed.pop();

  // --- final properties ---------------------------------------------------------------------------------
  const sum = (xs: bigint[]) => xs.reduce((a, b) => a + b, 0n);

  /** (1) and (5): conservation of the tracked value and of TON, from the chain as it is now. */
  const assertConserved = async (label: string) => {
    const p = await proxy.getProxyData();
    const clientData = await Promise.all(clients.map((c) => c.contract.getClientData()));
    // (1) Every nanoton deposited (and staked) is in a client contract, back with its owner, with a worker
    // owner, with the proxy owner (commission, close payout), or in the proxy contract — to the nanoton.
    const deposits = sum(clients.map((c) => c.toppedUp));
    const held = sum(clientData.map((d) => d.balance));
    const refunds = sum(clients.map((c) => c.refunded));
    const workerPaid = sum(workers.map((w) => w.received));
    assert.equal(
      deposits + stakeAdded,
      held + refunds + workerPaid + proxyOwnerReceived + p.commission + maturingOf(p) + p.pool + p.stake,
      `${label}: tracked value is not conserved`,
    );
    // … split at the client contracts' edge: what they no longer hold was refunded or charged, and what
    // was charged (with the stake) is with the workers, the proxy owner, or still in the proxy contract.
    const charged = sum(clientData.map((d) => d.charged));
    assert.equal(deposits, held + refunds + charged, label);
    assert.equal(
      charged + stakeAdded,
      workerPaid + proxyOwnerReceived + p.commission + maturingOf(p) + p.pool + p.stake,
      label,
    );

    // (5) TON itself: every nanoton the accounts started with is in one of them or went to fees. A
    // transaction's total_fees holds only the part of a forward fee the sender's shard keeps (first_frac);
    // the rest travels in the message's fwd_fee field and goes to the validators when the message is
    // imported, in no transaction's total_fees. So the exact statement adds those in-flight parts; nothing
    // else is approximate (every transaction of the run is on one of these accounts: `track` checks it).
    assert.equal((await tonTotal()) + fees + fwdInFlight, initialTon, `${label}: TON is not conserved`);
    assert.ok(fwdInFlight > 0n);
    return { deposits, charged, workerPaid };
  };
  const totals = await assertConserved('settled');
  const p = await proxy.getProxyData();
  const clientData = await Promise.all(clients.map((c) => c.contract.getClientData()));
  const workerData = await Promise.all(workers.map((w) => w.contract.getWorkerData()));

  // (2) Each client contract charged the newest authorisation it accepted (less only if the balance ran
  // out), never more than the client signed; a client the proxy served within its credit is charged in full.
  for (const [i, c] of clients.entries()) {
    const d = clientData[i]!;
    const signedTotal = c.signed.at(-1)?.payload.total ?? 0n;
    const accepted = d.seqno === 0n ? 0n : c.signed[Number(d.seqno) - 1]!.payload.total;
    assert.equal(d.charged, c.model.charged);
    assert.ok(d.charged <= accepted && accepted <= signedTotal);
    if (!c.short) assert.equal(d.charged, accepted, `client ${i}`);
    if (c.index !== RECKLESS) {
      assert.ok(!c.everCapped, `client ${i} was served beyond its credit`);
      assert.equal(d.charged, signedTotal, `client ${i}: every authorisation redeemed`);
      c.account.chain = { deployed: true, ...d };
      assert.equal(c.account.unredeemed, 0n);
    }
  }

  // (3) Each worker owner received exactly the worker total the proxy signed last (everything accrued).
  for (const [i, w] of workers.entries()) {
    const d = workerData[i]!;
    const newest = w.signed.at(-1)?.payload;
    assert.equal(w.received, d.paidWorker);
    assert.equal(w.received, newest?.workerTotal ?? 0n);
    assert.equal(w.received, w.account.accruedWorker);
    assert.equal(d.paidProxy, w.account.accruedProxy);
  }

  // (4) The commission is exactly the proxy parts paid out through the worker contracts (all withdrawn),
  // less what of it, still maturing, paid workers when the pool ran short.
  assert.equal(
    p.commission + maturingOf(p) + proxyOwnerReceived + commissionSpent,
    sum(workerData.map((d) => d.paidProxy)),
  );
  assert.equal(proxyOwnerReceived + commissionSpent, sum(workers.map((w) => w.account.accruedProxy)));
  assert.equal(p.commission + maturingOf(p), 0n);

  // Every contract again holds its tracked funds plus the storage reserve, exactly if its last message
  // went through. (A refused message still pays the storage fee due since the contract's previous
  // transaction out of that reserve, before its compute phase fails and the whole value bounces; the next
  // accepted message tops the reserve up again from its excess. The tracked fields are never touched.)
  for (const [i, c] of clients.entries()) await checkHeld(c.contract.address, clientData[i]!.balance, 'end');
  for (const w of workers) await checkHeld(w.contract.address, 0n, 'end');
  await checkHeld(proxy.address, proxyTracked(p), 'end');
  await checkHeld(root.address, 0n, 'end');
  assert.deepEqual(await root.getParams(), params);

  // --- epilogue: the proxy contract closes; what is sent to it afterwards comes back -------------------
  const proxyClose = async () => {
    const expected = modelProxyClose(pm, now());
    const r = track(await proxy.sendClose(proxyOwner.getSender(), GAS));
    assertOutcome(r, proxy.address, Op.proxyClose, [isRefused(expected) ? expected.refused : null]);
    if (isRefused(expected)) return expected.refused;
    assert.equal(receivedBy(r, proxyOwner.address, Op.proxyPaid), expected.paid);
    return null;
  };
  assert.equal(modelProxyRequestClose(pm, now()), null);
  r = track(await proxy.sendRequestClose(proxyOwner.getSender(), GAS));
  assertOutcome(r, proxy.address, Op.proxyRequestClose, [null]);
  last = await checkModel('proxy closing');
  assert.equal(await addStake(toNano('1'), toNano('1') + GAS), 'refused'); // closing: no more stake
  assert.equal(await proxyClose(), ExitCode.tooEarly);
  assert.deepEqual(plain(await checkModel('proxy close, too early')), plain(last));
  // Workers are still paid while closing; the commission this credits is still maturing at the close.
  const lateWorker = workers[workers.length - 1]!;
  lateWorker.account.accrue(toNano('0.01'), toNano('0.002'));
  assert.equal(await submitPayouts(lateWorker, [signPayout(lateWorker)]), 'ok');
  let paidWhileClosing = toNano('0.01');
  assert.ok(maturingOf(pm) > 0n);
  blockchain.now = pm.unlockAt;
  assert.equal(await proxyClose(), null);
  await checkModel('proxy closed');
  if (maturingOf(pm) > 0n) {
    // It stays in the closed contract, backs payouts (a worker is paid from it), then matures for the owner.
    lateWorker.account.accrue(1n, 0n);
    assert.equal(await submitPayouts(lateWorker, [signPayout(lateWorker)]), 'ok');
    paidWhileClosing += 1n;
    assert.equal(await withdrawCommission(), 'ok');
    blockchain.now = Math.max(now(), fullyMaturedAt(pm));
    assert.equal(await withdrawCommission(), 'ok');
    assert.equal(maturingOf(pm), 0n);
    await checkModel('proxy closed, commission matured and withdrawn');
  }
  // A client signs for more: the charge goes through, its proceeds bounce, and the client contract puts
  // the amount back (the seqno stays consumed).
  const payer = clients.find((c) => c.model.state !== CLOSED && c.model.balance > 0n);
  if (payer) {
    const auth = signAuth(payer, 12_345n);
    payer.signed.push(auth);
    assert.equal(await submitCharges(payer, [auth]), 'ok');
    assert.equal(stats['charge bounced by the closed proxy, rolled back'], 1);
  }
  // A worker is owed more: the closed proxy cannot pay, and the worker contract rolls back.
  const owed = workers[0]!;
  owed.account.accrue(1_000n, 100n);
  const refusedBefore = stats['payout refused by the proxy (pool + stake too small), rolled back'] ?? 0;
  assert.equal(await submitPayouts(owed, [signPayout(owed)]), 'ok');
  assert.equal(stats['payout refused by the proxy (pool + stake too small), rolled back'], refusedBefore + 1);
  await checkModel('after the proxy closed');
  const after = await assertConserved('after the proxy closed');
  assert.equal(after.workerPaid, totals.workerPaid + paidWhileClosing);
  assert.equal(after.charged, totals.charged);

  // --- epilogue: a proxy contract that does not exist: forwarded messages bounce and are rolled back ----
  /** The one message to `to` bounced (the account has no code), and the sender took the bounce. */
  const assertBouncedOff = (r: SendMessageResult, to: Address, back: Address) => {
    const lost = r.transactions.map(flatten).filter((f) => f.to?.equals(to));
    assert.equal(lost.length, 1);
    assert.ok(lost[0]!.aborted && lost[0]!.outValues.length === 1 && lost[0]!.outValues[0]!.to.equals(back));
    const rollback = txOf(r, { to: back, bounced: true });
    assert.ok(!rollback.aborted, `the rollback at ${back} failed with ${rollback.exitCode}`);
    assert.deepEqual(
      failures(r).map((f) => f.to?.toString()),
      [back.toString()],
      'only the bounce itself counts as a failure',
    );
  };
  const orphanDeposit = params.minClientStake + toNano('0.5');
  r = track(await orphanClient.sendTopUp(stranger.getSender(), orphanDeposit + GAS, orphanDeposit));
  assertOutcome(r, orphanClient.address, Op.clientTopUp, [null]);
  const orphanAuth = signClientAuth(
    { globalId: GLOBAL_ID.mainnet, contract: orphanClient.address, seqno: 1n, total: toNano('0.3') },
    orphanKeys.privateKey,
  );
  r = track(await orphanClient.sendCharge(proxyNode.getSender(), GAS, orphanAuth));
  assertBouncedOff(r, ghostProxy.address, orphanClient.address);
  const orphanData = await orphanClient.getClientData();
  assert.deepEqual(
    { balance: orphanData.balance, charged: orphanData.charged, seqno: orphanData.seqno },
    { balance: orphanDeposit, charged: 0n, seqno: 1n }, // put back; the seqno stays consumed
  );
  await checkHeld(orphanClient.address, orphanDeposit, 'orphan client');
  assert.ok(receivedBy(r, proxyNode.address, Op.excesses) > 0n); // the gas goes back to the submitter
  const orphanPayout = signWorkerPayout(
    {
      globalId: GLOBAL_ID.mainnet,
      contract: orphanWorker.address,
      seqno: 1n,
      workerTotal: 1_000n,
      proxyTotal: 1n,
    },
    proxyKeys.privateKey,
  );
  r = track(await orphanWorker.sendPayout(stranger.getSender(), GAS, orphanPayout));
  assertBouncedOff(r, ghostProxy.address, orphanWorker.address);
  const orphanWorkerData = await orphanWorker.getWorkerData();
  assert.deepEqual(
    {
      seqno: orphanWorkerData.seqno,
      paidWorker: orphanWorkerData.paidWorker,
      paidProxy: orphanWorkerData.paidProxy,
    },
    { seqno: 1n, paidWorker: 0n, paidProxy: 0n },
  );
  await checkHeld(orphanWorker.address, 0n, 'orphan worker');
  assert.equal(receivedBy(r, stranger.address, Op.workerPaid), 0n);
  await assertConserved('after the bounces off a missing proxy contract');

  // No payment of nothing is ever sent.
  assert.deepEqual(zeroPayments, [], 'a payment of zero was sent');

  // The run exercised what it is meant to (a fixed seed makes these deterministic).
  for (const k of [
    'request',
    'charge',
    'charge refused 106',
    'payout',
    'payout refused 106',
    'withdraw',
    'withdraw refused 109',
    'close',
  ]) {
    assert.ok((stats[k] ?? 0) > 0, `the run never did "${k}"`);
  }
  t.diagnostic(
    Object.entries(stats)
      .sort()
      .map(([k, n]) => `${k}: ${n}`)
      .join('; '),
  );
  t.diagnostic(
    `deposits ${fromNano(totals.deposits)} TON, charged ${fromNano(totals.charged)}, ` +
      `to workers ${fromNano(totals.workerPaid)}, ` +
      `to the proxy owner ${fromNano(proxyOwnerReceived)}, proxy stake ${fromNano(p.stake)} of ${fromNano(stakeAdded)}; ` +
      `fees ${fromNano(fees + fwdInFlight)} TON; ${Date.now() - started} ms`,
  );
});

it('a withdrawal of 0 sends no refund (docs/payments.md: "Nothing is sent for a zero amount")', async () => {
  const codes = await contractCodes();
  const blockchain = await Blockchain.create({ config: 'slim' });
  blockchain.now = T0;
  const owner = await blockchain.treasury('owner');
  const rng = new Rng(1);
  const client = blockchain.openContract(
    ClientContract.fromInit(
      {
        owner: owner.address,
        proxy: owner.address,
        clientKey: keysFrom(rng).uint,
      },
      codes.client,
    ),
  );
  const deposit = toNano('2');
  const topUp = await client.sendTopUp(owner.getSender(), deposit + GAS, deposit);
  assert.ok(topUp.transactions.map(flatten).every((f) => !f.aborted));
  const r = await client.sendWithdraw(owner.getSender(), GAS, 0n);
  const withdrawal = txOf(r, { to: client.address, op: Op.clientWithdraw });
  assert.ok(!withdrawal.aborted);
  assert.deepEqual(
    withdrawal.outValues.filter((o) => o.op === Op.clientRefund).map((o) => o.value),
    [],
    'a refund of 0 was sent',
  );
});
