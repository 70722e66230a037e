/**
 * The local chain behind the toncenter HTTP API v2 (the JSON-RPC subset @ton/ton's TonClient uses), so
 * daemons reach it with the same TonClient code they use for testnet and mainnet.
 *
 * JSON-RPC methods (POST /jsonRPC or /api/v2/jsonRPC): getAddressInformation, getAddressBalance,
 * getAddressState, runGetMethod, sendBoc, sendBocReturnHash, getTransactions, getMasterchainInfo,
 * estimateFee, getConfigParam. Response shapes and the stack encoding follow toncenter (and what
 * @ton/ton's HttpApi validates): `{ok, result, id, jsonrpc}` or `{ok: false, error, code}` with toncenter's
 * HTTP statuses (416 bad address, 422 unknown method / bad params, 500 rejected message).
 *
 * Dev-only extras: GET /cocoon/info, POST /cocoon/faucet {address, amount: "<nanoton>"}.
 */
import { createHash } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import {
  Address,
  beginCell,
  Cell,
  type Message,
  storeStateInit,
  type Transaction,
  type TupleItem,
} from '@ton/core';
import type { Logger } from 'pino';
import { CocoonError } from '../errors.ts';
import { listenHttp, readBody, sendJson } from '../ops/http.ts';
import { silentLogger } from '../ops/log.ts';
import { LOCAL_CHAIN_LABEL, type LocalChain, LocalChainError } from './local-chain.ts';
import { parseNano } from './money.ts';

const BODY_LIMIT = 1 << 20;
const MASTERCHAIN_SHARD = '-9223372036854775808';

export interface LocalChainServer {
  /** Base URL; TonClient's endpoint is `${url}/jsonRPC`. */
  url: string;
  port: number;
  close(): Promise<void>;
}

export interface LocalChainServerOptions {
  chain: LocalChain;
  host?: string;
  port?: number;
  logger?: Logger;
}

type Params = Record<string, unknown>;

export async function startLocalChainServer(opts: LocalChainServerOptions): Promise<LocalChainServer> {
  const { chain } = opts;
  const log = opts.logger ?? silentLogger;
  const methods = rpcMethods(chain, log);

  const handler = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const path = (req.url ?? '/').split('?')[0];
    if (path === '/jsonRPC' || path === '/api/v2/jsonRPC') {
      if (req.method !== 'POST') return sendError(res, 405, 'Method Not Allowed');
      return handleJsonRpc(req, res, methods, log);
    }
    if (path === '/cocoon/info') {
      if (req.method !== 'GET') return sendError(res, 405, 'Method Not Allowed');
      return sendJson(res, 200, {
        ok: true,
        result: {
          label: LOCAL_CHAIN_LABEL,
          globalId: chain.globalId,
          now: chain.now(),
          seqno: chain.seqno,
          faucet: '/cocoon/faucet',
        },
      });
    }
    if (path === '/cocoon/faucet') {
      if (req.method !== 'POST') return sendError(res, 405, 'Method Not Allowed');
      return handleFaucet(req, res, chain, log);
    }
    return sendError(res, 404, 'Not Found');
  };

  const http = await listenHttp(opts.host ?? '127.0.0.1', opts.port ?? 0, (req, res) => {
    handler(req, res).catch((err) => {
      log.error({ err }, 'local chain server: unhandled error');
      if (!res.headersSent) sendError(res, 500, 'Internal error');
      else res.destroy();
    });
  });
  log.info({ url: http.url, label: LOCAL_CHAIN_LABEL }, 'local chain server listening');
  return { url: http.url, port: http.port, close: http.close };
}

function sendError(res: ServerResponse, status: number, error: string, extra: Params = {}): void {
  sendJson(res, status, { ok: false, error, code: status, ...extra });
}

/** Error status and message in toncenter's terms. */
function toRpcError(err: unknown): { status: number; message: string } {
  if (err instanceof LocalChainError) return { status: err.status, message: err.message };
  if (err instanceof CocoonError) return { status: err.status, message: err.message };
  // toncenter answers unexpected failures with 503
  return { status: 503, message: err instanceof Error ? err.message : String(err) };
}

