import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { type Address, toNano } from '@ton/core';
import { loadOrCreateNodeKey, type NodeKey } from '../../src/attest/identity.ts';
import { makeCredentials, trustSetup } from '../../src/attest/trust-setup.ts';
import { loadWalletFile, WalletSender, walletFromMnemonic } from '../../src/chain/wallet.ts';
import { WALLET_FILE } from '../../src/config/build-payments.ts';
import type { LocalNetwork } from '../../src/local/local-network.ts';
import type { Session } from '../../src/net/session.ts';
import type { Stream } from '../../src/net/stream.ts';
import { dialPeer } from '../../src/net/tls.ts';
import { clientAuthHash, signHash } from '../../src/pay/signed-messages.ts';
import type { InferenceRequest } from '../../src/protocol/inference.ts';
import { type ControlMessage, controlSchema, parseMessage } from '../../src/protocol/messages.ts';
import { openPlainCall } from './plain-call.ts';

type Bill = Extract<ControlMessage, { type: 'pay.bill' }>;
type Account = Extract<ControlMessage, { type: 'pay.account' }>;

/** A call as an honest client daemon would send it; attacks override what they cheat on. */
export function call(over: Partial<InferenceRequest> = {}): InferenceRequest {
  return {
    kind: 'chat',
    model: 'cocoon-tiny',
    body: { model: 'cocoon-tiny', messages: [{ role: 'user', content: 'tell me a story' }] },
    stream: true,
    includeUsage: false,
    maxTokens: 40,
    n: 1,
    timeoutMs: 30_000,
    maxCoefficient: 4000,
    minTier: 'dev',
    ...over,
  };
}

/**
 * A client that runs its own code: a properly attested node with a funded wallet and a deposit in its
 * client contract, speaking the protocol frame by frame so attacks can do what the real daemon never does
 * (reuse request ids, reset streams, leave bills unsigned, sign what it likes, submit its own charges).
 */
export class RogueClient {
  readonly bills: Bill[] = [];
  account: Account | null = null;
  private seqno = 0n;
  private total = 0n;

  private constructor(
    readonly session: Session,
    readonly key: NodeKey,
    readonly wallet: WalletSender,
    readonly contract: Address,
    private readonly globalId: number,
  ) {
    session.on('control', (payload) => {
      const msg = parseMessage(controlSchema, payload, 'control');
      if (msg.type === 'pay.bill') this.bills.push(msg);
      if (msg.type === 'pay.account') {
        this.account = msg;
        if (msg.auth) this.seqno = msg.auth.seqno;
        if (msg.auth) this.total = msg.auth.total;
      }
    });
  }

  /** A new client identity in `dir`, funded, with `deposit` in its contract on `net`'s proxy, connected. */
  static async join(net: LocalNetwork, dir: string, deposit = toNano('5')): Promise<RogueClient> {
    const ton = net.ton!;
    await ton.fundNode(dir, deposit * 2n + toNano('1'));
    const contract = await ton.ensureDeposit(dir, proxyContractOf(net), deposit);
    return RogueClient.connect(net, dir, contract);
  }

  /** Connects with the identity and wallet in `dir` (an existing client's, to cheat as that client). */
  static async connect(net: LocalNetwork, dir: string, contract: Address): Promise<RogueClient> {
    const globalId = await net.ton!.chain.globalId();
    const wallet = await walletOf(net, dir);
    const key = await loadOrCreateNodeKey(dir);
    const dev = trustSetup('dev');
    const { credentials } = await makeCredentials(key, 'client', dev.provider);
    const { session } = await dialPeer({
      host: '127.0.0.1',
      port: net.proxy.clientPort,
      credentials,
      trust: { verifiers: dev.verifiers, roles: ['proxy'], minTier: 'dev' },
      session: { hello: { role: 'client', name: 'rogue', info: { wallet: wallet.address.toString() } } },
    });
    const rogue = new RogueClient(session, key, wallet, contract, globalId);
    await until(() => rogue.account !== null, 'the proxy sent our account');
    return rogue;
  }

  /** Opens an inference call; `requestId` defaults to a fresh one. */
  open(request: InferenceRequest, requestId: string = randomUUID()): { stream: Stream; requestId: string } {
    return { stream: openPlainCall(this.session, requestId, request), requestId };
  }

  /** Reads a call to its end: its parts, and its trailer or the error that reset it. */
  async read(stream: Stream): Promise<{ parts: Buffer[]; trailer: unknown; error: unknown }> {
    const parts: Buffer[] = [];
    try {
      for await (const p of stream) parts.push(p);
      return { parts, trailer: stream.trailer, error: null };
    } catch (error) {
      return { parts, trailer: undefined, error };
    }
  }

  /** Signs (cumulatively, as the contract requires) the bills of these request ids, and sends it. */
  sign(requestIds: string[], total?: bigint): void {
    const due = requestIds.reduce((s, id) => s + BigInt(this.billFor(id).cost.total), 0n);
    this.total = total ?? this.total + due;
    this.seqno++;
    const signature = signHash(
      clientAuthHash({
        globalId: this.globalId,
        contract: this.contract,
        seqno: this.seqno,
        total: this.total,
      }),
      this.key.privateKey,
    );
    this.session.sendControl({
      type: 'pay.auth',
      requestIds,
      seqno: this.seqno.toString(),
      total: this.total.toString(),
      signature: signature.toString('hex'),
    });
  }

  /** A signature over any (seqno, total) for our own contract, as the owner may make one. */
  signed(seqno: bigint, total: bigint): Buffer {
    return signHash(
      clientAuthHash({ globalId: this.globalId, contract: this.contract, seqno, total }),
      this.key.privateKey,
    );
  }

  /** The newest bill for a request id. */
  billFor(requestId: string): Bill {
    const b = this.bills.findLast((x) => x.requestId === requestId);
    if (!b) throw new Error(`no bill for ${requestId}`);
    return b;
  }

  async waitForBill(requestId: string, timeoutMs = 5000): Promise<Bill> {
    await until(
      () => this.bills.some((b) => b.requestId === requestId),
      `a bill for ${requestId}`,
      timeoutMs,
    );
    return this.billFor(requestId);
  }

  close(): void {
    this.session.close();
  }
}

/** The wallet a node keeps in its data dir, ready to send from. */
export async function walletOf(net: LocalNetwork, dir: string): Promise<WalletSender> {
  const chain = net.ton!.chain;
  const w = await walletFromMnemonic(await loadWalletFile(join(dir, WALLET_FILE)), await chain.globalId());
  return new WalletSender(chain.client, w, { pollIntervalMs: chain.pollIntervalMs });
}

export function proxyContractOf(net: LocalNetwork): Address {
  return net.proxy.billing!.desk.proxyContractAddress;
}

export async function until(cond: () => boolean | Promise<boolean>, what: string, timeoutMs = 5000) {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for: ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}
