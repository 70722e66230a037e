import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * FAKE ENGINE: a real HTTP server on 127.0.0.1 that speaks vLLM's OpenAI-compatible wire format (chunk
 * shapes, `"usage": null` on chunks when usage is requested, the `choices: []` usage chunk with
 * `prompt_tokens_details`, `data: [DONE]`, vLLM's error bodies) but runs no model. It stands in for a GPU
 * engine in tests and benchmarks, and counts what happened so tests can observe cancellation.
 *
 * Chat requests with `tools` (and `tool_choice` other than 'none', and no tool result as the last message)
 * are answered with one tool call per choice, in vLLM's format: non-stream `content: null` and
 * `tool_calls: [{id: 'chatcmpl-tool-<32 hex>', type: 'function', function: {name, arguments}}]`,
 * `finish_reason: 'tool_calls'`; streamed as the role delta, one delta with the call's index, id, type and
 * name (`arguments: ''`), then one delta per token of the arguments (`{index, function: {arguments}}`).
 * `response_format` json_object / json_schema is answered with a JSON object as content. Such answers are
 * as long as their JSON (one token per JSON piece, the tool call's name one more), not `tokens`.
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
  failWithStatus?: { status: number; message: string; param?: string };
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
  /** A tool call's arguments (a JSON text) instead of the ones made from the tool's parameter schema. */
  toolArguments?: string;
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
          param: o.failWithStatus.param ?? null,
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
    const id = `${chat ? 'chatcmpl' : 'cmpl'}-${randomBytes(16).toString('hex')}`;
    const created = Math.floor(Date.now() / 1000);
    const model = o.servedModel;
    const shaped = chat ? structuredAnswer(body, o.toolArguments) : null;
    if (shaped && 'error' in shaped) {
      finished = true;
      return json(res, 400, {
        error: { message: shaped.error, type: 'BadRequestError', param: null, code: 400 },
      });
    }
    if (shaped) {
      return this.answerStructured(res, body, shaped, { id, created, model, maxTokens }, () => {
        finished = true;
        this.completed++;
      });
    }
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

  /** A tool call or JSON content per choice (see the class comment), streamed or whole. */
  private async answerStructured(
    res: ServerResponse,
    body: Record<string, unknown>,
    shaped: Exclude<Structured, { error: string }>,
    env: Envelope,
    done: () => void,
  ): Promise<void> {
    const o = this.options;
    const { id, created, model } = env;
    const tool = shaped.kind === 'tool';
    const total = shaped.pieces.length + (tool ? 1 : 0);
    const emitted = Math.min(total, env.maxTokens);
    const finish = emitted < total ? 'length' : tool ? 'tool_calls' : 'stop';
    const indexes = Array.from(
      { length: (typeof body.n === 'number' ? body.n : 1) + (o.extraChoices ?? 0) },
      (_, j) => j,
    );
    const callIds = indexes.map(() => `chatcmpl-tool-${randomBytes(16).toString('hex')}`);
    // Token k of a choice: a tool call's first is its name, then the arguments' pieces.
    const piece = (k: number) => shaped.pieces[tool ? k - 1 : k]!;
    const text = shaped.pieces.slice(0, tool ? Math.max(0, emitted - 1) : emitted).join('');
    const usage = {
      prompt_tokens: o.promptTokens,
      total_tokens: o.promptTokens + emitted * indexes.length,
      completion_tokens: emitted * indexes.length,
      prompt_tokens_details: { cached_tokens: o.cachedTokens },
      ...o.reportUsage,
    };
    if (body.stream !== true) {
      done();
      return json(res, 200, {
        id,
        object: 'chat.completion',
        created,
        model,
        choices: indexes.map((j) => ({
          index: j,
          message:
            tool && emitted > 0
              ? {
                  role: 'assistant',
                  reasoning_content: null,
                  content: null,
                  tool_calls: [
                    { id: callIds[j], type: 'function', function: { name: shaped.name, arguments: text } },
                  ],
                }
              : { role: 'assistant', reasoning_content: null, content: text, tool_calls: [] },
          logprobs: null,
          finish_reason: finish,
          stop_reason: null,
        })),
        usage,
        prompt_logprobs: null,
      });
    }
    const withUsage =
      (body.stream_options as { include_usage?: boolean } | undefined)?.include_usage === true;
    const extra = withUsage ? ',"usage":null' : '';
    const prefix = `data: {"id":"${id}","object":"chat.completion.chunk","created":${created},"model":"${model}","choices":[`;
    const send = (parts: string[]) => {
      if (o.choicesInOneChunk) res.write(`${prefix}${parts.join(',')}]${extra}}\n\n`);
      else for (const p of parts) res.write(`${prefix}${p}]${extra}}\n\n`);
    };
    const delta = (j: number, k: number): string => {
      if (!tool) return JSON.stringify({ content: piece(k) });
      if (k === 0) {
        const call = {
          index: 0,
          id: callIds[j],
          type: 'function',
          function: { name: shaped.name, arguments: '' },
        };
        return JSON.stringify({ tool_calls: [call] });
      }
      return JSON.stringify({ tool_calls: [{ index: 0, function: { arguments: piece(k) } }] });
    };
    res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8' });
    send(
      indexes.map(
        (j) =>
          `{"index":${j},"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}`,
      ),
    );
    for (let k = 0; k < emitted; k++) {
      if (o.tokenDelayMs > 0) await new Promise((r) => setTimeout(r, o.tokenDelayMs));
      else if (k % 64 === 63) await new Promise((r) => setImmediate(r));
      if (res.destroyed) return;
      if (o.failAfterTokens !== undefined && k === o.failAfterTokens) {
        res.end(
          `data: ${JSON.stringify({ error: { object: 'error', message: 'CUDA out of memory', type: 'InternalServerError', param: null, code: 500 } })}\n\ndata: [DONE]\n\n`,
        );
        done();
        return;
      }
      send(indexes.map((j) => `{"index":${j},"delta":${delta(j, k)},"logprobs":null,"finish_reason":null}`));
    }
    send(
      indexes.map(
        (j) =>
          `{"index":${j},"delta":{"content":""},"logprobs":null,"finish_reason":"${finish}","stop_reason":null}`,
      ),
    );
    if (withUsage) {
      res.write(
        `data: {"id":"${id}","object":"chat.completion.chunk","created":${created},"model":"${model}","choices":[],"usage":${JSON.stringify(usage)}}\n\n`,
      );
    }
    done();
    res.end('data: [DONE]\n\n');
  }
}