async function readJson(req: IncomingMessage): Promise<unknown> {
  const body = await readBody(req, BODY_LIMIT);
  try {
    return JSON.parse(body.toString('utf8'));
  } catch (err) {
    throw new LocalChainError(
      400,
      `Bad request: the body is not valid JSON (${err instanceof Error ? err.message : String(err)}).`,
    );
  }
}

async function handleJsonRpc(
  req: IncomingMessage,
  res: ServerResponse,
  methods: Record<string, (p: Params) => Promise<unknown>>,
  log: Logger,
): Promise<void> {
  let id: unknown = null;
  try {
    const body = await readJson(req);
    if (!isObject(body))
      throw new LocalChainError(422, 'Validation error: the body must be a JSON-RPC object.');
    id = body.id ?? null;
    if (typeof body.method !== 'string')
      throw new LocalChainError(422, 'Validation error: "method" is required.');
    const params = body.params ?? {};
    if (!isObject(params)) throw new LocalChainError(422, 'Validation error: "params" must be an object.');
    const method = Object.hasOwn(methods, body.method) ? methods[body.method] : undefined;
    if (!method) throw new LocalChainError(422, 'Unknown method');
    const result = await method(params);
    sendJson(res, 200, { ok: true, result, id, jsonrpc: '2.0' });
  } catch (err) {
    const { status, message } = toRpcError(err);
    if (status >= 500) log.warn({ err }, 'local chain: request failed');
    sendError(res, status, message, { id, jsonrpc: '2.0' });
  }
}

async function handleFaucet(
  req: IncomingMessage,
  res: ServerResponse,
  chain: LocalChain,
  log: Logger,
): Promise<void> {
  try {
    const body = await readJson(req);
    if (!isObject(body))
      throw new LocalChainError(400, 'Expected {"address": "...", "amount": "<nanoton>"}.');
    const address = addressParam(body, 400);
    const amount = parseNano(body.amount as string);
    const txs = await chain.faucet(address, amount);
    const account = await chain.getAccount(address);
    log.info({ address: address.toString(), amount: amount.toString() }, 'local chain: faucet (dev only)');
    sendJson(res, 200, {
      ok: true,
      result: {
        address: address.toString(),
        amount: amount.toString(),
        balance: account.balance.toString(),
        transactions: txs.length,
        note: 'dev-only faucet of the local sandbox chain',
      },
    });
  } catch (err) {
    const { status, message } = toRpcError(err);
    sendError(res, status, message);
  }
}

// ---------------------------------------------------------------------------------------------------------
// Methods
// ---------------------------------------------------------------------------------------------------------

