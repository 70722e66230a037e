import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Address, toNano } from '@ton/core';
import { loadContractCode } from '../../src/chain/contracts/code.ts';
import { HashKind } from '../../src/chain/contracts/opcodes.ts';
import { LOCAL_PARAMS } from '../../src/chain/contracts/params.ts';
import {
  changeOwnerBody,
  RootContract,
  type RootData,
  registerProxyBody,
} from '../../src/chain/contracts/root-contract.ts';
import { formatTon } from '../../src/chain/money.ts';
import {
  loadWalletFile,
  type OutgoingMessage,
  WalletSender,
  walletFromMnemonic,
} from '../../src/chain/wallet.ts';
import { WALLET_FILE } from '../../src/config/build-payments.ts';
import { type LocalTon, startLocalTon } from '../../src/local/local-ton.ts';
import { cocoon, failed, ok } from './run-cocoon.ts';

const hex = (byte: string) => byte.repeat(32);

/** A governance wallet (`<dir>/<name>/governance`) and the root it owns. */
interface Governed {
  govAddress: Address;
  root: Address;
  /** `--data-dir <the governance wallet> --chain-endpoint … --root <its root>` */
  gov: string[];
  /** What `root show --json` says, to compare states. */
  snapshot(): Promise<string>;
  rootData(): Promise<RootData>;
}

