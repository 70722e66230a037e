import {
  createHash,
  createPublicKey,
  type KeyObject,
  timingSafeEqual,
  verify as verifySignature,
  X509Certificate,
} from 'node:crypto';
import { AttestationError } from '../errors.ts';
import { dcap } from './dcap.ts';
import { tdxImageHash } from './measurements.ts';

/**
 * A strict, allocation-light reading of a TDX DCAP quote (v4 or v5), done before anything costly: every
 * length is checked against the bytes actually present, nothing unknown is tolerated, and the only bytes
 * allowed after the quote's own end are zeros (configfs-tsm pads quotes with them). What can be judged
 * without Intel's collateral is judged here: the quote's kind and version, its report data, the signatures
 * from the attestation key up to Intel's pinned root CA. Only then may collateral be fetched for it, and
 * only for the platform (FMSPC, CA) that Intel's own PCK certificate names.
 */

/** Upper bound of a TDX quote's size (real ones are about 5 KB, of which 3.7 KB is the PCK chain). */
export const MAX_TDX_QUOTE_BYTES = 16 * 1024;
/** Upper bound of the PCK certificate chain inside a quote (three certificates of about 1.3 KB). */
export const MAX_PCK_CHAIN_BYTES = 8 * 1024;

const HEADER_LEN = 48;
const TD10_LEN = 584;
const TD15_LEN = 648;
const ENCLAVE_REPORT_LEN = 384;
const SIG_LEN = 64;
const KEY_LEN = 64;
const TEE_TYPE_TDX = 0x81;
const TEE_TYPE_SGX = 0x00;
const ATTESTATION_KEY_ECDSA_P256 = 2;
const CERT_QE_REPORT = 6;
const CERT_PCK_CHAIN = 5;
const INTEL_QE_VENDOR_ID = Buffer.from('939a7233f79c4ca9940a0db3957f0607', 'hex');
/** Offsets of the TD report's fields (TDX module 1.0 layout; 1.5 appends TEE_TCB_SVN2 and MRSERVICETD). */
const TD_FIELDS: Record<string, [number, number]> = {
  teeTcbSvn: [0, 16],
  mrSeam: [16, 48],
  mrSignerSeam: [64, 48],
  seamAttributes: [112, 8],
  tdAttributes: [120, 8],
  xfam: [128, 8],
  mrTd: [136, 48],
  mrConfigId: [184, 48],
  mrOwner: [232, 48],
  mrOwnerConfig: [280, 48],
  rtMr0: [328, 48],
  rtMr1: [376, 48],
  rtMr2: [424, 48],
  rtMr3: [472, 48],
  reportData: [520, 64],
};

/** What a quote's collateral depends on: Intel publishes TCB info per FMSPC and a PCK CRL per CA. */
export interface PlatformId {
  tee: 'tdx';
  /** 12 upper-case hex digits, from the PCK certificate's SGX extension. */
  fmspc: string;
  ca: 'processor' | 'platform';
}

export interface ParsedTdxQuote {
  version: 4 | 5;
  reportType: 'td10' | 'td15';
  /** The TD report's fields (of the 1.0 layout, which 1.5 extends), views into the quote. */
  td: Record<string, Uint8Array>;
  reportData: Buffer;
  /** Image identity over the measured fields (src/attest/tdx/measurements.ts); not yet verified. */
  imageHash: string;
  /** Bytes covered by the attestation key's signature: header and body. */
  signed: Buffer;
  signature: Buffer;
  attestationKey: Buffer;
  qeReport: Buffer;
  qeReportSignature: Buffer;
  qeAuthData: Buffer;
  /** The PCK chain, leaf first, as DER. */
  pckChain: Buffer[];
}

const invalid = (why: string) => new AttestationError('quote_invalid', `TDX quote refused: ${why}`);

