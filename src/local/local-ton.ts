import { createHash } from 'node:crypto';
import { access } from 'node:fs/promises';
import { join } from 'node:path';
import { type Address, toNano } from '@ton/core';
import { loadOrCreateNodeKey } from '../attest/identity.ts';
import { loadContractCode } from '../chain/contracts/code.ts';
import { HashKind } from '../chain/contracts/opcodes.ts';
import { LOCAL_PARAMS, type RootParams } from '../chain/contracts/params.ts';
import {
  addHashBody,
  delHashBody,
  RootContract,
  registerProxyBody,
  setParamsBody,
} from '../chain/contracts/root-contract.ts';
import { LocalChain } from '../chain/local-chain.ts';
import { type LocalChainServer, startLocalChainServer } from '../chain/local-chain-server.ts';
import { clientDepositMessages, clientTermsMeetRoot, TonPayments } from '../chain/payments-chain.ts';
import { TonChain } from '../chain/ton-chain.ts';
import { createWalletFile, loadWalletFile, WalletSender, walletFromMnemonic } from '../chain/wallet.ts';
import { DEPOSIT_GAS, WALLET_FILE } from '../config/build-payments.ts';

/**
 * The embedded TON of `cocoon local` and the tests: the sandbox chain (real TVM) behind a toncenter-style
 * API on loopback, a governance wallet that deploys the root, and a faucet for the nodes' wallets. Its
 * state lives in `<dataDir>/chain`, so balances survive restarts. Dev only: the faucet mints coins.
 */

export interface LocalTon {
  endpoint: string;
  root: Address;
  chain: TonChain;
  /** Creates (if needed) and funds the wallet in a node's data dir; returns its address. */
  fundNode(dataDir: string, minBalance: bigint): Promise<Address>;
  /** Governance: adds or removes an allowed proxy image / worker image / model hash (hex) in the root. */
  setAllowed(kind: HashKind, hashHex: string, allowed: boolean): Promise<void>;
  /** Registers a proxy contract in the root (governance), if it is not yet. */
  registerProxy(proxyContract: Address, endpoint: string): Promise<void>;
  /** Tops up a client's contract from its own wallet (deploying it the first time) to at least `amount`, and
   * raises its stake and close delay to the root's if they are below (one transfer). */
  ensureDeposit(clientDir: string, proxyContract: Address, amount: bigint): Promise<Address>;
  /** Governance: `set_params` (its `paramsVersion` must rise). */
  setParams(params: RootParams): Promise<void>;
  stop(): Promise<void>;
}

/** `clock`: chain time in unix seconds (tests move it to pass close delays); default the system clock. */
export async function startLocalTon(dataDir: string, port = 0, clock?: () => number): Promise<LocalTon> {
  const chainDir = join(dataDir, 'chain');
  const local = await LocalChain.open({
    stateFile: join(chainDir, 'state.json'),
    ...(clock ? { clock } : {}),
  });
  let server: LocalChainServer;
  try {
    server = await startLocalChainServer({ chain: local, port });
  } catch (err) {
    await local.close();
    throw err;
  }
  const chain = TonChain.connect({ endpoint: server.url, network: 'local' });
  const globalId = await chain.globalId();

  const senderOf = async (dir: string) => {
    const path = join(dir, WALLET_FILE);
    const exists = await access(path).then(
      () => true,
      () => false,
    );
    if (!exists) await createWalletFile(path);
    const wallet = await walletFromMnemonic(await loadWalletFile(path), globalId);
    return new WalletSender(chain.client, wallet, { pollIntervalMs: chain.pollIntervalMs });
  };
  const fund = async (address: Address, min: bigint) => {
    const balance = await chain.getBalance(address);
    if (balance < min) await chain.localFaucet(address, min * 2n - balance);
  };

  const governance = await senderOf(join(chainDir, 'governance'));
  await fund(governance.address, toNano('10'));
  const root = RootContract.fromInit(
    { owner: governance.address, params: LOCAL_PARAMS },
    await loadContractCode('root'),
  );
  if (!(await chain.isDeployed(root.address))) {
    // Deployed by its first governance op: allow the built-in model.
    const modelHash = BigInt(`0x${createHash('sha256').update('cocoon-tiny').digest('hex')}`);
    await governance.send([
      {
        to: root.address,
        value: toNano('0.1'),
        body: addHashBody(HashKind.model, modelHash),
        init: root.init!,
      },
    ]);
  }
  const rootC = chain.open(root);

  return {
    endpoint: server.url,
    root: root.address,
    chain,
    async fundNode(dir, minBalance) {
      const s = await senderOf(dir);
      await fund(s.address, minBalance);
      return s.address;
    },
    async setAllowed(kind, hashHex, allowed) {
      const hash = BigInt(`0x${hashHex}`);
      const body = allowed ? addHashBody(kind, hash) : delHashBody(kind, hash);
      await governance.send([{ to: root.address, value: toNano('0.1'), body }]);
    },
    async registerProxy(proxyContract, endpoint) {
      const { proxies } = await rootC.getRootData();
      if (proxies.some((p) => p.address.equals(proxyContract))) return;
      await governance.send([
        { to: root.address, value: toNano('0.1'), body: registerProxyBody(proxyContract, endpoint) },
      ]);
    },
    async ensureDeposit(clientDir, proxyContract, amount) {
      const s = await senderOf(clientDir);
      const payments = await TonPayments.connect(chain.client, root.address, globalId, s);
      const key = await loadOrCreateNodeKey(clientDir);
      const c = payments.clientContractOf(s.address, key.publicKey, proxyContract);
      const state = await payments.clientState(c.address);
      if (state.balance >= amount && clientTermsMeetRoot(state, payments.rootParams)) return c.address;
      const top = amount > state.balance ? amount - state.balance : 0n;
      // top_up (deploying it) and raise_terms to the root's stake and close delay, in one transfer
      await s.send(clientDepositMessages(c, state, top, payments.rootParams, DEPOSIT_GAS));
      return c.address;
    },
    async setParams(params) {
      await governance.send([{ to: root.address, value: toNano('0.1'), body: setParamsBody(params) }]);
    },
    async stop() {
      await server.close();
      await local.close();
    },
  };
}

export { LOCAL_PARAMS };
