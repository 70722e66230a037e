import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import type { AttestationError } from '../../src/attest/errors.ts';
import {
  type Collateral,
  type CollateralSource,
  FileCollateral,
  MAX_TDX_QUOTE_BYTES,
  PccsCollateral,
  type PlatformId,
  parseTdxQuote,
  TdxAttestationVerifier,
} from '../../src/attest/tdx/index.ts';
import { startFakePccs } from './fake-pccs.ts';
import {
  collateralPath,
  PINNED,
  TDX_FMSPC,
  tdxCollateral,
  tdxQuote,
  tdxReportData,
  vector,
} from './vectors.ts';

const refusedWith = (code: string) => (e: AttestationError) => {
  assert.equal(e.code, code, e.message);
  return true;
};

/** A collateral source that counts what it is asked (the file's collateral behind it). */
function countingSource(): CollateralSource & { gets: PlatformId[] } {
  const file = new FileCollateral(collateralPath);
  const s = {
    gets: [] as PlatformId[],
    get: (p: PlatformId) => {
      s.gets.push(p);
      return file.get();
    },
  };
  return s;
}

const PLATFORM: PlatformId = { tee: 'tdx', fmspc: TDX_FMSPC, ca: 'platform' };
const fakePlatform = (i: number): PlatformId => ({
  tee: 'tdx',
  fmspc: `F0${i.toString(16).padStart(10, '0')}`.toUpperCase(),
  ca: 'processor',
});
/** The real quote with more zero padding: another quote (another hash) of the same platform. */
const padded = (n: number) => Buffer.concat([tdxQuote, Buffer.alloc(n)]);

describe('TDX: the cheap checks come before any collateral', () => {
  test('the public quote with junk bytes after its end: quote_invalid, no collateral asked', async () => {
    const src = countingSource();
    const v = new TdxAttestationVerifier({ collateral: src, now: () => PINNED });
    for (const junk of [
      Buffer.from([1]),
      Buffer.from('-----BEGIN CERTIFICATE-----junk'),
      Buffer.alloc(100, 7),
    ]) {
      await assert.rejects(
        v.verify(Buffer.concat([tdxQuote, junk]), tdxReportData),
        refusedWith('quote_invalid'),
      );
    }
    assert.equal(src.gets.length, 0);
    assert.deepEqual(v.cacheEntries, { results: 0, pckChains: 0 });
  });

  test('an oversized quote is refused before it is parsed', async () => {
    const src = countingSource();
    const v = new TdxAttestationVerifier({ collateral: src, now: () => PINNED });
    await assert.rejects(v.verify(padded(MAX_TDX_QUOTE_BYTES), tdxReportData), refusedWith('quote_invalid'));
    assert.equal(v.misses, 0, 'not even a cache miss: refused on its size');
    assert.equal(src.gets.length, 0);
  });

  test('report data that is not the claims hash: refused before signatures and collateral', async () => {
    const src = countingSource();
    const v = new TdxAttestationVerifier({ collateral: src, now: () => PINNED });
    await assert.rejects(v.verify(tdxQuote, Buffer.alloc(64)), refusedWith('report_data_mismatch'));
    assert.equal(src.gets.length, 0);
    assert.equal(v.cacheEntries.pckChains, 0, 'no signature was checked');
  });

  test('an SGX quote, an unknown version, an encrypted-PPID quote: refused on their header, no collateral', async () => {
    const src = countingSource();
    const v = new TdxAttestationVerifier({ collateral: src, now: () => PINNED });
    await assert.rejects(v.verify(vector('sgx_quote'), Buffer.alloc(64)), refusedWith('not_tdx'));
    const v3 = Buffer.from(tdxQuote);
    v3.writeUInt16LE(3, 0);
    await assert.rejects(v.verify(v3, tdxReportData), refusedWith('quote_invalid'));
    // QE certification data type 3 (encrypted PPID): would make us ask the PCCS for a PCK certificate.
    const typeAt = tdxQuote.indexOf('-----BEGIN CERTIFICATE-----') - 6;
    assert.equal(tdxQuote.readUInt16LE(typeAt), 5);
    const ppid = Buffer.from(tdxQuote);
    ppid.writeUInt16LE(3, typeAt);
    await assert.rejects(v.verify(ppid, tdxReportData), refusedWith('quote_invalid'));
    assert.equal(src.gets.length, 0);
  });

  test('declared sizes that do not match the bytes present are refused', async () => {
    const src = countingSource();
    const v = new TdxAttestationVerifier({ collateral: src, now: () => PINNED });
    const authAt = parseTdxQuote(tdxQuote).signed.length;
    for (const size of [0xffffffff, 100, 4301]) {
      const bad = Buffer.from(tdxQuote);
      bad.writeUInt32LE(size, authAt);
      await assert.rejects(v.verify(bad, tdxReportData), refusedWith('quote_invalid'));
    }
    assert.equal(src.gets.length, 0);
  });

  test('the precheck (role, tier, allow-lists) runs on the claimed image before any signature or collateral', async () => {
    const src = countingSource();
    const v = new TdxAttestationVerifier({ collateral: src, now: () => PINNED });
    const seen: string[] = [];
    const ok = await v.verify(tdxQuote, tdxReportData, { precheck: (c) => seen.push(c.imageHash) });
    assert.deepEqual(seen, [ok.imageHash], 'the claimed image is the verified one');
    const fresh = new TdxAttestationVerifier({ collateral: src, now: () => PINNED });
    const gets = src.gets.length;
    const refuse = () => {
      throw Object.assign(new Error('no'), { code: 'image_not_allowed' });
    };
    await assert.rejects(
      fresh.verify(tdxQuote, tdxReportData, { precheck: refuse }),
      refusedWith('image_not_allowed'),
    );
    const tampered = Buffer.from(tdxQuote);
    tampered[100]! ^= 1; // would fail its signature: the precheck refuses it first
    await assert.rejects(
      fresh.verify(tampered, tdxReportData, { precheck: refuse }),
      refusedWith('image_not_allowed'),
    );
    assert.equal(src.gets.length, gets);
    assert.deepEqual(fresh.cacheEntries, { results: 0, pckChains: 0 });
  });

  test('a TDX 1.5 (v5, td15) quote is parsed and its image computed from the 1.0 fields', () => {
    const q = parseTdxQuote(vector('tdx_quote_outdated'));
    assert.equal(q.version, 5);
    assert.equal(q.reportType, 'td15');
    assert.match(q.imageHash, /^[0-9a-f]{64}$/);
  });

  test('several quotes of one platform share one collateral entry; results are cached by the whole quote', async () => {
    const pccs = await startFakePccs(tdxCollateral);
    after(() => pccs.close());
    const dir = mkdtempSync(join(tmpdir(), 'cocoon-tdx-share-'));
    after(() => rmSync(dir, { recursive: true, force: true }));
    const source = new PccsCollateral(pccs.url, dir, () => PINNED);
    const v = new TdxAttestationVerifier({ collateral: source, now: () => PINNED, cacheSize: 2 });
    for (const q of [tdxQuote, padded(16), padded(32)])
      assert.equal((await v.verify(q, tdxReportData)).tier, 'tee-cpu');
    assert.equal(pccs.tcbRequests, 1, 'one collateral fetch for the platform');
    assert.equal(source.fetches, 1);
    assert.equal(readdirSync(dir).length, 1, 'one cache file');
    assert.equal(v.misses, 3);
    assert.equal(v.cacheEntries.results, 2, 'the result cache holds at most cacheSize entries');
    assert.equal(v.cacheEntries.pckChains, 1, 'one PCK chain, verified once');
    await v.verify(padded(32), tdxReportData);
    assert.equal(v.hits, 1);
  });
});