/** Parses and bounds a TDX quote; no signature is checked here. */
export function parseTdxQuote(bytes: Uint8Array): ParsedTdxQuote {
  const q = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (q.length > MAX_TDX_QUOTE_BYTES) throw invalid(`${q.length} bytes, more than ${MAX_TDX_QUOTE_BYTES}`);
  if (q.length < HEADER_LEN) throw invalid('shorter than its header');
  const version = q.readUInt16LE(0);
  const teeType = q.readUInt32LE(4);
  if (teeType === TEE_TYPE_SGX)
    throw new AttestationError('not_tdx', 'expected a TDX quote, got an SGX quote');
  if (teeType !== TEE_TYPE_TDX) throw invalid(`unknown TEE type 0x${teeType.toString(16)}`);
  if (version !== 4 && version !== 5) throw invalid(`unsupported TDX quote version ${version}`);
  if (q.readUInt16LE(2) !== ATTESTATION_KEY_ECDSA_P256) throw invalid('attestation key is not ECDSA P-256');
  if (!q.subarray(12, 28).equals(INTEL_QE_VENDOR_ID)) throw invalid('not made by Intel’s quoting enclave');
  let at = HEADER_LEN;
  let reportType: 'td10' | 'td15' = 'td10';
  let bodyLen = TD10_LEN;
  if (version === 5) {
    need(q, at, 6);
    const type = q.readUInt16LE(at);
    const size = q.readUInt32LE(at + 2);
    if (type === 2) [reportType, bodyLen] = ['td10', TD10_LEN];
    else if (type === 3) [reportType, bodyLen] = ['td15', TD15_LEN];
    else throw invalid(`body type ${type} is not a TD report`);
    if (size !== bodyLen) throw invalid(`body size ${size} does not match its type`);
    at += 6;
  }
  need(q, at, bodyLen);
  const body = q.subarray(at, at + bodyLen);
  at += bodyLen;
  const signed = q.subarray(0, at);
  need(q, at, 4);
  const authLen = q.readUInt32LE(at);
  at += 4;
  need(q, at, authLen);
  const auth = q.subarray(at, at + authLen);
  const end = at + authLen;
  for (let i = end; i < q.length; i++) if (q[i] !== 0) throw invalid('bytes after the quote’s end');

  // Authentication data (v4 layout, also in v5): signature, attestation key, certification data type 6.
  let a = 0;
  need(auth, a, SIG_LEN + KEY_LEN + 6);
  const signature = auth.subarray(0, SIG_LEN);
  const attestationKey = auth.subarray(SIG_LEN, SIG_LEN + KEY_LEN);
  a = SIG_LEN + KEY_LEN;
  const outerType = auth.readUInt16LE(a);
  const outerLen = auth.readUInt32LE(a + 2);
  a += 6;
  if (outerType !== CERT_QE_REPORT) throw invalid(`certification data type ${outerType}, expected 6`);
  if (outerLen !== auth.length - a) throw invalid('certification data size does not match its section');
  const cd = auth.subarray(a);
  let c = 0;
  need(cd, c, ENCLAVE_REPORT_LEN + SIG_LEN + 2);
  const qeReport = cd.subarray(0, ENCLAVE_REPORT_LEN);
  const qeReportSignature = cd.subarray(ENCLAVE_REPORT_LEN, ENCLAVE_REPORT_LEN + SIG_LEN);
  c = ENCLAVE_REPORT_LEN + SIG_LEN;
  const qeAuthLen = cd.readUInt16LE(c);
  c += 2;
  need(cd, c, qeAuthLen + 6);
  const qeAuthData = cd.subarray(c, c + qeAuthLen);
  c += qeAuthLen;
  const innerType = cd.readUInt16LE(c);
  const innerLen = cd.readUInt32LE(c + 2);
  c += 6;
  if (innerType !== CERT_PCK_CHAIN) {
    // Types 2/3 (encrypted PPID) would make us ask the PCCS for a PCK certificate on a stranger's say-so.
    throw invalid(`QE certification data type ${innerType}, expected 5 (the PCK chain in the quote)`);
  }
  if (innerLen !== cd.length - c) throw invalid('PCK chain size does not match its section');
  if (innerLen > MAX_PCK_CHAIN_BYTES) throw invalid(`PCK chain of ${innerLen} bytes`);
  const pckChain = pemChain(cd.subarray(c));

  const td: Record<string, Uint8Array> = {};
  for (const [name, [off, len]] of Object.entries(TD_FIELDS)) td[name] = body.subarray(off, off + len);
  const reportData = Buffer.from(td.reportData!);
  return {
    version,
    reportType,
    td,
    reportData,
    imageHash: tdxImageHash(td),
    signed,
    signature,
    attestationKey,
    qeReport,
    qeReportSignature,
    qeAuthData,
    pckChain,
  };
}

function need(b: Buffer, at: number, len: number): void {
  if (at + len > b.length) throw invalid('truncated');
}

/** Two or three PEM certificates, nothing else but whitespace and NULs around them. */
function pemChain(text: Buffer): Buffer[] {
  const s = text.toString('latin1');
  const re = /-----BEGIN CERTIFICATE-----([A-Za-z0-9+/=\r\n]{1,4096})-----END CERTIFICATE-----/g;
  const certs: Buffer[] = [];
  let last = 0;
  for (let m = re.exec(s); m; m = re.exec(s)) {
    if (!/^[\s\0]*$/.test(s.slice(last, m.index))) throw invalid('PCK chain holds more than certificates');
    if (certs.length === 3) throw invalid('PCK chain of more than three certificates');
    certs.push(Buffer.from(m[1]!.replace(/[\r\n]/g, ''), 'base64'));
    last = re.lastIndex;
  }
  if (!/^[\s\0]*$/.test(s.slice(last))) throw invalid('PCK chain holds more than certificates');
  if (certs.length < 2) throw invalid('PCK chain of fewer than two certificates');
  return certs;
}