function rpcMethods(chain: LocalChain, log: Logger): Record<string, (p: Params) => Promise<unknown>> {
  const addressInformation = async (p: Params) => {
    const acc = await chain.getAccount(addressParam(p));
    return {
      '@type': 'raw.fullAccountState',
      balance: acc.balance.toString(),
      extra_currencies: [],
      code: acc.code ? boc64(acc.code) : '',
      data: acc.data ? boc64(acc.data) : '',
      last_transaction_id: transactionId(acc.lastTransaction?.lt ?? 0n, acc.lastTransaction?.hash),
      block_id: blockId(chain.seqno),
      frozen_hash: acc.frozenHash ? acc.frozenHash.toString('base64') : '',
      sync_utime: chain.now(),
      state: acc.state,
    };
  };

  const sendBoc = async (p: Params) => {
    const boc = base64Param(p, 'boc');
    const r = await chain.sendBoc(boc);
    log.debug({ hash: r.hash.toString('hex'), txs: r.transactions.length }, 'local chain: sendBoc');
    return r;
  };

  return {
    getAddressInformation: addressInformation,

    getAddressBalance: async (p) => (await chain.getAccount(addressParam(p))).balance.toString(),

    getAddressState: async (p) => (await chain.getAccount(addressParam(p))).state,

    runGetMethod: async (p) => {
      const address = addressParam(p);
      const method = p.method;
      if (typeof method !== 'string' && !(typeof method === 'number' && Number.isInteger(method))) {
        throw new LocalChainError(422, "TypeError: 'method' must be a method name or an integer method id");
      }
      const stack = parseStack(p.stack);
      const r = await chain.runGetMethod(address, method, stack);
      const acc = await chain.getAccount(address);
      return {
        '@type': 'smc.runResult',
        gas_used: Number(r.gasUsed),
        stack: r.stack.map(renderStackItem),
        exit_code: r.exitCode,
        block_id: blockId(chain.seqno),
        last_transaction_id: transactionId(acc.lastTransaction?.lt ?? 0n, acc.lastTransaction?.hash),
      };
    },

    sendBoc: async (p) => {
      await sendBoc(p);
      return { '@type': 'ok' };
    },

    sendBocReturnHash: async (p) => {
      const r = await sendBoc(p);
      return {
        '@type': 'raw.extMessageInfo',
        hash: r.hash.toString('base64'),
        hash_norm: r.normalizedHash.toString('base64'),
      };
    },

    getTransactions: async (p) => {
      const address = addressParam(p);
      const limit = intParam(p, 'limit', 10);
      if (limit < 1) throw new LocalChainError(422, "TypeError: 'limit' must be positive");
      const lt = bigParam(p, 'lt');
      const hash = p.hash === undefined || p.hash === null ? undefined : hashParam(p.hash);
      const toLt = bigParam(p, 'to_lt');
      return chain.getTransactions(address, { limit, lt, hash, toLt }).map(renderTransaction);
    },

    getMasterchainInfo: async () => ({
      '@type': 'blocks.masterchainInfo',
      last: blockId(chain.seqno),
      state_root_hash: pseudoHash('state', chain.seqno),
      init: blockId(0),
    }),

    estimateFee: async (p) => {
      const address = addressParam(p);
      const body = cellParam(p, 'body');
      const initCode = p.init_code ? cellParam(p, 'init_code') : null;
      const initData = p.init_data ? cellParam(p, 'init_data') : null;
      const ignoreChksig = p.ignore_chksig === undefined ? true : Boolean(p.ignore_chksig);
      const f = await chain.estimateFee(address, { body, initCode, initData, ignoreChksig });
      return {
        '@type': 'query.fees',
        source_fees: {
          '@type': 'fees',
          in_fwd_fee: Number(f.inFwdFee),
          storage_fee: Number(f.storageFee),
          gas_fee: Number(f.gasFee),
          fwd_fee: Number(f.fwdFee),
        },
        destination_fees: [],
      };
    },

    getConfigParam: async (p) => {
      const id = intParam(p, 'config_id');
      const cell = chain.getConfigParam(id);
      if (!cell) throw new LocalChainError(500, `LITE_SERVER_UNKNOWN: config param ${id} not found`);
      return { '@type': 'configInfo', config: { '@type': 'tvm.cell', bytes: boc64(cell) } };
    },
  };
}

// ---------------------------------------------------------------------------------------------------------
// Parameters
// ---------------------------------------------------------------------------------------------------------