/** What a structured answer is: a tool call, or JSON as content; its text in tokens (JSON pieces). */
type Structured =
  | { kind: 'tool'; name: string; pieces: string[] }
  | { kind: 'json'; pieces: string[] }
  | { error: string };

interface Envelope {
  id: string;
  created: number;
  model: string;
  maxTokens: number;
}

/** Python's `json.dumps` spacing (`", "`, `": "`), as a model writes JSON. */
const pyJson = (v: unknown): string =>
  JSON.stringify(v, null, 1)
    .replace(/\n\s*/g, ' ')
    .replace(/\[ /g, '[')
    .replace(/ \]/g, ']')
    .replace(/\{ /g, '{')
    .replace(/ \}/g, '}');

/** A JSON text as a model emits it: a word (with its leading space), or one or two other characters. */
export const jsonPieces = (text: string): string[] =>
  text.match(/ ?[A-Za-z0-9_]+| ?[^ A-Za-z0-9_]{1,2}| /g) ?? [];

/** An object that fits a JSON schema's properties: strings 'w0', 'w1', …; numbers their position. */
function sampleObject(schema: unknown): Record<string, unknown> {
  const props = (schema as { properties?: Record<string, { type?: unknown }> } | null)?.properties;
  const out: Record<string, unknown> = {};
  Object.entries(props ?? {}).forEach(([k, p], i) => {
    const t = Array.isArray(p?.type) ? p.type[0] : p?.type;
    out[k] =
      t === 'number' || t === 'integer'
        ? i
        : t === 'boolean'
          ? true
          : t === 'array'
            ? []
            : t === 'object'
              ? {}
              : t === 'null'
                ? null
                : `w${i}`;
  });
  return out;
}

/** The structured answer a chat body asks for, or null for plain text. */
function structuredAnswer(body: Record<string, unknown>, toolArguments?: string): Structured | null {
  const tools = Array.isArray(body.tools)
    ? (body.tools as { function?: { name?: string; parameters?: unknown } }[])
    : [];
  const choice = body.tool_choice;
  const messages = Array.isArray(body.messages) ? body.messages : [];
  const answeredTool = (messages.at(-1) as { role?: unknown } | undefined)?.role === 'tool';
  if (tools.length > 0 && choice !== 'none' && !answeredTool) {
    const forced = (choice as { function?: { name?: unknown } } | null)?.function?.name;
    const tool = forced === undefined ? tools[0] : tools.find((t) => t.function?.name === forced);
    if (!tool?.function?.name) return { error: `Tool '${String(forced)}' has not been passed in \`tools\`.` };
    const args = toolArguments ?? pyJson(sampleObject(tool.function.parameters));
    return { kind: 'tool', name: tool.function.name, pieces: jsonPieces(args) };
  }
  const rf = body.response_format as { type?: unknown; json_schema?: { schema?: unknown } } | undefined;
  if (rf?.type === 'json_object') return { kind: 'json', pieces: jsonPieces(pyJson({ answer: 'w0 w1 w2' })) };
  if (rf?.type === 'json_schema')
    return { kind: 'json', pieces: jsonPieces(pyJson(sampleObject(rf.json_schema?.schema))) };
  return null;
}

function json(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}
