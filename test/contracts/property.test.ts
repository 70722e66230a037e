import assert from 'node:assert/strict';
import { it } from 'node:test';
import { Address, beginCell, type Cell, fromNano, internal, toNano } from '@ton/core';
import {
  Blockchain,
  type SandboxContract,
  type SendMessageResult,
  type TreasuryContract,
} from '@ton/sandbox';
import {
  ClientContract,
  clientChargeBody,
  clientCloseBody,
  clientRequestCloseBody,
  clientWithdrawBody,
  increaseStakeBody,
  raiseTermsBody,
  topUpBody,
} from '../../src/chain/contracts/client-contract.ts';
import {
  ExitCode,
  MIN_FORWARD_VALUE,
  MIN_PROCEEDS_GAS,
  Op,
  STORAGE_RESERVE,
} from '../../src/chain/contracts/opcodes.ts';
import type { RootParams } from '../../src/chain/contracts/params.ts';
import {
  addStakeBody,
  chargeProceedsBody,
  ProxyContract,
  proxyCloseBody,
  proxyRequestCloseBody,
  proxyTracked,
  raiseCloseDelayBody,
  withdrawCommissionBody,
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
  availableFloor,
  CLOSED,
  CLOSING,
  type ClientModel,
  CommissionCredits,
  fullyMaturedAt,
  isRefused,
  keysFrom,
  MAX_SEQNO,
  maxOf,
  modelAddStake,
  modelAvailable,
  modelCharge,
  modelClose,
  modelIncreaseStake,
  modelMature,
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
  type ProxyFlows,
  type ProxyModel,
  type ProxySnapshot,
  proxySnapshot,
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
 * Dishonest actors take part in the same walk:
 * - two rogue clients, served by the proxy like the honest ones, that also submit charges of their own,
 *   signed with their own key, with any seqno (0, equal, lower, 2^64 − 1) and any total (below, equal to,
 *   1 above what was charged, above anything they signed, above their balance), and that ask to close and
 *   close while the proxy holds unredeemed authorisations: rogue 0 faces an honest proxy (it redeems as soon
 *   as it sees request_close), rogue 1 a late one (it redeems only after the unlock, racing the close);
 * - the proxy key signing payouts to itself: proxy totals into the commission on honest workers' contracts,
 *   and worker totals to a sybil worker contract whose owner the proxy owner controls; the proxy owner
 *   withdrawing commission and trying to close early; time jumps of up to 2 D so commission matures;
 * - strangers: plain transfers (bounceable or not, with and without body, text comments), unknown ops,
 *   valid ops only someone else may send (charge_proceeds short of its value, worker_payout_request,
 *   payout_refused, owners' ops), charges and payouts signed by the wrong key / for another contract /
 *   network, charge_proceeds that really carry their amount (a donation to the pool), and bounces that did
 *   not come from a message of ours.
 * After every step: value conservation (tracked and TON, to the nanoton), every getter on the model, and the
 * bounds of `checkBounds` below.
 *
 * Deterministic from the seed (keys too); replay a failure with COCOON_PROPERTY_SEED=<seed>.
 */

const SEED = Number(process.env.COCOON_PROPERTY_SEED ?? 0xc0c0a11) >>> 0;
const STEPS = Number(process.env.COCOON_PROPERTY_STEPS ?? 300);
const N_CLIENTS = 4;
/** Clients after the honest ones that also submit charges of their own (`Client.rogue`). */
const N_ROGUES = 2;
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
  /** A client that also submits charges of its own; `late`: the proxy redeems its authorisations only after
   * the unlock once it asked to close (else at once, as an honest proxy does). */
  rogue: { late: boolean; atRequestClose?: bigint } | null;
  /** Authorisations the rogue signed and submitted itself (arbitrary seqnos and totals). */
  selfSigned: Signed<ClientAuth>[];
  /** At the close: what the proxy held signed and unredeemed (the client escaped it). */
  escaped: bigint | null;
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
  /** When each payout in `signed` was signed (and handed to the worker), with the proxy contract then. */
  signedAt: ProxySnapshot[];
  /** The highest proxy total the proxy key signed for this contract on its own (into the commission) that
   * the contract paid. */
  diverted: bigint;
}

/** The sybil worker: a worker contract whose owner the proxy owner controls. */
interface Sybil {
  owner: SandboxContract<TreasuryContract>;
  contract: SandboxContract<WorkerContract>;
  model: WorkerModel;
  received: bigint;
  /** The highest worker total the proxy key signed for it. */
  signedMax: bigint;
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
  for (let i = 0; i < N_CLIENTS + N_ROGUES; i++) {
    clientOwners.push(await blockchain.treasury(i < N_CLIENTS ? `client-${i}` : `rogue-${i - N_CLIENTS}`));
  }
  const sybilOwner = await blockchain.treasury('sybil'); // controlled by the proxy owner
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
      rogue: index >= N_CLIENTS ? { late: index === N_CLIENTS + 1 } : null,
      selfSigned: [],
      escaped: null,
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
      signedAt: [],
      diverted: 0n,
    };
  });
  const rogues = clients.filter((c) => c.rogue);
  const sybil: Sybil = {
    owner: sybilOwner,
    contract: blockchain.openContract(
      WorkerContract.fromInit(
        { owner: sybilOwner.address, proxy: proxy.address, proxyKey: proxyKeys.uint },
        codes.worker,
      ),
    ),
    model: { deployed: false, seqno: 0n, paidWorker: 0n, paidProxy: 0n },
    received: 0n,
    signedMax: 0n,
  };
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
    sybilOwner,
    ...clientOwners,
    ...workerOwners,
    root,
    proxy,
    ...clients.map((c) => c.contract),
    ...workers.map((w) => w.contract),
    sybil.contract,
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
  /** Value of the messages the test injected (forged bounces "from" the stranger): it came from nowhere. */
  let injected = 0n;
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
  /** … of which commission (withdraw_commission, and the matured part of the close payout). */
  let proxyCommissionReceived = 0n;
  /** `charge_proceeds` strangers sent with their full amount (a gift to the pool). */
  let poolDonated = 0n;
  /** What the stranger gave away on purpose: top-ups of others' contracts, gifts to the pool. */
  let strangerDonated = 0n;
  const flows: ProxyFlows = { inflow: 0n, honestPaid: 0n, sybilPaid: 0n, closePaid: 0n };
  /** The proxy contract at the start of every step and at every payout signed, for guarantee 2. */
  const snapshots: ProxySnapshot[] = [];
  const snapshot = () => {
    const s = proxySnapshot(pm, now(), flows);
    snapshots.push(s);
    return s;
  };
  const credits = new CommissionCredits();
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
    sybil.received += receivedBy(r, sybilOwner.address, Op.workerPaid);
    proxyOwnerReceived += receivedBy(r, proxyOwner.address, Op.proxyPaid);
    return r;
  };

  const walletList = [
    rootOwner,
    proxyOwner,
    proxyNode,
    stranger,
    sybilOwner,
    ...clientOwners,
    ...workerOwners,
  ];
  const wallets = new Set(walletList.map((w) => w.address.toRawString()));
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
    sybil: (await isActive(sybil.contract.address)) ? await sybil.contract.getWorkerData() : null,
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
    assert.equal(await isActive(sybil.contract.address), sybil.model.deployed, `${label}: sybil deployed`);
    if (v.sybil) {
      const d = v.sybil;
      assert.deepEqual(
        { deployed: true, seqno: d.seqno, paidWorker: d.paidWorker, paidProxy: d.paidProxy },
        { ...sybil.model },
        `${label}: sybil worker`,
      );
      await checkHeld(sybil.contract.address, 0n, label);
      // the sybil gets exactly what its contract counts as paid, never more than the proxy key signed to it
      assert.equal(sybil.received, d.paidWorker, `${label}: sybil received`);
      assert.ok(sybil.received <= sybil.signedMax, `${label}: sybil paid beyond what was signed`);
    }
    for (const c of clients) {
      const d = v.clients[c.index]!;
      // No client contract ever pays out more than the highest total its key signed (a rogue's own too).
      const maxSigned = [...c.signed, ...c.selfSigned].reduce((m, a) => maxOf(m, a.payload.total), 0n);
      assert.ok(d.charged <= maxSigned, `${label}: client ${c.index} charged beyond all it signed`);
      // What the proxy holds signed is always redeemable in full (credit is extended only against the
      // stake, which the owner cannot withdraw), whatever the client submits itself, until it closes.
      if (c.index !== RECKLESS && d.state !== CLOSED) {
        const held = c.signed.at(-1)?.payload.total ?? 0n;
        assert.ok(d.balance >= held - d.charged, `${label}: client ${c.index} cannot cover what it signed`);
      }
    }
    for (const c of clients) {
      if (c.rogue) continue; // its own charges set the seqno to anything (checked in checkBounds)
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
    if (from === stranger) strangerDonated += amount;
    return 'ok';
  };

  /** Submits `auths` to `c` (several at once: one external, so all first hops run before the proxy's). */
  const submitCharges = async (
    c: Client,
    auths: Signed<ClientAuth>[],
    from: SandboxContract<TreasuryContract> = proxyNode,
  ): Promise<Outcome> => {
    const expected = auths.map((a) => modelCharge(c.model, pm, a.payload));
    for (const e of acceptedOf(expected)) if (!e.bounced) flows.inflow += e.taken;
    const r = track(
      auths.length === 1
        ? await c.contract.sendCharge(from.getSender(), GAS, auths[0]!)
        : await from.sendMessages(
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
    if (!c.rogue) {
      const newestAccepted = c.model.seqno === 0n ? 0n : c.signed[Number(c.model.seqno) - 1]!.payload.total;
      c.short = c.model.charged < newestAccepted;
    }
    return accepted.length === 0 ? 'refused' : 'ok';
  };

  /** Submits `payouts` for `w` (several at once: all worker hops first, then the proxy's, then rollbacks). */
  /**
   * An honest worker redeems `s` (with `due` to pay, when the contract could pay `available`): if within D
   * of being handed `s`, it is paid in full whenever the floor of guarantee 2 covers it; if it is refused
   * all the same, that is because a sybil worker of the proxy took the funds first (the shortfall is at most
   * what the sybil was paid meanwhile), or because the proxy signed more than its contract ever held.
   */
  const checkHonestRedemption = (
    w: Worker,
    s: Signed<WorkerPayout>,
    due: bigint,
    available: bigint,
    paid: boolean,
  ) => {
    const k = w.signed.indexOf(s);
    assert.ok(k >= 0);
    const at = w.signedAt[k]!;
    if (now() - at.at > pm.closeDelay) {
      count(`honest payout redeemed ${paid ? '' : 'and refused '}more than D after it was signed`);
      return;
    }
    const floor = availableFloor(at, flows);
    const label = `worker ${w.index} redeeming payout ${s.payload.seqno} ${now() - at.at} s after it was signed`;
    assert.ok(available >= floor, `${label}: the proxy contract can pay ${available} < ${floor}`);
    if (due <= floor) assert.ok(paid, `${label}: refused, though within its floor`);
    if (paid) return;
    const sybilMeanwhile = flows.sybilPaid - at.flows.sybilPaid;
    if (due <= floor + sybilMeanwhile) {
      count('honest payout refused within D: a sybil worker took the funds first');
      assert.ok(due - available <= sybilMeanwhile, `${label}: short by more than the sybil took`);
    } else count('honest payout refused within D: signed beyond what the proxy contract held');
  };

  interface PayoutTarget {
    contract: SandboxContract<WorkerContract>;
    model: WorkerModel;
    owner: SandboxContract<TreasuryContract>;
  }
  type PayoutKind = 'honest' | 'sybil' | 'diversion';

  /** Submits `payouts` for `w` (several at once: all worker hops first, then the proxy's, then rollbacks). */
  const submitPayouts = (w: Worker, payouts: Signed<WorkerPayout>[]) =>
    submitPayoutsTo(w, payouts, w.owner, 'honest', w);

  const submitPayoutsTo = async (
    target: PayoutTarget,
    payouts: Signed<WorkerPayout>[],
    from: SandboxContract<TreasuryContract>,
    kind: PayoutKind,
    honest?: Worker,
  ): Promise<Outcome> => {
    const w = target;
    const atWorker = payouts.map((s) => modelPayoutAtWorker(w.model, s.payload));
    const atProxy = atWorker.map((x, i) => {
      if (isRefused(x)) return null;
      const available = modelAvailable(pm, now());
      const paid = modelPayoutAtProxy(w.model, pm, x.dw, x.dp, now());
      if (honest) checkHonestRedemption(honest, payouts[i]!, x.dw + x.dp, available, paid !== false);
      if (paid) {
        credits.credit(now(), x.dp);
        if (kind === 'sybil') flows.sybilPaid += x.dw;
        else flows.honestPaid += x.dw;
      }
      return paid;
    });
    const r = track(
      payouts.length === 1
        ? await w.contract.sendPayout(from.getSender(), GAS, payouts[0]!)
        : await from.sendMessages(
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
    const prefix = kind === 'honest' ? '' : `${kind} `;
    for (const [i, x] of atWorker.entries()) {
      if (isRefused(x)) count(`${prefix}payout refused ${x.refused}`);
      else if (atProxy[i]) {
        count(`${prefix}${atProxy[i].fromMaturing > 0n ? 'payout backed by maturing commission' : 'payout'}`);
        commissionSpent += atProxy[i].fromMaturing;
        paidNow += x.dw;
      } else count(`${prefix}payout refused by the proxy (pool + stake too small), rolled back`);
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

  /** The client's next authorisation for the proxy: `more` above what it signed before, or above what its
   * contract has charged if that is higher (a rogue's own charges: `ClientAccount.base`). */
  const signAuth = (c: Client, more: bigint): Signed<ClientAuth> => {
    const prev = c.signed.at(-1)?.payload;
    return signClientAuth(
      {
        globalId: GLOBAL_ID.mainnet,
        contract: c.contract.address,
        seqno: (prev?.seqno ?? 0n) + 1n,
        total: maxOf(prev?.total ?? 0n, c.rogue ? c.model.charged : 0n) + more,
      },
      c.keys.privateKey,
    );
  };

  /** A request: billed with requestCost, signed by the client, accrued by the proxy for the worker. */
  const request = async (step: number, forced?: Client): Promise<Outcome> => {
    const c = forced ?? (rng.chance(0.35) ? clients[RECKLESS]! : rng.pick(clients));
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

  /** The proxy redeems only what it may: a late proxy does not redeem a rogue's authorisations between its
   * request_close and the unlock. */
  const proxyRedeems = (c: Client) =>
    c.signed.length > 0 && !(c.rogue?.late && c.model.state === CLOSING && now() < c.model.unlockAt);

  const charge = async (): Promise<Outcome> => {
    const candidates = clients.filter(proxyRedeems);
    if (candidates.length === 0) return 'skipped';
    const c = rng.pick(candidates);
    // ordered by totals: one above what was charged takes, one at or below it is a replay
    const unredeemed = c.signed.filter((a) => a.payload.total > c.model.charged);
    const stale = c.signed.filter((a) => a.payload.total <= c.model.charged);
    if (unredeemed.length > 0 && (stale.length === 0 || rng.chance(0.75))) {
      // usually the newest; sometimes an older one not yet redeemed (valid, takes less)
      return submitCharges(c, [rng.chance(0.8) ? c.signed.at(-1)! : rng.pick(unredeemed)]);
    }
    return submitCharges(c, [rng.pick(stale)]); // a replay
  };

  const chargeBatch = async (): Promise<Outcome> => {
    const candidates = clients.filter(proxyRedeems);
    if (candidates.length === 0) return 'skipped';
    const c = rng.pick(candidates);
    return submitCharges(c, [rng.pick(c.signed), rng.pick(c.signed)]);
  };

  const signPayout = (w: Worker): Signed<WorkerPayout> => {
    const s = w.account.signPayout(proxyKeys.privateKey);
    assert.equal(s.payload.seqno, BigInt(w.signed.length + 1));
    w.signed.push(s);
    w.signedAt.push(snapshot());
    return s;
  };

  const payout = async (): Promise<Outcome> => {
    const w = rng.pick(workers);
    // ordered by totals (each on its own): a payout takes iff one of its totals is above what was paid
    const takes = (s: Signed<WorkerPayout>) =>
      s.payload.workerTotal > w.model.paidWorker || s.payload.proxyTotal > w.model.paidProxy;
    if (rng.chance(0.25)) {
      const stale = w.signed.filter((s) => !takes(s));
      if (stale.length === 0) return 'skipped';
      return submitPayouts(w, [rng.pick(stale)]); // a replay
    }
    const held = w.signed.filter(takes);
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
      seqno: (w.model.seqno + BigInt(rng.int(1, 3))) & MAX_SEQNO, // (wrapped: the proxy key may have signed 2^64 − 1)
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
    proxyCommissionReceived += amount;
    count(amount > 0n ? 'withdraw commission' : 'withdraw commission (nothing matured)');
    return 'ok';
  };

  const addStake = async (amount: bigint, attached: bigint): Promise<Outcome> => {
    const expected = modelAddStake(pm, amount, attached, MIN_FORWARD_VALUE);
    const r = track(await proxy.sendAddStake(proxyOwner.getSender(), attached, amount));
    assertOutcome(r, proxy.address, Op.proxyAddStake, [expected?.refused ?? null]);
    count(expected ? `add stake refused ${expected.refused}` : 'add stake');
    if (expected) return 'refused';
    stakeAdded += amount;
    flows.inflow += amount;
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
    if (c.rogue) {
      const unredeemed = maxOf((newest?.payload.total ?? 0n) - c.model.charged, 0n);
      c.rogue.atRequestClose = unredeemed;
      count(`rogue ${c.index} asked to close${unredeemed > 0n ? ' while the proxy held unredeemed' : ''}`);
      if (c.rogue.late) return 'ok'; // this proxy only comes back after the unlock
    }
    if (newest && newest.payload.total > c.model.charged) await submitCharges(c, [newest]);
    return 'ok';
  };

  const close = async (c: Client): Promise<Outcome> => {
    const unredeemed = maxOf((c.signed.at(-1)?.payload.total ?? 0n) - c.model.charged, 0n);
    const expected = modelClose(c.model, now());
    const r = track(await c.contract.sendClose(c.owner.getSender(), GAS));
    assertOutcome(r, c.contract.address, Op.clientClose, [isRefused(expected) ? expected.refused : null]);
    if (isRefused(expected)) {
      count(`close refused ${expected.refused}`);
      return 'refused';
    }
    assert.equal(receivedBy(r, c.owner.address, Op.clientRefund), expected.refund);
    count('close');
    if (c.rogue) {
      // What a client can escape by closing: only what the proxy held and had not redeemed by the close —
      // nothing with a proxy that redeems when it sees request_close, and never more than the stake.
      c.escaped = unredeemed;
      count(
        `rogue ${c.index} closed${unredeemed > 0n ? ', escaping what the late proxy had not redeemed' : ''}`,
      );
      if (!c.rogue.late) assert.equal(unredeemed, 0n, `rogue ${c.index} escaped an honest proxy`);
      assert.ok(unredeemed <= c.model.stake, `rogue ${c.index} escaped more than its stake`);
      assert.ok(unredeemed <= (c.rogue.atRequestClose ?? 0n), `rogue ${c.index}: signed more while closing`);
    }
    return 'ok';
  };

  // --- conservation and the bounds on what each party can take, after every step -------------------------
  const sum = (xs: bigint[]) => xs.reduce((a, b) => a + b, 0n);

  /** (1) and (5): conservation of the tracked value and of TON, from the chain as it is now. */
  const assertConserved = async (label: string) => {
    const p = await proxy.getProxyData();
    const clientData = await Promise.all(clients.map((c) => c.contract.getClientData()));
    // (1) Every nanoton deposited (and staked, and given to the pool) is in a client contract, back with its
    // owner, with a worker owner (the sybil too), with the proxy owner (commission, close payout), or in the
    // proxy contract — to the nanoton.
    const deposits = sum(clients.map((c) => c.toppedUp));
    const held = sum(clientData.map((d) => d.balance));
    const refunds = sum(clients.map((c) => c.refunded));
    const workerPaid = sum(workers.map((w) => w.received));
    const inProxy = p.commission + maturingOf(p) + p.pool + p.stake;
    assert.equal(
      deposits + stakeAdded + poolDonated,
      held + refunds + workerPaid + sybil.received + proxyOwnerReceived + inProxy,
      `${label}: tracked value is not conserved`,
    );
    // … split at the client contracts' edge: what they no longer hold was refunded or charged, and what
    // was charged (with the stake) is with the workers, the proxy owner, or still in the proxy contract.
    const charged = sum(clientData.map((d) => d.charged));
    assert.equal(deposits, held + refunds + charged, label);
    assert.equal(
      charged + stakeAdded + poolDonated,
      workerPaid + sybil.received + proxyOwnerReceived + inProxy,
      label,
    );
    // … and per client: every client (honest or not) gets back its deposits less what was charged.
    for (const [i, c] of clients.entries()) {
      const d = clientData[i]!;
      assert.equal(c.refunded + d.balance, c.toppedUp - d.charged, `${label}: client ${i} refund`);
    }

    // (5) TON itself: every nanoton the accounts started with (and the test injected) is in one of them or
    // went to fees. A transaction's total_fees holds only the part of a forward fee the sender's shard keeps
    // (first_frac); the rest travels in the message's fwd_fee field and goes to the validators when the
    // message is imported, in no transaction's total_fees. So the exact statement adds those in-flight
    // parts; nothing else is approximate (every transaction of the run is on one of these accounts: `track`
    // checks it).
    assert.equal(
      (await tonTotal()) + fees + fwdInFlight,
      initialTon + injected,
      `${label}: TON is not conserved`,
    );
    assert.ok(fwdInFlight > 0n);
    return { deposits, charged, workerPaid };
  };

  let strangerStart = 0n; // set after the set-up

  /** The bounds no actor may cross, after every step. */
  const checkBounds = async (label: string) => {
    await assertConserved(label);
    const d = pm.closeDelay;
    // Guarantee 2: what was in the pool or the stake at any T in the last D is still payable, less what was
    // paid to workers (honest or sybil) since, plus what came in.
    const available = modelAvailable(pm, now());
    while (snapshots.length > 0 && now() - snapshots[0]!.at > d) snapshots.shift();
    for (const s of snapshots) {
      const floor = availableFloor(s, flows);
      assert.ok(available >= floor, `${label}: can pay ${available}, below ${floor} owed since ${s.at}`);
    }
    // The proxy owner: commission only once matured (credited at least D before), plus stake and pool at
    // the close.
    const creditedLongAgo = credits.creditedBy(now() - d);
    assert.ok(
      proxyCommissionReceived <= creditedLongAgo,
      `${label}: the proxy owner received ${proxyCommissionReceived} of commission, only ${creditedLongAgo} matured`,
    );
    assert.equal(proxyOwnerReceived, proxyCommissionReceived + flows.closePaid, label);
    // A stranger never gains: what it holds is at most what it started with (and was injected as its own)
    // less what it gave away.
    const strangerNow = await balanceOf(blockchain, stranger.address);
    assert.ok(
      strangerNow <= strangerStart + injected - strangerDonated,
      `${label}: the stranger gained ${strangerNow - (strangerStart + injected - strangerDonated)}`,
    );
  };

  // --- dishonest actors -----------------------------------------------------------------------------------
  const strangerKeys = keysFrom(rng);
  const isDeployed = (w: { model: WorkerModel }) => w.model.deployed;

  /** A rogue submits a charge of its own: any seqno, any total, signed with its own key (sometimes together
   * with the proxy's newest, which it may submit too). */
  const selfCharge = async (): Promise<Outcome> => {
    const c = rng.pick(rogues);
    const m = c.model;
    const seqno = rng.pick([
      0n,
      m.seqno,
      m.seqno > 0n ? m.seqno - 1n : 0n,
      (m.seqno + 1n) & MAX_SEQNO,
      MAX_SEQNO,
      rng.big(0n, MAX_SEQNO),
    ]);
    const maxSigned = [...c.signed, ...c.selfSigned].reduce((x, a) => maxOf(x, a.payload.total), 0n);
    const kind = rng.weighted({ below: 1, equal: 1, plusOne: 2, held: 1, aboveSigned: 2, aboveBalance: 1 });
    const total =
      kind === 'below'
        ? m.charged > 0n
          ? rng.big(0n, m.charged - 1n)
          : 0n
        : kind === 'equal'
          ? m.charged
          : kind === 'plusOne'
            ? m.charged + 1n
            : kind === 'held'
              ? (c.signed.at(-1)?.payload.total ?? 0n)
              : kind === 'aboveSigned'
                ? maxOf(maxSigned, m.charged) + rng.big(1n, toNano('0.5'))
                : m.charged + m.balance + rng.big(1n, toNano('1'));
    const auth = signClientAuth(
      { globalId: GLOBAL_ID.mainnet, contract: c.contract.address, seqno, total },
      c.keys.privateKey,
    );
    c.selfSigned.push(auth);
    count(
      `rogue charge (${kind}${seqno === MAX_SEQNO ? ', seqno 2^64-1' : seqno === 0n ? ', seqno 0' : ''})`,
    );
    const held = c.signed.at(-1);
    return submitCharges(c, held && rng.chance(0.2) ? [auth, held] : [auth], c.owner);
  };

  /** A rogue asks to close (best with unredeemed authorisations at the proxy), closes, or — closed — sees
   * the late proxy come back to redeem (refused: the contract is closed). */
  const rogueClose = async (step: number): Promise<Outcome> => {
    const c = rng.pick(rogues);
    if (c.model.state === OPEN) {
      // the late proxy's rogue asks only while the proxy holds something unredeemed (then races it)
      const unredeemed = (c.signed.at(-1)?.payload.total ?? 0n) > c.model.charged;
      if (step < STEPS / 3 || (!unredeemed && (c.rogue!.late || rng.chance(0.7)))) return 'skipped';
      return requestClose(c);
    }
    if (c.model.state === CLOSING) return close(c);
    const newest = c.signed.at(-1);
    if (!newest) return 'skipped';
    count(`rogue ${c.index}: the proxy redeems after the close`);
    return submitCharges(c, [newest]);
  };

  /** How much a payout the proxy key signs for itself asks for. */
  const greed = (): bigint => {
    const available = modelAvailable(pm, now());
    const mode = rng.weighted({ pool: 2, everything: 2, tooMuch: 1, some: 3 });
    const x =
      mode === 'pool'
        ? pm.pool
        : mode === 'everything'
          ? available
          : mode === 'tooMuch'
            ? available + rng.big(1n, toNano('1'))
            : rng.big(1n, maxOf(pm.pool / 2n, 1n));
    return maxOf(x, 1n);
  };
  const anySeqno = (current: bigint) =>
    rng.pick([0n, current, (current + 1n) & MAX_SEQNO, MAX_SEQNO, rng.big(0n, MAX_SEQNO)]);

  /** The proxy key pays the sybil worker (whose owner the proxy owner controls) as if it had worked. */
  const sybilPayout = async (): Promise<Outcome> => {
    const payload: WorkerPayout = {
      globalId: GLOBAL_ID.mainnet,
      contract: sybil.contract.address,
      seqno: anySeqno(sybil.model.seqno),
      workerTotal: sybil.model.paidWorker + greed(),
      proxyTotal: sybil.model.paidProxy + (rng.chance(0.3) ? rng.big(0n, toNano('0.1')) : 0n),
    };
    sybil.signedMax = maxOf(sybil.signedMax, payload.workerTotal);
    return submitPayoutsTo(sybil, [signWorkerPayout(payload, proxyKeys.privateKey)], sybilOwner, 'sybil');
  };

  /** The proxy key signs, on an honest worker's contract, a proxy total far above what it earned there. */
  const divertCommission = async (): Promise<Outcome> => {
    const deployed = workers.filter(isDeployed);
    if (deployed.length === 0) return 'skipped';
    const w = rng.pick(deployed);
    const payload: WorkerPayout = {
      globalId: GLOBAL_ID.mainnet,
      contract: w.contract.address,
      seqno: anySeqno(w.model.seqno),
      workerTotal: rng.pick([0n, w.model.paidWorker]), // nothing more for the worker
      proxyTotal: w.model.paidProxy + greed(),
    };
    const outcome = await submitPayoutsTo(
      w,
      [signWorkerPayout(payload, proxyKeys.privateKey)],
      proxyNode,
      'diversion',
    );
    w.diverted = maxOf(w.diverted, w.model.paidProxy); // what of it was paid (a refusal rolls back)
    return outcome;
  };

  /** The proxy owner tries to close without asking first (or to ask a closed contract). */
  const proxyEarlyClose = async (): Promise<Outcome> => {
    const expected = modelProxyClose({ ...pm }, now());
    assert.ok(isRefused(expected), 'the walk never asks to close the proxy');
    const r = track(await proxy.sendClose(proxyOwner.getSender(), GAS));
    assertOutcome(r, proxy.address, Op.proxyClose, [expected.refused]);
    count(`proxy close refused ${expected.refused}`);
    return 'refused';
  };

  /** Every account's balance, by raw address. */
  const balances = async () => {
    const out = new Map<string, bigint>();
    for (const a of accounts) out.set(a.toRawString(), await balanceOf(blockchain, a));
    return out;
  };
  const contractAddrs = new Set(accounts.map((a) => a.toRawString()).filter((a) => !wallets.has(a)));

  /**
   * After a stranger's message: nobody but the stranger (and the fees) saw a nanoton of it. Wallets are
   * unchanged; a contract may only have had its storage reserve restored (checkModel: it holds exactly its
   * tracked funds plus the reserve, or less after a bounce); the stranger lost exactly the fees, the forward
   * fees in flight and those reserve top-ups — plus `given`, which it gave on purpose.
   */
  const assertNobodyElseGained = async (
    before: Map<string, bigint>,
    fees0: bigint,
    fwd0: bigint,
    spent: bigint,
    gift: { to: Address; amount: bigint } | null,
    label: string,
  ) => {
    const after = await balances();
    let restored = 0n;
    for (const [a, b] of before) {
      if (a === stranger.address.toRawString()) continue;
      const given = gift && a === gift.to.toRawString() ? gift.amount : 0n;
      const delta = after.get(a)! - b - given;
      if (contractAddrs.has(a)) {
        assert.ok(delta <= STORAGE_RESERVE, `${label}: ${a} gained ${delta}`);
        restored += delta;
      } else assert.equal(delta, 0n, `${label}: wallet ${a} changed by ${delta}`);
    }
    const lost =
      before.get(stranger.address.toRawString())! + spent - after.get(stranger.address.toRawString())!;
    assert.equal(
      lost,
      fees - fees0 + (fwdInFlight - fwd0) + restored + (gift?.amount ?? 0n),
      `${label}: the stranger's loss`,
    );
    return { lost, restored };
  };

  /** A stranger's message: junk, an op only someone else may send, or a forged signed message. */
  const strangerMessage = async (): Promise<Outcome> => {
    const bounce = rng.chance(0.5);
    let value = rng.big(toNano('0.06'), toNano('2'));
    const target = rng.weighted({ root: 1, proxy: 3, client: 3, worker: 2 });
    const workerTargets: PayoutTarget[] = [
      ...workers.filter(isDeployed),
      ...(sybil.model.deployed ? [sybil] : []),
    ];
    const junk = rng.chance(0.4);
    const junkBody = (): [string, Cell] =>
      rng.pick<[string, Cell]>([
        ['a plain transfer', beginCell().endCell()],
        [
          'a text comment',
          beginCell()
            .storeUint(0, 32)
            .storeStringTail(rng.pick(['thanks!', 'refund me', '']))
            .endCell(),
        ],
        [
          'an unknown op',
          beginCell()
            .storeUint(
              rng.pick([0x12345678, Op.excesses, Op.returned, Op.clientRefund, Op.workerPaid, Op.proxyPaid]),
              32,
            )
            .storeUint(rng.big(0n, MAX_SEQNO), 64)
            .endCell(),
        ],
        ['a body too short for an op', beginCell().storeUint(rng.int(0, 0xffff), 16).endCell()],
      ]);
    let to: Address;
    let what: string;
    let body: Cell;
    /** The refusal expected, or 'gift': a charge_proceeds that carries its amount (the pool takes it). */
    let code: number | 'gift';
    let gift = 0n;
    if (target === 'root') {
      to = root.address;
      [what, body] = junk
        ? junkBody()
        : ['set_params', beginCell().storeUint(Op.rootSetParams, 32).storeUint(0, 64).endCell()];
      code = ExitCode.notAllowed; // the root checks the sender first
    } else if (target === 'proxy' || (target === 'worker' && workerTargets.length === 0)) {
      to = proxy.address;
      if (junk) [what, body] = junkBody();
      const op = rng.weighted({ owners: 2, payoutRequest: 2, shortProceeds: 2, addStake: 1, gift: 2 });
      code = ExitCode.unknownOp;
      if (junk) {
        // (what, body) set above
      } else if (op === 'owners') {
        [what, body] = rng.pick<[string, Cell]>([
          ['withdraw_commission', withdrawCommissionBody()],
          ['request_close', proxyRequestCloseBody()],
          ['close', proxyCloseBody()],
          ['raise_close_delay', raiseCloseDelayBody(pm.closeDelay + 1)],
        ]);
        code = ExitCode.notAllowed;
      } else if (op === 'payoutRequest') {
        const owner = rng.pick([...workerOwners, sybilOwner, stranger]).address;
        what = 'worker_payout_request';
        body = workerPayoutRequestBody(
          owner,
          rng.big(1n, toNano('1')),
          rng.big(0n, toNano('1')),
          stranger.address,
        );
        code = ExitCode.notAllowed;
      } else if (op === 'shortProceeds') {
        const amount = rng.big(toNano('0.06'), toNano('2'));
        value = amount + MIN_PROCEEDS_GAS - rng.big(1n, MIN_PROCEEDS_GAS);
        what = 'charge_proceeds short of its amount';
        body = chargeProceedsBody(amount, stranger.address);
        code = ExitCode.notEnoughValue; // checked before the state
      } else if (op === 'addStake') {
        what = 'add_stake short of its amount';
        body = addStakeBody(value - MIN_FORWARD_VALUE + rng.big(1n, toNano('1')));
        code = pm.state !== OPEN ? ExitCode.wrongState : ExitCode.notEnoughValue;
      } else {
        gift = rng.big(1n, toNano('0.5'));
        value = gift + MIN_PROCEEDS_GAS + rng.big(0n, toNano('0.05'));
        what = 'charge_proceeds carrying its amount';
        body = chargeProceedsBody(gift, stranger.address);
        code = pm.state === CLOSED ? ExitCode.wrongState : 'gift';
      }
    } else if (target === 'client') {
      const c = rng.pick(clients);
      to = c.contract.address;
      const other = rng.pick(clients.filter((x) => x !== c));
      const op = rng.weighted({ owners: 3, topUp: 1, forged: 4 });
      const payload: ClientAuth = {
        globalId: GLOBAL_ID.mainnet,
        contract: c.contract.address,
        seqno: anySeqno(c.model.seqno),
        total: c.model.charged + rng.big(1n, toNano('1')),
      };
      code = ExitCode.unknownOp;
      if (junk) [what, body] = junkBody();
      else if (op === 'owners') {
        [what, body] = rng.pick<[string, Cell]>([
          ['withdraw', clientWithdrawBody(rng.big(0n, toNano('1')))],
          ['request_close', clientRequestCloseBody()],
          ['close', clientCloseBody()],
          ['increase_stake', increaseStakeBody(c.model.stake + 1n)],
          ['raise_terms', raiseTermsBody(c.model.stake, c.model.closeDelay)],
        ]);
        code = ExitCode.notAllowed; // the owner check comes first
      } else if (op === 'topUp') {
        what = 'top_up short of its amount';
        body = topUpBody(value - MIN_FORWARD_VALUE + rng.big(1n, toNano('1')));
        code = c.model.state !== OPEN ? ExitCode.wrongState : ExitCode.notEnoughValue;
      } else {
        const kind = rng.weighted({
          strangersKey: 1,
          othersKey: 1,
          otherContract: 1,
          otherNetwork: 1,
          payoutTag: 1,
        });
        let auth: Signed<ClientAuth>;
        if (kind === 'strangersKey' || kind === 'othersKey') {
          auth = signClientAuth(
            payload,
            kind === 'othersKey' ? other.keys.privateKey : strangerKeys.privateKey,
          );
          code = ExitCode.badSignature;
        } else if (kind === 'otherContract') {
          auth = signClientAuth({ ...payload, contract: other.contract.address }, c.keys.privateKey);
          code = ExitCode.wrongContract;
        } else if (kind === 'otherNetwork') {
          auth = signClientAuth({ ...payload, globalId: GLOBAL_ID.testnet }, c.keys.privateKey);
          code = ExitCode.wrongTagOrNetwork;
        } else {
          // a payout's payload, signed by the client's own key: the tag tells them apart
          const p = signWorkerPayout(
            { ...payload, workerTotal: payload.total, proxyTotal: 0n },
            c.keys.privateKey,
          );
          auth = { payload, cell: p.cell, signature: p.signature };
          code = ExitCode.wrongTagOrNetwork;
        }
        what = `charge (${kind})`;
        body = clientChargeBody(auth);
        if (c.model.state === CLOSED) code = ExitCode.wrongState; // checked before the signature
      }
    } else {
      const w = rng.pick(workerTargets);
      to = w.contract.address;
      const payload: WorkerPayout = {
        globalId: GLOBAL_ID.mainnet,
        contract: w.contract.address,
        seqno: anySeqno(w.model.seqno),
        workerTotal: w.model.paidWorker + rng.big(1n, toNano('1')),
        proxyTotal: w.model.paidProxy + rng.big(0n, toNano('1')),
      };
      code = ExitCode.unknownOp;
      if (junk) [what, body] = junkBody();
      else {
        const kind = rng.weighted({
          payoutRefused: 2,
          wrongKey: 1,
          otherContract: 1,
          otherNetwork: 1,
          authTag: 1,
          lowValue: 1,
        });
        const other = rng.pick(workers.filter((x) => x.contract.address !== w.contract.address));
        what = kind;
        if (kind === 'payoutRefused') {
          what = 'payout_refused';
          body = beginCell()
            .storeUint(Op.workerPayoutRefused, 32)
            .storeUint(0, 64)
            .storeCoins(w.model.paidWorker)
            .storeCoins(w.model.paidProxy)
            .storeAddress(stranger.address)
            .endCell();
          code = ExitCode.notAllowed;
        } else if (kind === 'wrongKey') {
          body = workerPayoutBody(signWorkerPayout(payload, strangerKeys.privateKey));
          code = ExitCode.badSignature;
        } else if (kind === 'otherContract') {
          body = workerPayoutBody(
            signWorkerPayout({ ...payload, contract: other.contract.address }, proxyKeys.privateKey),
          );
          code = ExitCode.wrongContract;
        } else if (kind === 'otherNetwork') {
          body = workerPayoutBody(
            signWorkerPayout({ ...payload, globalId: GLOBAL_ID.testnet }, proxyKeys.privateKey),
          );
          code = ExitCode.wrongTagOrNetwork;
        } else if (kind === 'authTag') {
          // an authorisation's payload signed by the proxy key, as a payout
          const a = signClientAuth({ ...payload, total: payload.workerTotal }, proxyKeys.privateKey);
          body = workerPayoutBody(a);
          code = ExitCode.wrongTagOrNetwork;
        } else {
          // a genuine-looking payout with too little value to forward: refused before the signature
          value = rng.big(toNano('0.03'), MIN_FORWARD_VALUE - 1n);
          body = workerPayoutBody(signWorkerPayout(payload, proxyKeys.privateKey));
          code = ExitCode.notEnoughValue;
        }
      }
    }
    if (code === 'gift') {
      pm.pool += gift;
      poolDonated += gift;
      strangerDonated += gift;
      flows.inflow += gift;
    }
    const label = `stranger: ${what!} to ${target}${bounce ? '' : ' (non-bounceable)'}`;
    const before = await balances();
    const [fees0, fwd0] = [fees, fwdInFlight];
    const r = track(await stranger.send({ to, value, bounce, body: body! }));
    const txs = r.transactions.map(flatten);
    for (const f of txs) {
      assert.ok(
        f.to?.equals(to) || f.to?.equals(stranger.address) || f.to === undefined,
        `${label}: a transaction at ${f.to}`,
      );
    }
    const at = txs.find((f) => f.to?.equals(to))!;
    const back = txs.filter((f) => f.to?.equals(stranger.address) && f.from?.equals(to));
    assert.equal(back.length, 1, `${label}: one message back to the stranger`);
    if (code === 'gift') {
      assert.ok(!at.aborted, `${label}: refused with ${at.exitCode}`);
      assert.equal(back[0]!.op, Op.excesses);
      count('stranger gives the pool a charge_proceeds');
    } else if (bounce) {
      assert.ok(at.aborted, `${label}: accepted`);
      assert.equal(at.exitCode, code, label);
      assert.ok(back[0]!.bounced, `${label}: bounced`);
      count(`stranger refused ${code} (bounced)`);
    } else {
      assert.ok(!at.aborted, `${label}: aborted with ${at.exitCode}`);
      assert.equal(at.outValues.length, 1);
      const ret = at.raw.outMessages.get(0)!.body.beginParse();
      assert.equal(ret.loadUint(32), Op.returned, label);
      const sent = body!.beginParse();
      const queryId = sent.remainingBits >= 96 ? sent.skip(32).loadUintBig(64) : 0n;
      assert.equal(ret.loadUintBig(64), queryId, `${label}: the query id returned`);
      assert.equal(ret.loadInt(32), code, `${label}: the exit code returned`);
      count(`stranger refused ${code} (returned)`);
    }
    const { lost } = await assertNobodyElseGained(
      before,
      fees0,
      fwd0,
      0n,
      code === 'gift' ? { to, amount: gift } : null,
      label,
    );
    assert.ok(lost >= gift && lost - gift < toNano('0.05'), `${label}: the stranger lost ${lost}`);
    assert.ok(back[0]!.value <= value - gift && value - gift - back[0]!.value < toNano('0.05'), label);
    return code === 'gift' ? 'ok' : 'refused';
  };

  /** A "bounce" that no message of ours caused (injected from the stranger's address): kept by nobody. */
  const forgedBounce = async (): Promise<Outcome> => {
    const targets = [
      root.address,
      proxy.address,
      ...clients.map((c) => c.contract.address),
      ...workers.filter(isDeployed).map((w) => w.contract.address),
      ...(sybil.model.deployed ? [sybil.contract.address] : []),
    ];
    const to = rng.pick(targets);
    const value = rng.big(toNano('0.03'), toNano('1'));
    const original = rng.pick([Op.proxyChargeProceeds, Op.proxyWorkerPayoutRequest, Op.clientRefund, 0]);
    const body = rng.chance(0.5)
      ? beginCell().storeUint(0xffffffff, 32).storeUint(original, 32).storeUint(0, 64).endCell()
      : beginCell().storeUint(0xfffffffe, 32).storeUint(rng.big(0n, MAX_SEQNO), 64).endCell();
    const before = await balances();
    const [fees0, fwd0] = [fees, fwdInFlight];
    injected += value;
    const r = track(
      await blockchain.sendMessage({
        info: {
          type: 'internal',
          ihrDisabled: true,
          bounce: false,
          bounced: true,
          src: stranger.address,
          dest: to,
          value: { coins: value },
          ihrFee: 0n,
          forwardFee: 0n,
          createdLt: 0n,
          createdAt: now(),
        },
        body,
      }),
    );
    const at = r.transactions.map(flatten).find((f) => f.to?.equals(to))!;
    assert.ok(!at.aborted, `forged bounce to ${to}: exit ${at.exitCode}`);
    assert.deepEqual(
      at.outValues.map((o) => [o.to.toString(), o.op]),
      [[stranger.address.toString(), Op.excesses]],
      'the value goes back to where it came from',
    );
    await assertNobodyElseGained(before, fees0, fwd0, value, null, `forged bounce to ${to}`);
    count('forged bounce returned');
    return 'refused';
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
  strangerStart = await balanceOf(blockchain, stranger.address);
  await checkBounds('set-up');

  // --- random steps -------------------------------------------------------------------------------------
  let closingStarted = false;
  for (let step = 0; step < STEPS; step++) {
    blockchain.now = now() + rng.int(0, 120);
    snapshot();
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
      // dishonest actors
      selfCharge: 6,
      rogueClose: 4,
      sybilPayout: 2,
      divertCommission: 3,
      proxyEarlyClose: 1,
      stranger: 8,
      forgedBounce: 3,
      timeJump: 2,
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
        const open = clients.filter((c) => c.model.state === OPEN && !c.rogue);
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
      case 'selfCharge':
        outcome = await selfCharge();
        break;
      case 'rogueClose':
        outcome = await rogueClose(step);
        break;
      case 'sybilPayout':
        outcome = await sybilPayout();
        break;
      case 'divertCommission':
        outcome = await divertCommission();
        break;
      case 'proxyEarlyClose':
        outcome = await proxyEarlyClose();
        break;
      case 'stranger':
        outcome = await strangerMessage();
        break;
      case 'forgedBounce':
        outcome = await forgedBounce();
        break;
      case 'timeJump':
        // commission matures (D to 2D), held payouts age past D, clients' unlocks pass
        blockchain.now = now() + rng.int(Math.floor(pm.closeDelay / 4), 2 * pm.closeDelay);
        count('time jump');
        outcome = 'skipped';
        break;
    }
    const v = await checkModel(`step ${step} (${kind})`);
    if (outcome === 'refused' || outcome === 'skipped') {
      assert.deepEqual(plain(v), plain(last), `step ${step} (${kind}): a refused message changed a getter`);
    }
    last = v;
    await checkBounds(`step ${step} (${kind})`);
  }

  // --- the rogues finish: with unredeemed authorisations at the proxy, each asks to close and closes ------
  for (const c of rogues) {
    if (c.model.state === OPEN) {
      // so the proxy holds something unredeemed: a deposit (its own charges may have drained it), requests
      const deposit = params.minClientStake + toNano('1');
      assert.equal(await sendTopUp(c, deposit, deposit + GAS, c.owner), 'ok');
      for (let k = 0; k < 20 && (c.signed.at(-1)?.payload.total ?? 0n) <= c.model.charged; k++) {
        await request(STEPS + k, c);
      }
      assert.ok(
        (c.signed.at(-1)?.payload.total ?? 0n) > c.model.charged,
        `rogue ${c.index} was never served`,
      );
      await checkModel(`rogue ${c.index} served once more`);
      assert.equal(await requestClose(c), 'ok');
    }
    if (c.model.state === CLOSING) {
      if (now() < c.model.unlockAt) {
        assert.equal(await close(c), 'refused');
        blockchain.now = c.model.unlockAt;
      }
      assert.equal(await close(c), 'ok');
    }
    // the late proxy comes back: too late, the contract is closed
    const newest = c.signed.at(-1);
    if (newest) assert.equal(await submitCharges(c, [newest]), 'refused');
    await checkModel(`rogue ${c.index} closed`);
    await checkBounds(`rogue ${c.index} closed`);
  }

  // --- settle everything --------------------------------------------------------------------------------
  for (const c of clients) {
    const newest = c.signed.at(-1);
    if (c.model.state !== CLOSED && newest && newest.payload.total > c.model.charged) {
      await submitCharges(c, [newest]);
    }
  }
  for (const w of workers) {
    const owed = (x: bigint) => (x > 0n ? x : 0n);
    for (
      let round = 0;
      w.model.paidWorker < w.account.accruedWorker || w.model.paidProxy < w.account.accruedProxy;
      round++
    ) {
      assert.ok(round < 3, `worker ${w.index} could not be paid in full`);
      const due =
        owed(w.account.accruedWorker - w.model.paidWorker) + owed(w.account.accruedProxy - w.model.paidProxy);
      const available = modelAvailable(pm, now()); // matured commission aside
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
  await checkBounds('settled');

  // One client closes in full: too early first, then after the delay; then nothing can be charged.
  const closer =
    clients.find((c) => c.model.state === OPEN && c.index !== RECKLESS && !c.rogue) ?? clients[0]!;
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

  const totals = await assertConserved('settled');
  const p = await proxy.getProxyData();
  const clientData = await Promise.all(clients.map((c) => c.contract.getClientData()));
  const workerData = await Promise.all(workers.map((w) => w.contract.getWorkerData()));

  // (2) Each client contract charged the newest authorisation it accepted (less only if the balance ran
  // out), never more than the client signed; a client the proxy served within its credit is charged in full.
  for (const [i, c] of clients.entries()) {
    const d = clientData[i]!;
    if (c.rogue) {
      // A rogue: closed, refunded its deposits less what was charged (checked in assertConserved), charged
      // at least all the proxy held except what it escaped (a late proxy only), at most what it signed.
      const held = c.signed.at(-1)?.payload.total ?? 0n;
      const selfMax = c.selfSigned.reduce((m, a) => maxOf(m, a.payload.total), 0n);
      assert.equal(d.state, CLOSED);
      assert.ok(c.escaped !== null);
      assert.equal(maxOf(held - d.charged, 0n), c.escaped, `rogue ${i}: escaped`);
      assert.ok(d.charged <= maxOf(held, selfMax));
      if (!c.rogue.late)
        assert.ok(d.charged >= held, `rogue ${i}: an authorisation it signed went unredeemed`);
      continue;
    }
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
    // … and its contract paid the proxy part it accrued, or the higher one the proxy key signed itself
    assert.equal(d.paidProxy, maxOf(w.account.accruedProxy, w.diverted));
  }
  const sybilData = sybil.model.deployed ? await sybil.contract.getWorkerData() : null;
  assert.equal(sybil.received, sybilData?.paidWorker ?? 0n);
  const paidProxy = sum(workerData.map((d) => d.paidProxy)) + (sybilData?.paidProxy ?? 0n);

  // (4) The commission is exactly the proxy parts paid out through the worker contracts (all withdrawn),
  // less what of it, still maturing, paid workers when the pool ran short.
  assert.equal(p.commission + maturingOf(p) + proxyOwnerReceived + commissionSpent, paidProxy);
  assert.equal(p.commission + maturingOf(p), 0n);
  assert.equal(proxyOwnerReceived, proxyCommissionReceived); // no close yet

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
    const matured = { ...pm };
    modelMature(matured, now());
    const expected = modelProxyClose(pm, now());
    const r = track(await proxy.sendClose(proxyOwner.getSender(), GAS));
    assertOutcome(r, proxy.address, Op.proxyClose, [isRefused(expected) ? expected.refused : null]);
    if (isRefused(expected)) return expected.refused;
    assert.equal(receivedBy(r, proxyOwner.address, Op.proxyPaid), expected.paid);
    assert.equal(expected.paid, matured.stake + matured.pool + matured.commission);
    proxyCommissionReceived += matured.commission;
    flows.closePaid += matured.stake + matured.pool;
    await checkBounds('proxy closed');
    return null;
  };
  // (the sybil may have taken the stake down to what settling needed: the late payouts below need some)
  if (modelAvailable(pm, now()) < toNano('0.1'))
    assert.equal(await addStake(toNano('0.1'), toNano('0.1') + GAS), 'ok');
  assert.equal(modelProxyRequestClose(pm, now()), null);
  r = track(await proxy.sendRequestClose(proxyOwner.getSender(), GAS));
  assertOutcome(r, proxy.address, Op.proxyRequestClose, [null]);
  last = await checkModel('proxy closing');
  assert.equal(await addStake(toNano('1'), toNano('1') + GAS), 'refused'); // closing: no more stake
  assert.equal(await proxyClose(), ExitCode.tooEarly);
  assert.deepEqual(plain(await checkModel('proxy close, too early')), plain(last));
  // Workers are still paid while closing; the commission this credits is still maturing at the close.
  const lateWorker = workers[workers.length - 1]!;
  // (a proxy part above what the proxy key already signed there itself, so it is credited)
  lateWorker.account.accrue(
    toNano('0.01'),
    maxOf(lateWorker.diverted - lateWorker.account.accruedProxy, 0n) + toNano('0.002'),
  );
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
  // … and the dishonest actors did too (by prefix: which variants run depends on the seed)
  for (const prefix of [
    'rogue charge',
    'stranger refused',
    'forged bounce',
    'rogue 4 closed',
    'rogue 5 closed',
  ]) {
    assert.ok(
      Object.keys(stats).some((k) => k.startsWith(prefix)),
      `the run never did "${prefix}…"`,
    );
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
