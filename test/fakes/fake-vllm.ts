import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * FAKE ENGINE: a real HTTP server on 127.0.0.1 that speaks vLLM's OpenAI-compatible wire format (chunk
 * shapes, `"usage": null` on chunks when usage is requested, the `choices: []` usage chunk with
 * `prompt_tokens_details`, `data: [DONE]`, vLLM's error bodies) but runs no model. It stands in for a GPU
 * engine in tests and benchmarks, and counts what happened so tests can observe cancellation.
 */
export interface FakeVllmOptions {
  /** Completion tokens per reply (one content chunk each). */
  tokens: number;
  tokenDelayMs: number;
  promptTokens: number;
  cachedTokens: number;
  /** Emit vLLM's mid-stream error event after this many tokens. */
  failAfterTokens?: number;
  /** Answer every request with this status and vLLM's error body. */
  failWithStatus?: { status: number; message: string };
  servedModel: string;
  /** A lying engine: these counts replace the true ones in every reported usage. */
  reportUsage?: { prompt_tokens?: number; completion_tokens?: number };
  /** An overrunning engine: generates `tokens` per choice whatever `max_tokens` says. */
  ignoreMaxTokens?: boolean;
  /** An overrunning engine: this many choices more than `n` (indexes n, n+1, …). */
  extraChoices?: number;
  /** Puts every choice of a step in one chunk (vLLM sends one chunk per choice). */
  choicesInOneChunk?: boolean;
  /** Streams this many output-less chunks (`"content":""`) before the first token. */
  emptyChunks?: number;
}

export class FakeVllmEngine {
  readonly options: FakeVllmOptions;
  requests = 0;
  completed = 0;
  aborted = 0;
  inFlight = 0;
  lastBody: Record<string, unknown> | null = null;
  /** Every request body, in order. */
  readonly bodies: Record<string, unknown>[] = [];
  private server: Server | null = null;
  private readonly words: string[];

  constructor(options: Partial<FakeVllmOptions> = {}) {
    this.options = {
      tokens: 8,
      tokenDelayMs: 0,
      promptTokens: 12,
      cachedTokens: 0,
      servedModel: 'fake-model',
      ...options,
    };
    this.words = Array.from({ length: 64 }, (_, i) => ` w${i}`);
  }