// Each subtest governs a root of its own from a wallet of its own (one wallet's transactions go one after
// another: its seqno), so the subtests run at once.
describe('cocoon root: governance of a root contract on an embedded TON chain', { concurrency: true }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'cocoon-governance-cli-'));
  let ton: LocalTon;
  let chain: string[];

  /**
   * Commands that must fail and change nothing, run at once: [args (before `as`), exit code, message]. All
   * are refused before sending, but those with --skip-checks (refused by the root itself).
   */
  const refusals = async (as: string[], cases: [string[], number, RegExp][]) => {
    const results = await Promise.all(cases.map(([args]) => cocoon('root', ...args, ...as)));
    for (const [i, [args, code, msg]] of cases.entries()) {
      assert.match(failed(results[i]!, code), msg, `cocoon root ${args.join(' ')}`);
    }
  };
  const json = async (...args: string[]) => JSON.parse(ok(await cocoon(...args, '--json')));
  const rootDataOf = (root: Address): Promise<RootData> =>
    ton.chain.open(RootContract.fromAddress(root)).getRootData();

  /** A funded governance wallet in `<dir>/<name>/governance`. */
  const governanceWallet = async (name: string) => {
    const govDir = join(dir, name, 'governance');
    return { govDir, govAddress: await ton.fundNode(govDir, toNano('10')) };
  };
  const deploy = (govDir: string) =>
    json('root', 'deploy', '--data-dir', govDir, ...chain, '--price-per-token', '0.000003');
  /** The root that `deploy` deploys for `owner` (the first subtest checks that it is this one). */
  const rootFor = async (owner: Address) =>
    RootContract.fromInit(
      { owner, params: { ...LOCAL_PARAMS, pricePerToken: toNano('0.000003') } },
      await loadContractCode('root'),
    );
  const governed = (govDir: string, govAddress: Address, root: Address): Governed => {
    const gov = ['--data-dir', govDir, ...chain, '--root', root.toString()];
    return {
      govAddress,
      root,
      gov,
      snapshot: async () => JSON.stringify(await json('root', 'show', ...gov)),
      rootData: () => rootDataOf(root),
    };
  };
  /**
   * A new governance wallet and its root, deployed here with the message `root deploy` sends (its first
   * owner operation: change_owner to itself) rather than by another `cocoon` process (each costs over a
   * second of CPU, and the subtests running at once are CPU-bound). `more`: messages to send to the root
   * in the same transfer, after the deployment.
   */
  const deployedRoot = async (
    name: string,
    more: (root: Address) => OutgoingMessage[] = () => [],
  ): Promise<Governed> => {
    const { govDir, govAddress } = await governanceWallet(name);
    const wallet = await walletFromMnemonic(
      await loadWalletFile(join(govDir, WALLET_FILE)),
      await ton.chain.globalId(),
    );
    assert.ok(wallet.address.equals(govAddress));
    const root = await rootFor(govAddress);
    await new WalletSender(ton.chain.client, wallet, { pollIntervalMs: 100 }).send([
      { to: root.address, value: toNano('0.1'), body: changeOwnerBody(govAddress), init: root.init! },
      ...more(root.address),
    ]);
    assert.ok(await ton.chain.isDeployed(root.address), 'the root is deployed');
    return governed(govDir, govAddress, root.address);
  };
  /** A wallet file in `<dir>/<name>/stranger`, funded with `minBalance` (a wallet file only if 0). */
  const strangerWallet = async (name: string, minBalance = 0n) => {
    const strangerDir = join(dir, name, 'stranger');
    return { strangerDir, strangerAddress: await ton.fundNode(strangerDir, minBalance) };
  };

  before(async () => {
    ton = await startLocalTon(join(dir, 'ton'), 0);
    chain = ['--chain-endpoint', ton.endpoint];
  });

  after(async () => {
    await ton?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  test('root deploy deploys a root owned by the governance wallet; deploy-root still works; show prints it', async () => {
    const { govDir, govAddress } = await governanceWallet('deploy');
    const deployed = await deploy(govDir);
    const root = Address.parse(deployed.root);
    assert.ok(Address.parse(deployed.owner).equals(govAddress));
    assert.equal(deployed.params.pricePerToken, '0.000003000');
    assert.ok(root.equals((await rootFor(govAddress)).address), 'the root the other subtests deploy');
    const { gov } = governed(govDir, govAddress, root);

    // Read-only from here: at once.
    const [again, shownText, shown] = await Promise.all([
      cocoon('deploy-root', '--data-dir', govDir, ...chain, '--price-per-token', '0.000003'),
      cocoon('root', 'show', ...gov),
      json('root', 'show', ...chain, '--root', root.toString()), // no wallet needed
    ]);
    assert.match(failed(again, 1), /already deployed at/);

    const text = ok(shownText);
    assert.match(text, new RegExp(`^root ${root.toString()}$`, 'm'));
    assert.match(text, /owner\s+UQ\S+ \(the wallet in .*governance\)/);
    assert.match(text, /price per token\s+0\.000003000 TON/);
    assert.match(text, /proxy images\s+\(none: nothing is allowed\)/);
    assert.match(text, /registered\s+\(none\)/);

    assert.equal(shown.root, root.toString());
    assert.ok(Address.parse(shown.owner).equals(govAddress));
    assert.equal(shown.version, 1);
    assert.equal(shown.params.paramsVersion, 1);
    assert.deepEqual(shown.allowLists, { proxyImages: [], workerImages: [], models: [] });
    assert.deepEqual(shown.proxies, []);
  });

  test('set-params changes only the given parameters and raises the version; show reflects it', async () => {
    const { gov, rootData } = await deployedRoot('set-params');
    const before = (await rootData()).params;
    const r = await json('root', 'set-params', ...gov, '--min-client-stake', '2', '--cached-mult', '2500');
    assert.equal(r.action, 'set-params');
    assert.equal(r.changed, true);
    assert.deepEqual(r.version, { before: 1, after: 2 });
    assert.deepEqual(r.paramsChanged, {
      paramsVersion: { from: 1, to: 2 },
      cachedMult: { from: before.cachedMult, to: 2500 },
      minClientStake: { from: formatTon(before.minClientStake), to: '2.000000000' },
    });
    assert.match(r.transaction.hash, /^[0-9a-f]{64}$/);

    const shown = await json('root', 'show', ...gov);
    assert.equal(shown.params.minClientStake, '2.000000000');
    assert.equal(shown.params.cachedMult, 2500);
    assert.equal(shown.params.pricePerToken, '0.000003000', 'unspecified params keep their value');
    assert.equal(shown.params.proxyCloseDelay, before.proxyCloseDelay);
    assert.equal(shown.params.paramsVersion, 2);

    const text = ok(
      await cocoon('root', 'set-params', ...gov, '--params-version', '7', '--price-per-token', '0.000004'),
    );
    assert.match(text, /^Set the parameters of root \S+ \(params version 2 -> 7\)$/m);
    assert.match(text, /price-per-token\s+0\.000003000 TON -> 0\.000004000 TON/);
    assert.match(text, /transaction\s+lt \d+, hash [0-9a-f]{64} \(root version 2 -> 3\)/);
    const set = await rootData();
    assert.equal(set.params.pricePerToken, toNano('0.000004'));

    const version = set.version;
    await refusals(gov, [
      // Refused before sending (nothing is sent, so these may run at once).
      [
        ['set-params', '--params-version', '7', '--prompt-mult', '1'],
        1,
        /--params-version 7 is not above the current 7: the root requires every set_params to raise it.*nothing sent/,
      ],
      [
        ['set-params', '--worker-fee-per-token', '0.00001'],
        1,
        /worker fee per token 0\.000010000 TON would be above the price per token 0\.000004000 TON/,
      ],
      [['set-params'], 2, /nothing to set/],
      [['set-params', '--prompt-mult', '1000001'], 2, /invalid configuration: promptMult/],
      [['set-params', '--client-close-delay', '40000000'], 2, /invalid configuration: clientCloseDelay/],
      // The root refuses it itself when the CLI's checks are skipped: reported as the root's refusal (and
      // it changes nothing, so it may run with the others).
      [
        ['set-params', '--params-version', '3', '--skip-checks'],
        1,
        /root \S+ refused set_params \(exit code 110, invalid parameters.*\); nothing changed/,
      ],
    ]);
    const after = await rootData();
    assert.equal(after.version, version, 'nothing changed');
    assert.equal(after.params.paramsVersion, 7);
  });

  test('allow and disallow each kind of hash, in the formats hashes are printed in', async () => {
    const modelDir = join(dir, 'model');
    mkdirSync(modelDir);
    writeFileSync(join(modelDir, 'weights.bin'), 'tiny weights');
    const [{ gov, root }, hashed] = await Promise.all([
      deployedRoot('allow'),
      cocoon('model-hash', modelDir),
    ]);
    const modelHash = ok(hashed).split('\n')[0]!;
    const cases: [string, string, string, HashKind][] = [
      ['proxy-image', `0x${hex('AB')}`, hex('ab'), HashKind.proxy],
      ['worker-image', `sha256:${hex('cd')}`, hex('cd'), HashKind.worker],
      ['model', `tiny@main:${modelHash}`, modelHash, HashKind.model],
    ];
    const isAllowed = (kind: HashKind, h: string) =>
      ton.chain.open(RootContract.fromAddress(root)).getIsAllowed(kind, BigInt(`0x${h}`));
    for (const [kind, given, stored, k] of cases) {
      const r = await json('root', 'allow', kind, given, ...gov);
      assert.equal(r.action, 'allow');
      assert.equal(r.changed, true);
      assert.equal(r.hash, stored);
      assert.equal(r.version.after, r.version.before + 1);
      assert.ok(await isAllowed(k, stored), `${kind} allowed on chain`);
    }
    // Neither sends anything: at once.
    const [again, shown] = await Promise.all([
      json('root', 'allow', 'model', modelHash, ...gov),
      json('root', 'show', ...gov),
    ]);
    assert.equal(again.changed, false);
    assert.match(again.reason, /already allowed/);
    assert.deepEqual(shown.allowLists, {
      proxyImages: [hex('ab')],
      workerImages: [hex('cd')],
      models: [modelHash],
    });
    const removed = ok(await cocoon('root', 'disallow', 'proxy-image', hex('ab'), ...gov));
    assert.match(
      removed,
      new RegExp(`^Removed proxy image hash ${hex('ab')} from root \\S+'s allow-list$`, 'm'),
    );
    assert.match(removed, /proxy images\s+\(none: nothing is allowed\)/);
    let last: { action: string; state: { allowLists: unknown } } | undefined;
    for (const [kind, , stored, k] of cases.slice(1)) {
      last = await json('root', 'disallow', kind, stored, ...gov);
      assert.equal(last!.action, 'disallow');
      assert.equal(await isAllowed(k, stored), false, `${kind} no longer allowed`);
    }
    assert.deepEqual(last!.state.allowLists, { proxyImages: [], workerImages: [], models: [] });
    await refusals(gov, [
      [['disallow', 'model', modelHash], 1, /is not on root \S+'s model allow-list; nothing sent/],
      [['allow', 'model', 'abc'], 2, /model hash: expected 64 hex digits/],
      [['allow', 'model', `tiny@main:${hex('A')}`], 2, /model hash: not a model identity/],
      [['allow', 'worker-image', hex('a').slice(1)], 2, /worker image hash: expected 64 hex digits/],
      [['allow', 'image', hex('ab')], 2, /kind: expected proxy-image, worker-image, model, got "image"/],
    ]);
  });

  test('register, update and unregister proxies', async () => {
    const { gov, rootData } = await deployedRoot('proxies');
    const proxyA = ton.root; // any contract address will do for the registry
    const proxyB = Address.parse(`0:${hex('11')}`);
    const a = await json('root', 'register-proxy', proxyA.toString(), '127.0.0.1:11002', ...gov);
    assert.equal(a.seqno, 1);
    assert.equal(a.proxyDeployed, true);
    // Registering A again is refused whether B is registered yet or not: at once.
    const [registeredB, registeredAgain] = await Promise.all([
      cocoon('root', 'register-proxy', proxyB.toRawString(), 'proxy.example.com:8443', ...gov),
      cocoon('root', 'register-proxy', proxyA.toString(), '127.0.0.1:11002', ...gov),
    ]);
    const b = ok(registeredB);
    assert.match(b, /^Registered proxy #2 in root \S+: \S+ at proxy\.example\.com:8443$/m);
    assert.match(b, /note\s+no contract is deployed at/);
    assert.match(failed(registeredAgain, 1), /already registered in root \S+ as #1; nothing sent/);

    const u = await json('root', 'update-proxy', '1', proxyA.toString(), '[::1]:11003', ...gov);
    assert.equal(u.previous.endpoint, '127.0.0.1:11002');
    assert.deepEqual(u.state.proxies, [
      { seqno: 1, address: proxyA.toString(), endpoint: '[::1]:11003' },
      { seqno: 2, address: proxyB.toString(), endpoint: 'proxy.example.com:8443' },
    ]);

    const gone = ok(await cocoon('root', 'unregister-proxy', '2', ...gov));
    assert.match(gone, /^Unregistered proxy #2 from root/m);
    assert.match(gone, /was\s+\S+ at proxy\.example\.com:8443/);
    const [shown, { version }] = await Promise.all([json('root', 'show', ...gov), rootData()]);
    assert.equal(shown.lastProxySeqno, 2);
    assert.deepEqual(shown.proxies, [{ seqno: 1, address: proxyA.toString(), endpoint: '[::1]:11003' }]);

    await refusals(gov, [
      [['unregister-proxy', '2'], 1, /has no proxy #2 \(registered: #1\); nothing sent/],
      [['update-proxy', '3', proxyA.toString(), '127.0.0.1:1'], 1, /has no proxy #3/],
      [['register-proxy', proxyA.toString(), 'nohost'], 2, /endpoint: expected the proxy's public host:port/],
      [['register-proxy', 'nope', '127.0.0.1:1'], 2, /proxy contract: not a TON address: nope/],
      [['unregister-proxy', 'x'], 2, /seqno: expected a proxy's registry number/],
      // Refused by the root itself (changes nothing, so it may run with the others).
      [
        ['update-proxy', '5', proxyA.toString(), '127.0.0.1:1', '--skip-checks'],
        1,
        /refused update_proxy \(exit code 112, no such entry\); nothing changed/,
      ],
    ]);
    assert.equal((await rootData()).version, version, 'nothing changed');
  });

  test('a wallet that does not own the root is refused, by the CLI and by the root itself, and nothing changes', async () => {
    const [{ root, snapshot }, { strangerDir, strangerAddress, funded }] = await Promise.all([
      // With a proxy #1, so that unregistering it is refused for the owner, not for a missing entry.
      deployedRoot('stranger', (root) => [
        { to: root, value: toNano('0.1'), body: registerProxyBody(ton.root, '127.0.0.1:11002') },
      ]),
      (async () => {
        const s = await strangerWallet('stranger'); // a wallet file only; funded by `wallet fund`
        return { ...s, funded: await json('wallet', 'fund', '2', '--data-dir', s.strangerDir, ...chain) };
      })(),
    ]);
    const stranger = ['--data-dir', strangerDir, ...chain, '--root', root.toString()];
    assert.equal(funded.balance, '2.000000000');
    // Neither sends anything: at once.
    const [before, refusedAllow] = await Promise.all([
      snapshot(),
      cocoon('root', 'allow', 'model', hex('ee'), ...stranger),
    ]);
    const refused = failed(refusedAllow, 1);
    assert.match(
      refused,
      /the wallet UQ\S+ \(.*stranger\/wallet\.json\) does not own root \S+; its owner is UQ\S+/,
    );
    assert.match(refused, /nothing sent/);
    assert.equal(await ton.chain.getBalance(strangerAddress), toNano('2'), 'nothing sent, not even gas');

    const byRoot = failed(await cocoon('root', 'allow', 'model', hex('ee'), ...stranger, '--skip-checks'), 1);
    assert.match(
      byRoot,
      /root \S+ refused add_model_hash \(exit code 101, not allowed: the sending wallet is not the root's owner\); nothing changed/,
    );
    const [now, balance] = await Promise.all([snapshot(), ton.chain.getBalance(strangerAddress)]);
    assert.equal(now, before, 'the root is unchanged');
    const spent = toNano('2') - balance;
    assert.ok(spent > 0n && spent < toNano('0.05'), `the bounced value came back; spent ${formatTon(spent)}`);

    await refusals(stranger, [
      [['set-params', '--price-per-token', '1'], 1, /does not own root/],
      [
        ['disallow', 'worker-image', hex('cd'), '--skip-checks'],
        1,
        /refused del_worker_hash \(exit code 101/,
      ],
      [['unregister-proxy', '1'], 1, /does not own root/],
      [['change-owner', strangerAddress.toString(), '--yes'], 1, /does not own root/],
    ]);
    assert.equal(await snapshot(), before, 'the root is unchanged');
  });

  test('change-owner needs --yes, then hands the root to the new owner', async () => {
    const [{ gov, govAddress, root, rootData }, { strangerDir, strangerAddress }] = await Promise.all([
      deployedRoot('change-owner'),
      strangerWallet('change-owner', toNano('2')),
    ]);
    const stranger = ['--data-dir', strangerDir, ...chain, '--root', root.toString()];
    const to = strangerAddress.toString({ bounceable: false });
    assert.match(
      failed(await cocoon('root', 'change-owner', to, ...gov), 1),
      /change-owner gives root \S+ to UQ\S+: the wallet in .* can no longer govern it.*repeat with --yes/,
    );
    assert.ok((await rootData()).owner.equals(govAddress));

    const r = await json('root', 'change-owner', to, '--yes', ...gov);
    assert.equal(r.action, 'change-owner');
    assert.ok(Address.parse(r.previousOwner).equals(govAddress));
    assert.ok(Address.parse(r.state.owner).equals(strangerAddress));
    assert.ok((await rootData()).owner.equals(strangerAddress));

    // The old owner is refused whether or not the new one's change is in yet: at once.
    const [byOldOwner, byNewOwner] = await Promise.all([
      cocoon('root', 'allow', 'model', hex('ee'), ...gov),
      json('root', 'allow', 'model', hex('ee'), ...stranger),
    ]);
    assert.match(failed(byOldOwner, 1), /does not own root/);
    assert.deepEqual(byNewOwner.state.allowLists.models, [hex('ee')]);
    const shown = ok(await cocoon('root', 'show', ...stranger));
    assert.match(shown, /owner\s+UQ\S+ \(the wallet in .*stranger\)/);
  });

  test('configuration and chain errors: one line, exit 2 and 1', async () => {
    // The embedded chain's own root and the governance wallet that deployed it (nothing here sends).
    const gov = [
      '--data-dir',
      join(dir, 'ton', 'chain', 'governance'),
      ...chain,
      '--root',
      ton.root.toString(),
    ];
    const nowhere = Address.parse(`0:${hex('22')}`).toString();
    await refusals(
      [],
      [
        [['show', ...chain], 2, /no root contract configured: pass --root/],
        [['show', ...chain, '--root', `x${nowhere.slice(1)}`], 2, /root: not a TON address/],
        [['show', ...chain, '--root', nowhere], 1, /no root contract is deployed at/],
        [
          ['show', '--chain-endpoint', 'http://127.0.0.1:1', '--root', nowhere],
          1,
          /cannot reach the TON API/,
        ],
        [
          ['allow', 'model', hex('ee'), ...gov, '--data-dir', join(dir, 'none')],
          2,
          /wallet\.json does not exist\. Create one with: cocoon wallet create/,
        ],
        [['change-owner', 'nope', ...gov], 2, /new owner: not a TON address/],
      ],
    );
  });
});
