import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Address, toNano } from '@ton/core';
import { HashKind } from '../../src/chain/contracts/opcodes.ts';
import { RootContract, type RootData } from '../../src/chain/contracts/root-contract.ts';
import { formatTon } from '../../src/chain/money.ts';
import { type LocalTon, startLocalTon } from '../../src/local/local-ton.ts';
import { cocoon, failed, ok } from './run-cocoon.ts';

const hex = (byte: string) => byte.repeat(32);

describe('cocoon root: governance of a root contract on an embedded TON chain', () => {
  const dir = mkdtempSync(join(tmpdir(), 'cocoon-governance-cli-'));
  const govDir = join(dir, 'governance');
  const strangerDir = join(dir, 'stranger');
  let ton: LocalTon;
  let chain: string[];
  let root: Address;
  let gov: string[];
  let stranger: string[];
  let strangerAddress: Address;
  let govAddress: Address;

  /** Commands that must fail without sending anything, run at once: [args (after gov's), exit code, message]. */
  const refusals = async (cases: [string[], number, RegExp][], as = () => gov) => {
    const results = await Promise.all(cases.map(([args]) => cocoon('root', ...args, ...as())));
    for (const [i, [args, code, msg]] of cases.entries()) {
      assert.match(failed(results[i]!, code), msg, `cocoon root ${args.join(' ')}`);
    }
  };
  /** What `root show --json` says, to compare states. */
  const snapshot = async () => JSON.stringify(await json('root', 'show', ...gov));
  const rootData = (): Promise<RootData> => ton.chain.open(RootContract.fromAddress(root)).getRootData();
  const json = async (...args: string[]) => JSON.parse(ok(await cocoon(...args, '--json')));

  before(async () => {
    ton = await startLocalTon(join(dir, 'ton'), 0);
    chain = ['--chain-endpoint', ton.endpoint];
    govAddress = await ton.fundNode(govDir, toNano('10'));
    strangerAddress = await ton.fundNode(strangerDir, 0n); // a wallet file only; funded by `wallet fund`
  });

  after(async () => {
    await ton?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  test('root deploy deploys a root owned by the governance wallet; deploy-root still works; show prints it', async () => {
    const deployed = await json(
      'root',
      'deploy',
      '--data-dir',
      govDir,
      ...chain,
      '--price-per-token',
      '0.000003',
    );
    root = Address.parse(deployed.root);
    assert.ok(Address.parse(deployed.owner).equals(govAddress));
    assert.equal(deployed.params.pricePerToken, '0.000003000');
    gov = ['--data-dir', govDir, ...chain, '--root', root.toString()];
    stranger = ['--data-dir', strangerDir, ...chain, '--root', root.toString()];

    const again = failed(
      await cocoon('deploy-root', '--data-dir', govDir, ...chain, '--price-per-token', '0.000003'),
      1,
    );
    assert.match(again, /already deployed at/);

    const text = ok(await cocoon('root', 'show', ...gov));
    assert.match(text, new RegExp(`^root ${root.toString()}$`, 'm'));
    assert.match(text, /owner\s+UQ\S+ \(the wallet in .*governance\)/);
    assert.match(text, /price per token\s+0\.000003000 TON/);
    assert.match(text, /proxy images\s+\(none: nothing is allowed\)/);
    assert.match(text, /registered\s+\(none\)/);

    const shown = await json('root', 'show', ...chain, '--root', root.toString()); // no wallet needed
    assert.equal(shown.root, root.toString());
    assert.ok(Address.parse(shown.owner).equals(govAddress));
    assert.equal(shown.version, 1);
    assert.equal(shown.params.paramsVersion, 1);
    assert.deepEqual(shown.allowLists, { proxyImages: [], workerImages: [], models: [] });
    assert.deepEqual(shown.proxies, []);
  });

  test('set-params changes only the given parameters and raises the version; show reflects it', async () => {
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
    assert.equal((await rootData()).params.pricePerToken, toNano('0.000004'));

    const version = (await rootData()).version;
    // Refused before sending (nothing is sent, so these may run at once).
    await refusals([
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
    ]);
    // The root refuses it itself when the CLI's checks are skipped: reported as the root's refusal.
    assert.match(
      failed(await cocoon('root', 'set-params', ...gov, '--params-version', '3', '--skip-checks'), 1),
      /root \S+ refused set_params \(exit code 110, invalid parameters.*\); nothing changed/,
    );
    const after = await rootData();
    assert.equal(after.version, version, 'nothing changed');
    assert.equal(after.params.paramsVersion, 7);
  });

  test('allow and disallow each kind of hash, in the formats hashes are printed in', async () => {
    const modelDir = join(dir, 'model');
    mkdirSync(modelDir);
    writeFileSync(join(modelDir, 'weights.bin'), 'tiny weights');
    const modelHash = ok(await cocoon('model-hash', modelDir)).split('\n')[0]!;
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
    const again = await json('root', 'allow', 'model', modelHash, ...gov);
    assert.equal(again.changed, false);
    assert.match(again.reason, /already allowed/);
    const shown = await json('root', 'show', ...gov);
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
    await refusals([
      [['disallow', 'model', modelHash], 1, /is not on root \S+'s model allow-list; nothing sent/],
      [['allow', 'model', 'abc'], 2, /model hash: expected 64 hex digits/],
      [['allow', 'model', `tiny@main:${hex('A')}`], 2, /model hash: not a model identity/],
      [['allow', 'worker-image', hex('a').slice(1)], 2, /worker image hash: expected 64 hex digits/],
      [['allow', 'image', hex('ab')], 2, /kind: expected proxy-image, worker-image, model, got "image"/],
    ]);
  });

  test('register, update and unregister proxies', async () => {
    const proxyA = ton.root; // any contract address will do for the registry
    const proxyB = Address.parse(`0:${hex('11')}`);
    const a = await json('root', 'register-proxy', proxyA.toString(), '127.0.0.1:11002', ...gov);
    assert.equal(a.seqno, 1);
    assert.equal(a.proxyDeployed, true);
    const b = ok(
      await cocoon('root', 'register-proxy', proxyB.toRawString(), 'proxy.example.com:8443', ...gov),
    );
    assert.match(b, /^Registered proxy #2 in root \S+: \S+ at proxy\.example\.com:8443$/m);
    assert.match(b, /note\s+no contract is deployed at/);
    assert.match(
      failed(await cocoon('root', 'register-proxy', proxyA.toString(), '127.0.0.1:11002', ...gov), 1),
      /already registered in root \S+ as #1; nothing sent/,
    );

    const u = await json('root', 'update-proxy', '1', proxyA.toString(), '[::1]:11003', ...gov);
    assert.equal(u.previous.endpoint, '127.0.0.1:11002');
    assert.deepEqual(u.state.proxies, [
      { seqno: 1, address: proxyA.toString(), endpoint: '[::1]:11003' },
      { seqno: 2, address: proxyB.toString(), endpoint: 'proxy.example.com:8443' },
    ]);

    const gone = ok(await cocoon('root', 'unregister-proxy', '2', ...gov));
    assert.match(gone, /^Unregistered proxy #2 from root/m);
    assert.match(gone, /was\s+\S+ at proxy\.example\.com:8443/);
    const shown = await json('root', 'show', ...gov);
    assert.equal(shown.lastProxySeqno, 2);
    assert.deepEqual(shown.proxies, [{ seqno: 1, address: proxyA.toString(), endpoint: '[::1]:11003' }]);

    const version = (await rootData()).version;
    await refusals([
      [['unregister-proxy', '2'], 1, /has no proxy #2 \(registered: #1\); nothing sent/],
      [['update-proxy', '3', proxyA.toString(), '127.0.0.1:1'], 1, /has no proxy #3/],
      [['register-proxy', proxyA.toString(), 'nohost'], 2, /endpoint: expected the proxy's public host:port/],
      [['register-proxy', 'nope', '127.0.0.1:1'], 2, /proxy contract: not a TON address: nope/],
      [['unregister-proxy', 'x'], 2, /seqno: expected a proxy's registry number/],
    ]);
    assert.match(
      failed(
        await cocoon('root', 'update-proxy', '5', proxyA.toString(), '127.0.0.1:1', ...gov, '--skip-checks'),
        1,
      ),
      /refused update_proxy \(exit code 112, no such entry\); nothing changed/,
    );
    assert.equal((await rootData()).version, version, 'nothing changed');
  });

  test('a wallet that does not own the root is refused, by the CLI and by the root itself, and nothing changes', async () => {
    const funded = await json('wallet', 'fund', '2', '--data-dir', strangerDir, ...chain);
    assert.equal(funded.balance, '2.000000000');
    const before = await snapshot();
    const refused = failed(await cocoon('root', 'allow', 'model', hex('ee'), ...stranger), 1);
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
    assert.equal(await snapshot(), before, 'the root is unchanged');
    const spent = toNano('2') - (await ton.chain.getBalance(strangerAddress));
    assert.ok(spent > 0n && spent < toNano('0.05'), `the bounced value came back; spent ${formatTon(spent)}`);

    await refusals(
      [
        [['set-params', '--price-per-token', '1'], 1, /does not own root/],
        [
          ['disallow', 'worker-image', hex('cd'), '--skip-checks'],
          1,
          /refused del_worker_hash \(exit code 101/,
        ],
        [['unregister-proxy', '1'], 1, /does not own root/],
        [['change-owner', strangerAddress.toString(), '--yes'], 1, /does not own root/],
      ],
      () => stranger,
    );
    assert.equal(await snapshot(), before, 'the root is unchanged');
  });

  test('change-owner needs --yes, then hands the root to the new owner', async () => {
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

    assert.match(failed(await cocoon('root', 'allow', 'model', hex('ee'), ...gov), 1), /does not own root/);
    const byNewOwner = await json('root', 'allow', 'model', hex('ee'), ...stranger);
    assert.deepEqual(byNewOwner.state.allowLists.models, [hex('ee')]);
    const shown = ok(await cocoon('root', 'show', ...stranger));
    assert.match(shown, /owner\s+UQ\S+ \(the wallet in .*stranger\)/);
  });

  test('configuration and chain errors: one line, exit 2 and 1', async () => {
    const nowhere = Address.parse(`0:${hex('22')}`).toString();
    await refusals(
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
      () => [],
    );
  });
});