describe('TDX: PCCS collateral source bounds', () => {
  const dirs: string[] = [];
  const tmp = () => {
    const d = mkdtempSync(join(tmpdir(), 'cocoon-pccs-'));
    dirs.push(d);
    return d;
  };
  after(() => {
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  test('one fetch in flight per platform: 20 concurrent asks, one fetch', async () => {
    const pccs = await startFakePccs(tdxCollateral);
    after(() => pccs.close());
    pccs.mode = 'hang';
    const source = new PccsCollateral(pccs.url, tmp(), () => PINNED);
    const all = Promise.all(Array.from({ length: 20 }, () => source.get(PLATFORM)));
    while (pccs.tcbRequests < 1) await new Promise((r) => setTimeout(r, 5));
    pccs.mode = 'ok';
    pccs.release();
    const got = await all;
    assert.equal(new Set(got).size, 1);
    assert.equal(pccs.tcbRequests, 1);
    assert.equal(source.fetches, 1);
  });

  test('a global cap on fetches and a bounded queue: beyond them, refused at once', async () => {
    const pccs = await startFakePccs(tdxCollateral);
    after(() => pccs.close());
    pccs.mode = 'hang';
    const source = new PccsCollateral(pccs.url, tmp(), () => PINNED, {
      maxConcurrentFetches: 2,
      maxQueuedFetches: 3,
    });
    const results = Array.from({ length: 10 }, (_, i) =>
      source.get(fakePlatform(i)).then(
        () => 'ok',
        (e) => e.code,
      ),
    );
    while (pccs.tcbRequests < 2) await new Promise((r) => setTimeout(r, 5));
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(pccs.tcbRequests, 2, 'two fetches run, the others wait or are refused');
    assert.ok(pccs.maxOpen <= 2 * 4, `at most 2 fetches of 4 requests open (${pccs.maxOpen})`);
    pccs.mode = 'ok';
    pccs.release();
    // Released fetches free their slots for the queued ones.
    const codes = await Promise.all(results);
    assert.equal(codes.filter((c) => c === 'ok').length, 5);
    assert.equal(codes.filter((c) => c === 'collateral_unavailable').length, 5);
    assert.equal(pccs.tcbRequests, 5);
  });

  test('a failed platform is not asked for again before its backoff ends, and the backoff doubles', async () => {
    const pccs = await startFakePccs(tdxCollateral);
    after(() => pccs.close());
    pccs.mode = 'fail';
    let ms = 1_000_000;
    const source = new PccsCollateral(
      pccs.url,
      tmp(),
      () => PINNED,
      { backoffInitialMs: 5_000, backoffMaxMs: 20_000 },
      () => ms,
    );
    const tryGet = () =>
      source.get(PLATFORM).then(
        () => 'ok',
        (e: AttestationError) => e.code,
      );
    assert.equal(await tryGet(), 'collateral_unavailable');
    for (let i = 0; i < 20; i++) assert.equal(await tryGet(), 'collateral_unavailable');
    assert.equal(source.fetches, 1, 'no fetch during the backoff');
    ms += 5_001;
    await tryGet();
    assert.equal(source.fetches, 2);
    ms += 5_001;
    await tryGet();
    assert.equal(source.fetches, 2, 'the backoff doubled to 10 s');
    ms += 5_000;
    pccs.mode = 'ok';
    assert.equal(await tryGet(), 'ok');
    assert.equal(source.fetches, 3);
    assert.equal(await tryGet(), 'ok');
    assert.equal(source.fetches, 3, 'then served from memory');
  });

  test('a response larger than the cap, or slower than the timeout, is abandoned; nothing is written', async () => {
    const pccs = await startFakePccs(tdxCollateral);
    after(() => pccs.close());
    const dir = tmp();
    pccs.mode = 'huge';
    const big = new PccsCollateral(pccs.url, dir, () => PINNED, { maxResponseBytes: 256 * 1024 });
    await assert.rejects(big.get(PLATFORM), refusedWith('collateral_unavailable'));
    pccs.mode = 'hang';
    const slow = new PccsCollateral(pccs.url, dir, () => PINNED, { fetchTimeoutMs: 200 });
    const t = Date.now();
    await assert.rejects(slow.get(PLATFORM), refusedWith('collateral_unavailable'));
    assert.ok(Date.now() - t < 3000);
    assert.deepEqual(readdirSync(dir), []);
    assert.deepEqual(big.memoryUsage, { entries: 0, bytes: 0 });
  });

  test('memory and disk caches are bounded in entries and bytes', async () => {
    const pccs = await startFakePccs(tdxCollateral);
    after(() => pccs.close());
    const dir = tmp();
    const source = new PccsCollateral(pccs.url, dir, () => PINNED, { memoryEntries: 2, diskEntries: 3 });
    for (let i = 0; i < 6; i++) await source.get(fakePlatform(i));
    assert.equal(source.memoryUsage.entries, 2);
    assert.equal(readdirSync(dir).length, 3);
    const one = source.memoryUsage.bytes / 2;
    const small = new PccsCollateral(pccs.url, tmp(), () => PINNED, {
      memoryBytes: Math.ceil(one * 1.5),
      diskBytes: Math.ceil(one * 2.5),
    });
    for (let i = 0; i < 6; i++) await small.get(fakePlatform(i));
    assert.equal(small.memoryUsage.entries, 1);
    assert.ok(small.memoryUsage.bytes <= one * 1.5);
  });

  test('a cache file too large, for another platform or not JSON is ignored (and refetched)', async () => {
    const pccs = await startFakePccs(tdxCollateral);
    after(() => pccs.close());
    const dir = tmp();
    const source = new PccsCollateral(pccs.url, dir, () => PINNED, { maxCollateralBytes: 64 * 1024 });
    const path = join(dir, `${source.keyOf(PLATFORM)}.json`);
    writeFileSync(path, Buffer.alloc(128 * 1024, 0x20));
    await source.get(PLATFORM);
    assert.equal(source.fetches, 1);
    const other = new PccsCollateral(pccs.url, dir, () => PINNED);
    writeFileSync(
      path,
      JSON.stringify({
        ...tdxCollateral,
        tcb_info: tdxCollateral.tcb_info.replace(/b0c06f000000/i, 'aaaaaaaaaaaa'),
      }),
    );
    await other.get(PLATFORM);
    assert.equal(other.fetches, 1);
    assert.ok(existsSync(path));
  });

  test('collateral never carries a PCK chain (it would replace the quote’s own)', async () => {
    const dir = tmp();
    const file = join(dir, 'c.json');
    writeFileSync(file, JSON.stringify({ ...tdxCollateral, pck_certificate_chain: 'x' }));
    const c = (await new FileCollateral(file).get()) as Collateral & { pck_certificate_chain?: string };
    assert.equal('pck_certificate_chain' in c, false);
  });
});
