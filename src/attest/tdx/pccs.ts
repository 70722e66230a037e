import { dcap } from './dcap.ts';
import type { PlatformId } from './quote.ts';

/** Intel's signed statements that a quote is judged against (TCB info, QE identity, CRLs). */
export type Collateral = import('@phala/dcap-qvl').Collateral;

export interface PccsRequestLimits {
  /** Each HTTP request is abandoned after this long. */
  timeoutMs: number;
  /** Each response body is abandoned beyond this size. */
  maxResponseBytes: number;
}

/**
 * Fetches a platform's collateral from a PCCS (v4 API; or Intel's PCS), as dcap-qvl's `getCollateral`
 * does, but for a platform already read from a verified PCK chain (so never on a stranger's say-so), with a
 * timeout and a size cap on every response, and without dcap-qvl's fall-back to a CRL URL named by the
 * PCCS's own answer: the root CA CRL comes from the PCCS or from the URL in Intel's pinned root.
 * The result carries no PCK chain, so it is the same for every quote of the platform.
 */
export async function fetchPccsCollateral(
  pccsUrl: string,
  p: PlatformId,
  limits: PccsRequestLimits,
): Promise<Collateral> {
  const base = pccsUrl
    .replace(/\/$/, '')
    .replace(/\/(sgx|tdx)\/certification\/v4$/, '')
    .replace(/\/$/, '');
  const v4 = (tee: string, path: string) => `${base}/${tee}/certification/v4/${path}`;
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(new Error('PCCS request timed out')), limits.timeoutMs);
  const get = (url: string) => httpGet(url, abort.signal, limits.maxResponseBytes);
  try {
    const [pckCrl, tcb, qe] = await Promise.all([
      get(v4('sgx', `pckcrl?ca=${p.ca}&encoding=der`)),
      get(v4(p.tee, `tcb?fmspc=${p.fmspc}`)),
      get(v4(p.tee, 'qe/identity?update=standard')),
    ]);
    let rootCaCrl: Buffer;
    if (base.startsWith(dcap.INTEL_PCS_URL)) rootCaCrl = (await get(intelRootCrlUrl())).body;
    else {
      rootCaCrl = await get(v4('sgx', 'rootcacrl')).then(
        (r) => r.body,
        () => get(intelRootCrlUrl()).then((r) => r.body),
      );
    }
    const tcbInfo = signedJson(tcb.body, 'tcbInfo');
    const qeIdentity = signedJson(qe.body, 'enclaveIdentity');
    return {
      pck_crl_issuer_chain: header(pckCrl.headers, 'SGX-PCK-CRL-Issuer-Chain'),
      root_ca_crl: derOrHex(rootCaCrl).toString('hex'),
      pck_crl: derOrHex(pckCrl.body).toString('hex'),
      tcb_info_issuer_chain: header(tcb.headers, 'TCB-Info-Issuer-Chain', 'SGX-TCB-Info-Issuer-Chain'),
      tcb_info: tcbInfo.raw,
      tcb_info_signature: tcbInfo.signature,
      qe_identity_issuer_chain: header(qe.headers, 'SGX-Enclave-Identity-Issuer-Chain'),
      qe_identity: qeIdentity.raw,
      qe_identity_signature: qeIdentity.signature,
    };
  } finally {
    clearTimeout(timer);
    abort.abort();
  }
}

function intelRootCrlUrl(): string {
  const url = dcap.utils.extractCrlUrl(dcap.constants.TRUSTED_ROOT_CA_DER);
  if (!url) throw new Error('Intel root CA names no CRL');
  return url;
}

async function httpGet(
  url: string,
  signal: AbortSignal,
  maxBytes: number,
): Promise<{ body: Buffer; headers: Headers }> {
  const res = await fetch(url, { signal, redirect: 'error' });
  if (!res.ok) {
    await res.body?.cancel().catch(() => {});
    throw new Error(`${url}: HTTP ${res.status}`);
  }
  const declared = Number(res.headers.get('content-length') ?? 0);
  if (declared > maxBytes) {
    await res.body?.cancel().catch(() => {});
    throw new Error(`${url}: response of ${declared} bytes, more than ${maxBytes}`);
  }
  const chunks: Buffer[] = [];
  let size = 0;
  if (res.body) {
    const reader = res.body.getReader();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      size += value.byteLength;
      if (size > maxBytes) {
        await reader.cancel().catch(() => {});
        throw new Error(`${url}: response of more than ${maxBytes} bytes`);
      }
      chunks.push(Buffer.from(value));
    }
  }
  return { body: Buffer.concat(chunks), headers: res.headers };
}

function header(h: Headers, ...names: string[]): string {
  for (const n of names) {
    const v = h.get(n);
    if (v) return decodeURIComponent(v);
  }
  throw new Error(`PCCS answer has no ${names.join(' / ')} header`);
}

/** PCCSs answer CRLs in hex or DER. */
function derOrHex(b: Buffer): Buffer {
  const s = b.toString('latin1').trim();
  return /^(?:[0-9a-fA-F]{2})+$/.test(s) ? Buffer.from(s, 'hex') : b;
}

/**
 * `{"<field>":{…},"signature":"<hex>"}`: the raw bytes of the signed object (what Intel signed; re-encoding
 * the parsed JSON is only the fall-back) and the signature.
 */
function signedJson(body: Buffer, field: string): { raw: string; signature: string } {
  const text = body.toString('utf8');
  const parsed = JSON.parse(text) as Record<string, unknown>;
  const signature = parsed.signature;
  if (typeof signature !== 'string' || !/^[0-9a-fA-F]{128}$/.test(signature)) {
    throw new Error(`PCCS ${field} has no signature`);
  }
  if (typeof parsed[field] !== 'object' || parsed[field] === null)
    throw new Error(`PCCS answer has no ${field}`);
  const m = new RegExp(
    `^\\s*\\{\\s*"${field}"\\s*:\\s*(\\{[\\s\\S]*\\})\\s*,\\s*"signature"\\s*:\\s*"[0-9a-fA-F]+"\\s*\\}\\s*$`,
  ).exec(text);
  const again = JSON.stringify(parsed[field]);
  const raw = m && JSON.stringify(JSON.parse(m[1]!)) === again ? m[1]! : again;
  return { raw, signature };
}