function isObject(v: unknown): v is Params {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function addressParam(p: Params, missingStatus = 422): Address {
  const v = p.address;
  if (typeof v !== 'string' || v === '') {
    throw new LocalChainError(missingStatus, "TypeError: missing required argument 'address'");
  }
  try {
    return Address.parse(v);
  } catch {
    throw new LocalChainError(416, 'Incorrect address');
  }
}

/** toncenter coerces numeric strings for integer parameters ("lt" does not fit a JSON number). */
function bigParam(p: Params, name: string): bigint | undefined {
  const v = p[name];
  if (v === undefined || v === null) return undefined;
  if (typeof v === 'number' && Number.isSafeInteger(v)) return BigInt(v);
  if (typeof v === 'string' && /^-?\d+$/.test(v)) return BigInt(v);
  throw new LocalChainError(422, `TypeError: Can't parse integer in parameter ${name}`);
}

function intParam(p: Params, name: string, dflt?: number): number {
  const v = bigParam(p, name);
  if (v === undefined) {
    if (dflt === undefined) throw new LocalChainError(422, `TypeError: missing required argument '${name}'`);
    return dflt;
  }
  if (v > BigInt(Number.MAX_SAFE_INTEGER) || v < BigInt(Number.MIN_SAFE_INTEGER)) {
    throw new LocalChainError(422, `TypeError: parameter ${name} is out of range`);
  }
  return Number(v);
}

function base64Param(p: Params, name: string): Buffer {
  const v = p[name];
  if (typeof v !== 'string' || v === '') {
    throw new LocalChainError(422, `TypeError: missing required argument '${name}'`);
  }
  if (!/^[A-Za-z0-9+/_-]*={0,2}$/.test(v)) throw new LocalChainError(422, `'${name}' is not base64`);
  return Buffer.from(v, 'base64');
}

function cellParam(p: Params, name: string): Cell {
  try {
    return Cell.fromBoc(base64Param(p, name))[0]!;
  } catch (err) {
    if (err instanceof LocalChainError) throw err;
    throw new LocalChainError(422, `'${name}' is not a valid BOC`);
  }
}

function hashParam(v: unknown): Buffer {
  if (typeof v === 'string') {
    if (/^[0-9a-fA-F]{64}$/.test(v)) return Buffer.from(v, 'hex');
    const b = Buffer.from(v, 'base64');
    if (b.length === 32) return b;
  }
  throw new LocalChainError(422, 'Invalid hash');
}

function parseStack(stack: unknown): TupleItem[] {
  if (stack === undefined || stack === null) return [];
  if (!Array.isArray(stack)) throw new LocalChainError(422, "TypeError: 'stack' must be a list");
  return stack.map((entry, i) => {
    if (!Array.isArray(entry) || typeof entry[0] !== 'string') {
      throw new LocalChainError(422, `stack[${i}] must be [type, value]`);
    }
    const [type, value] = entry as [string, unknown];
    switch (type) {
      case 'num':
      case 'number':
      case 'int':
        return { type: 'int', value: parseStackInt(value, i) };
      case 'tvm.Cell':
      case 'cell':
        return { type: 'cell', cell: parseStackCell(value, i) };
      case 'tvm.Slice':
      case 'slice':
        return { type: 'slice', cell: parseStackCell(value, i) };
      case 'tvm.Builder':
      case 'builder':
        return { type: 'builder', cell: parseStackCell(value, i) };
      case 'null':
        return { type: 'null' };
      default:
        throw new LocalChainError(422, `stack[${i}]: unsupported stack entry type '${type}'`);
    }
  });
}

function parseStackInt(v: unknown, i: number): bigint {
  if (typeof v === 'number' && Number.isSafeInteger(v)) return BigInt(v);
  if (typeof v === 'string') {
    const m = /^(-?)(0x[0-9a-fA-F]+|\d+)$/.exec(v.trim());
    if (m) {
      const n = BigInt(m[2]!);
      return m[1] ? -n : n;
    }
  }
  throw new LocalChainError(422, `stack[${i}]: not an integer`);
}

function parseStackCell(v: unknown, i: number): Cell {
  const b64 = typeof v === 'string' ? v : isObject(v) && typeof v.bytes === 'string' ? v.bytes : null;
  if (b64 === null) throw new LocalChainError(422, `stack[${i}]: expected a base64 BOC`);
  try {
    return Cell.fromBoc(Buffer.from(b64, 'base64'))[0]!;
  } catch {
    throw new LocalChainError(422, `stack[${i}]: not a valid BOC`);
  }
}

// ---------------------------------------------------------------------------------------------------------
// Rendering (toncenter / tonlib shapes)
// ---------------------------------------------------------------------------------------------------------

function boc64(cell: Cell): string {
  return cell.toBoc().toString('base64');
}

function pseudoHash(kind: string, seqno: number): string {
  return createHash('sha256').update(`cocoon-local-chain:${kind}:${seqno}`).digest('base64');
}

function blockId(seqno: number) {
  return {
    '@type': 'ton.blockIdExt',
    workchain: -1,
    shard: MASTERCHAIN_SHARD,
    seqno,
    root_hash: pseudoHash('root', seqno),
    file_hash: pseudoHash('file', seqno),
  };
}

function transactionId(lt: bigint, hash?: Buffer) {
  return {
    '@type': 'internal.transactionId',
    lt: lt.toString(),
    hash: (hash ?? Buffer.alloc(32)).toString('base64'),
  };
}

function hexInt(v: bigint): string {
  return v < 0n ? `-0x${(-v).toString(16)}` : `0x${v.toString(16)}`;
}

/** Top-level stack item as toncenter renders it (slices come out as "cell", null as an empty list). */
function renderStackItem(item: TupleItem): unknown[] {
  switch (item.type) {
    case 'int':
      return ['num', hexInt(item.value)];
    case 'nan':
      return ['num', 'NaN'];
    case 'null':
      return ['list', { '@type': 'tvm.list', elements: [] }];
    case 'cell':
    case 'builder':
      return ['cell', { '@type': 'tvm.cell', bytes: boc64(item.cell) }];
    case 'slice':
      return ['cell', { '@type': 'tvm.slice', bytes: boc64(item.cell) }];
    case 'tuple':
      return ['tuple', { '@type': 'tvm.tuple', elements: item.items.map(renderStackEntry) }];
  }
}

/** Nested stack entry in tonlib's typed form. */
function renderStackEntry(item: TupleItem): unknown {
  switch (item.type) {
    case 'int':
      return {
        '@type': 'tvm.stackEntryNumber',
        number: { '@type': 'tvm.numberDecimal', number: item.value.toString() },
      };
    case 'nan':
      return { '@type': 'tvm.stackEntryUnsupported' };
    case 'null':
      return { '@type': 'tvm.stackEntryList', list: { '@type': 'tvm.list', elements: [] } };
    case 'cell':
    case 'builder':
      return { '@type': 'tvm.stackEntryCell', cell: { '@type': 'tvm.cell', bytes: boc64(item.cell) } };
    case 'slice':
      return { '@type': 'tvm.stackEntrySlice', slice: { '@type': 'tvm.slice', bytes: boc64(item.cell) } };
    case 'tuple':
      return {
        '@type': 'tvm.stackEntryTuple',
        tuple: { '@type': 'tvm.tuple', elements: item.items.map(renderStackEntry) },
      };
  }
}

function friendly(addr: Message['info']['src'] | undefined): string {
  return Address.isAddress(addr) ? addr.toString() : '';
}

function renderMessage(m: Message) {
  const info = m.info;
  const internal = info.type === 'internal';
  return {
    '@type': 'raw.message',
    source: friendly(info.src),
    destination: friendly(info.dest),
    value: internal ? info.value.coins.toString() : '0',
    extra_currencies: [],
    fwd_fee: internal ? info.forwardFee.toString() : '0',
    ihr_fee: internal ? info.ihrFee.toString() : '0',
    created_lt: info.type === 'external-in' ? '0' : info.createdLt.toString(),
    body_hash: m.body.hash().toString('base64'),
    msg_data: {
      '@type': 'msg.dataRaw',
      body: boc64(m.body),
      init_state: m.init ? boc64(beginCell().store(storeStateInit(m.init)).endCell()) : '',
    },
  };
}

function renderTransaction(tx: Transaction) {
  const d = tx.description;
  const storageFee =
    d.type === 'generic' || d.type === 'storage' ? (d.storagePhase?.storageFeesCollected ?? 0n) : 0n;
  const fee = tx.totalFees.coins;
  const address = tx.inMessage?.info.dest;
  return {
    '@type': 'raw.transaction',
    address: { '@type': 'accountAddress', account_address: friendly(address) },
    utime: tx.now,
    data: boc64(tx.raw),
    transaction_id: transactionId(tx.lt, tx.hash()),
    fee: fee.toString(),
    storage_fee: storageFee.toString(),
    other_fee: (fee - storageFee).toString(),
    ...(tx.inMessage ? { in_msg: renderMessage(tx.inMessage) } : {}),
    out_msgs: [...tx.outMessages.values()].map(renderMessage),
  };
}