  async start(port = 0): Promise<string> {
    this.server = createServer((req, res) => void this.handle(req, res));
    this.server.keepAliveTimeout = 65_000;
    await new Promise<void>((r) => this.server!.listen(port, '127.0.0.1', r));
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/v1`;
  }

  async close(): Promise<void> {
    if (!this.server) return;
    this.server.closeAllConnections();
    await new Promise<void>((r) => this.server!.close(() => r()));
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = req.url ?? '';
    if (req.method === 'GET' && url === '/v1/models') {
      return json(res, 200, {
        object: 'list',
        data: [{ id: this.options.servedModel, object: 'model', owned_by: 'vllm' }],
      });
    }
    const chat = url === '/v1/chat/completions';
    if (req.method !== 'POST' || (!chat && url !== '/v1/completions')) {
      return json(res, 404, {
        error: { message: 'Not Found', type: 'NotFoundError', param: null, code: 404 },
      });
    }
    const parts: Buffer[] = [];
    for await (const c of req) parts.push(c as Buffer);
    let body: Record<string, unknown>;
    try {
      body = JSON.parse(Buffer.concat(parts).toString('utf8'));
    } catch {
      return json(res, 400, {
        error: { message: 'Invalid JSON', type: 'BadRequestError', param: null, code: 400 },
      });
    }
    this.requests++;
    this.lastBody = body;
    this.bodies.push(body);
    const o = this.options;
    if (o.failWithStatus) {
      return json(res, o.failWithStatus.status, {
        error: {
          message: o.failWithStatus.message,
          type: 'BadRequestError',
          param: null,
          code: o.failWithStatus.status,
        },
      });
    }
    if (body.model !== o.servedModel) {
      return json(res, 404, {
        error: {
          message: `The model \`${String(body.model)}\` does not exist.`,
          type: 'NotFoundError',
          param: 'model',
          code: 404,
        },
      });
    }
    this.inFlight++;
    let finished = false;
    res.on('close', () => {
      this.inFlight--;
      if (!finished) this.aborted++;
    });
    const maxTokens =
      typeof body.max_tokens === 'number' && !o.ignoreMaxTokens ? body.max_tokens : Number.POSITIVE_INFINITY;
    const n = Math.min(o.tokens, maxTokens);
    const finish = n < o.tokens ? 'length' : 'stop';
    const choices = (typeof body.n === 'number' ? body.n : 1) + (o.extraChoices ?? 0);
    const usage = {
      prompt_tokens: o.promptTokens,
      total_tokens: o.promptTokens + n * choices,
      completion_tokens: n * choices,
      prompt_tokens_details: { cached_tokens: o.cachedTokens },
      ...o.reportUsage,
    };
    const id = `${chat ? 'chatcmpl' : 'cmpl'}-${(this.requests + 0x100000).toString(16)}`;
    const created = Math.floor(Date.now() / 1000);
    const model = o.servedModel;
    // Choice 0 says ' w0 w1 …', choice j > 0 ' j.w0 j.w1 …'.
    const word = (j: number, i: number) =>
      `${j === 0 ? ' ' : ` ${j}.`}${this.words[i % this.words.length]!.trim()}`;
    const indexes = Array.from({ length: choices }, (_, j) => j);
    if (body.stream !== true) {
      const text = (j: number) =>
        Array.from({ length: n }, (_, i) => word(j, i))
          .join('')
          .trimStart();
      finished = true;
      this.completed++;
      return json(res, 200, {
        id,
        object: chat ? 'chat.completion' : 'text_completion',
        created,
        model,
        choices: indexes.map((j) =>
          chat
            ? {
                index: j,
                message: { role: 'assistant', content: text(j), tool_calls: [] },
                logprobs: null,
                finish_reason: finish,
              }
            : { index: j, text: text(j), logprobs: null, finish_reason: finish },
        ),
        usage,
      });
    }
    const withUsage =
      (body.stream_options as { include_usage?: boolean } | undefined)?.include_usage === true;
    const extra = withUsage ? ',"usage":null' : '';
    const object = chat ? 'chat.completion.chunk' : 'text_completion';
    const prefix = `data: {"id":"${id}","object":"${object}","created":${created},"model":"${model}","choices":[`;
    // One event per choice (as vLLM streams n > 1), or all of a step's choices in one event.
    const send = (parts: string[]) => {
      if (o.choicesInOneChunk) res.write(`${prefix}${parts.join(',')}]${extra}}\n\n`);
      else for (const p of parts) res.write(`${prefix}${p}]${extra}}\n\n`);
    };
    res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8' });
    if (chat) {
      send(
        indexes.map(
          (j) =>
            `{"index":${j},"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}`,
        ),
      );
    }
    for (let e = 0; e < (o.emptyChunks ?? 0); e++) {
      if (res.destroyed) return;
      send(
        indexes.map((j) =>
          chat
            ? `{"index":${j},"delta":{"content":""},"logprobs":null,"finish_reason":null}`
            : `{"index":${j},"text":"","logprobs":null,"finish_reason":null}`,
        ),
      );
      await new Promise((r) => setImmediate(r));
    }
    for (let i = 0; i < n; i++) {
      if (o.tokenDelayMs > 0) await new Promise((r) => setTimeout(r, o.tokenDelayMs));
      else if (i % 64 === 63) await new Promise((r) => setImmediate(r));
      if (res.destroyed) return;
      if (o.failAfterTokens !== undefined && i === o.failAfterTokens) {
        res.end(
          `data: ${JSON.stringify({ error: { object: 'error', message: 'CUDA out of memory', type: 'InternalServerError', param: null, code: 500 } })}\n\ndata: [DONE]\n\n`,
        );
        finished = true;
        return;
      }
      send(
        indexes.map((j) => {
          const w = JSON.stringify(word(j, i));
          return chat
            ? `{"index":${j},"delta":{"content":${w}},"logprobs":null,"finish_reason":null}`
            : `{"index":${j},"text":${w},"logprobs":null,"finish_reason":null,"stop_reason":null}`;
        }),
      );
    }
    send(
      indexes.map((j) =>
        chat
          ? `{"index":${j},"delta":{"content":""},"logprobs":null,"finish_reason":"${finish}","stop_reason":null}`
          : `{"index":${j},"text":"","logprobs":null,"finish_reason":"${finish}","stop_reason":null}`,
      ),
    );
    if (withUsage) {
      res.write(
        `data: {"id":"${id}","object":"${object}","created":${created},"model":"${model}","choices":[],"usage":${JSON.stringify(usage)}}\n\n`,
      );
    }
    finished = true;
    this.completed++;
    res.end('data: [DONE]\n\n');
  }
}

function json(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}
