import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { Collateral } from '../../src/attest/tdx/collateral.ts';

/**
 * FakePccs: a PCCS on loopback (the real ones are unreachable here) answering from a real collateral
 * vector in the PCCS v4 API shapes, and counting what it is asked. For another FMSPC than the vector's it
 * answers the same collateral with that FMSPC written into the TCB info (its signature then fails, which
 * the collateral source does not check: dcap-qvl does, at verification).
 */
export interface FakePccs {
  url: string;
  /** Every HTTP request. */
  requests: number;
  /** Collateral fetches: requests for TCB info. */
  tcbRequests: number;
  /** Requests being answered right now, and the most at once. */
  open: number;
  maxOpen: number;
  /** 'ok', 'fail' (HTTP 500), 'hang' (until released), 'huge' (an endless body). */
  mode: 'ok' | 'fail' | 'hang' | 'huge';
  /** Answers every held request (mode 'hang'). */
  release(): void;
  close(): Promise<void>;
}

export async function startFakePccs(collateral: Collateral): Promise<FakePccs> {
  const held: (() => void)[] = [];
  const state: FakePccs = {
    url: '',
    requests: 0,
    tcbRequests: 0,
    open: 0,
    maxOpen: 0,
    mode: 'ok',
    release: () => {
      for (const h of held.splice(0)) h();
    },
    close: () =>
      new Promise<void>((r) => {
        state.release();
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
  const answer = (req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? '', 'http://x');
    const send = (body: string | Buffer, headers: Record<string, string> = {}) => {
      res.writeHead(200, headers);
      res.end(body);
    };
    const chain = (pem: string) => encodeURIComponent(pem);
    if (state.mode === 'fail') {
      res.writeHead(500);
      res.end();
    } else if (state.mode === 'huge') {
      res.writeHead(200, { 'TCB-Info-Issuer-Chain': chain(collateral.tcb_info_issuer_chain) });
      const chunk = Buffer.alloc(64 * 1024, 0x41);
      const pump = () => {
        while (res.write(chunk)) {}
      };
      res.on('drain', pump);
      res.on('error', () => {});
      pump();
    } else if (url.pathname.endsWith('/pckcrl')) {
      send(Buffer.from(collateral.pck_crl as string, 'hex'), {
        'SGX-PCK-CRL-Issuer-Chain': chain(collateral.pck_crl_issuer_chain),
      });
    } else if (url.pathname.endsWith('/rootcacrl')) {
      send(collateral.root_ca_crl as string);
    } else if (url.pathname.endsWith('/tcb')) {
      const fmspc = url.searchParams.get('fmspc') ?? '';
      const info = JSON.parse(collateral.tcb_info) as { fmspc: string };
      const tcbInfo =
        fmspc.toUpperCase() === info.fmspc.toUpperCase()
          ? collateral.tcb_info
          : JSON.stringify({ ...info, fmspc: fmspc.toLowerCase() });
      send(`{"tcbInfo":${tcbInfo},"signature":"${collateral.tcb_info_signature}"}`, {
        'TCB-Info-Issuer-Chain': chain(collateral.tcb_info_issuer_chain),
      });
    } else if (url.pathname.endsWith('/qe/identity')) {
      send(
        `{"enclaveIdentity":${collateral.qe_identity},"signature":"${collateral.qe_identity_signature}"}`,
        {
          'SGX-Enclave-Identity-Issuer-Chain': chain(collateral.qe_identity_issuer_chain),
        },
      );
    } else {
      res.writeHead(404);
      res.end();
    }
  };
  const server = createServer((req, res) => {
    state.requests++;
    if (req.url?.includes('/tcb?')) state.tcbRequests++;
    state.open++;
    state.maxOpen = Math.max(state.maxOpen, state.open);
    res.on('close', () => state.open--);
    if (state.mode === 'hang') held.push(() => answer(req, res));
    else answer(req, res);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  state.url = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  return state;
}