let pinnedRoot: X509Certificate | null = null;
/** Intel's SGX root CA, as pinned by dcap-qvl. */
function intelRoot(): X509Certificate {
  pinnedRoot ??= new X509Certificate(dcap.constants.TRUSTED_ROOT_CA_DER);
  return pinnedRoot;
}

/** A PCK chain already found to lead to Intel's root: its leaf key, platform and validity. */
export interface VerifiedPckChain {
  leafKey: KeyObject;
  platform: PlatformId;
  notBefore: number;
  notAfter: number;
}

/**
 * PCK chains already verified, by the SHA-256 of their DER (one per CPU: every quote of a machine carries
 * the same chain), bounded LRU; only chains that verified are remembered.
 */
export class PckChainCache {
  private readonly map = new Map<string, VerifiedPckChain>();
  constructor(readonly maxEntries = 256) {}
  get size(): number {
    return this.map.size;
  }
  get(key: string): VerifiedPckChain | undefined {
    const v = this.map.get(key);
    if (v) {
      this.map.delete(key);
      this.map.set(key, v);
    }
    return v;
  }
  set(key: string, v: VerifiedPckChain): void {
    this.map.delete(key);
    this.map.set(key, v);
    while (this.map.size > this.maxEntries) this.map.delete(this.map.keys().next().value!);
  }
}

/**
 * Everything that needs no collateral, cheapest first: the QE report commits to the attestation key; the
 * attestation key signed the header and TD report; the PCK chain leads to Intel's pinned root and is
 * valid at `nowSecs`; the PCK leaf signed the QE report. Returns the platform the collateral is for.
 * Revocation (CRLs), the TCB level and the QE identity are judged later, with the collateral.
 */
export function verifyQuoteSignatures(
  q: ParsedTdxQuote,
  nowSecs: number,
  chains?: PckChainCache,
): PlatformId {
  const qeHash = createHash('sha256').update(q.attestationKey).update(q.qeAuthData).digest();
  if (!timingSafeEqual(qeHash, q.qeReport.subarray(320, 352))) {
    throw invalid('the QE report does not commit to the attestation key');
  }
  let ok = false;
  try {
    const key = createPublicKey({
      key: {
        kty: 'EC',
        crv: 'P-256',
        x: q.attestationKey.subarray(0, 32).toString('base64url'),
        y: q.attestationKey.subarray(32).toString('base64url'),
      },
      format: 'jwk',
    });
    ok = verifySignature('sha256', q.signed, { key, dsaEncoding: 'ieee-p1363' }, q.signature);
  } catch {}
  if (!ok) throw invalid('the TD report is not signed by the attestation key');

  const chainKey = q.pckChain.reduce((h, der) => h.update(der), createHash('sha256')).digest('hex');
  let chain = chains?.get(chainKey);
  if (!chain) {
    chain = verifyPckChain(q.pckChain);
    chains?.set(chainKey, chain);
  }
  if (chain.notBefore > nowSecs || chain.notAfter < nowSecs) {
    throw invalid('a PCK chain certificate is outside its validity');
  }
  try {
    ok = verifySignature(
      'sha256',
      q.qeReport,
      { key: chain.leafKey, dsaEncoding: 'ieee-p1363' },
      q.qeReportSignature,
    );
  } catch {
    ok = false;
  }
  if (!ok) throw invalid('the QE report is not signed by the PCK certificate');
  return chain.platform;
}

function verifyPckChain(ders: Buffer[]): VerifiedPckChain {
  let chain: X509Certificate[];
  try {
    chain = ders.map((der) => new X509Certificate(der));
  } catch {
    throw invalid('the PCK chain holds a malformed certificate');
  }
  const [leaf, ca, top] = chain as [X509Certificate, X509Certificate, X509Certificate | undefined];
  const root = intelRoot();
  if (!leaf.verify(ca.publicKey) || !ca.verify(root.publicKey) || (top && !top.verify(root.publicKey))) {
    throw invalid('the PCK chain does not lead to Intel’s SGX root CA');
  }
  if (leaf.ca) throw invalid('the PCK certificate is a CA');
  let fmspc: Buffer;
  try {
    fmspc = Buffer.from(dcap.utils.getFmspc(dcap.utils.getIntelExtension(ders[0]!)));
  } catch {
    throw invalid('the PCK certificate has no FMSPC');
  }
  const issuer = leaf.issuer;
  const ca_ = /PCK Processor CA/.test(issuer)
    ? 'processor'
    : /PCK Platform CA/.test(issuer)
      ? 'platform'
      : null;
  if (!ca_) throw invalid('the PCK certificate is issued by neither PCK CA');
  return {
    leafKey: leaf.publicKey,
    platform: { tee: 'tdx', fmspc: fmspc.toString('hex').toUpperCase(), ca: ca_ },
    notBefore: Math.max(...chain.map((c) => Date.parse(c.validFrom) / 1000)),
    notAfter: Math.min(...chain.map((c) => Date.parse(c.validTo) / 1000)),
  };
}
