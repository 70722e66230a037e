import type { InferenceKind, TokenUsage } from './inference.ts';

/**
 * OpenAI's wire objects (chat.completion, text_completion and their stream chunks), built in one place:
 * the built-in model answers in them, the worker's engine guard closes a stream in them, and the client
 * ends a stream with them. Field order follows OpenAI's, so our replies read like theirs byte for byte.
 */

type Json = Record<string, unknown>;

export type FinishReason = 'stop' | 'length' | 'tool_calls' | 'content_filter';

/** What every chunk of one stream shares. */
export interface ChunkEnvelope {
  id: string;
  kind: InferenceKind;
  /** Unix seconds. */
  created: number;
  model: string;
  /** Stream chunks carry `usage: null` when the usage chunk will follow (`stream_options.include_usage`). */
  includeUsage: boolean;
  systemFingerprint?: string;
}

/** OpenAI's `usage` object for our counts; `original` (an engine's) keeps its other fields. */
export function openAIUsage(u: TokenUsage, original?: unknown): Json {
  const o: Json =
    original && typeof original === 'object' && !Array.isArray(original) ? { ...(original as Json) } : {};
  o.prompt_tokens = u.promptTokens;
  o.completion_tokens = u.completionTokens;
  o.total_tokens = u.promptTokens + u.completionTokens;
  const pd = o.prompt_tokens_details;
  if ((pd && typeof pd === 'object') || u.cachedTokens > 0) {
    o.prompt_tokens_details = { ...(pd && typeof pd === 'object' ? pd : {}), cached_tokens: u.cachedTokens };
  }
  const cd = o.completion_tokens_details;
  if ((cd && typeof cd === 'object') || u.reasoningTokens > 0) {
    o.completion_tokens_details = {
      ...(cd && typeof cd === 'object' ? cd : {}),
      reasoning_tokens: u.reasoningTokens,
    };
  }
  if ('reasoning_tokens' in o) o.reasoning_tokens = u.reasoningTokens;
  return o;
}

/** The chunks of one stream, serialized. */
export class ChunkShapes {
  private readonly object: string;

  constructor(private readonly e: ChunkEnvelope) {
    this.object = e.kind === 'chat' ? 'chat.completion.chunk' : 'text_completion';
  }

  /** A chunk object with these choices (and `usage: null` when the usage chunk will follow). */
  chunkObject(choices: unknown[]): Json {
    const c: Json = { id: this.e.id, object: this.object, created: this.e.created, model: this.e.model };
    if (this.e.systemFingerprint !== undefined) c.system_fingerprint = this.e.systemFingerprint;
    c.choices = choices;
    if (this.e.includeUsage) c.usage = null;
    return c;
  }

  chunk(choices: unknown[]): string {
    return JSON.stringify(this.chunkObject(choices));
  }

  chatRole(index: number): string {
    return this.chunk([
      { index, delta: { role: 'assistant', content: '' }, logprobs: null, finish_reason: null },
    ]);
  }

  chatDelta(index: number, content: string): string {
    return this.chunk([{ index, delta: { content }, logprobs: null, finish_reason: null }]);
  }

  text(index: number, text: string, reason: FinishReason | null = null): string {
    return this.chunk([{ text, index, logprobs: null, finish_reason: reason }]);
  }

  /** The choice that ends choice `index` without output, in this stream's kind. */
  finishChoice(index: number, reason: FinishReason): Json {
    return this.e.kind === 'chat'
      ? { index, delta: {}, logprobs: null, finish_reason: reason }
      : { text: '', index, logprobs: null, finish_reason: reason };
  }

  finish(index: number, reason: FinishReason): string {
    return this.chunk([this.finishChoice(index, reason)]);
  }

  /** The last chunk: no choices, the usage (and anything else the caller adds, e.g. `cocoon`). */
  usage(usage: Json, extra: Json = {}): string {
    const { id, created, model } = this.e;
    return JSON.stringify({ id, object: this.object, created, model, choices: [], usage, ...extra });
  }
}

/** One finished choice of a whole (non-stream) reply. */
export interface FinishedChoice {
  index: number;
  text: string;
  finishReason: FinishReason | null;
}

/** A whole `chat.completion` or `text_completion` (for completions, `text` includes any echoed prompt). */
export function completionResponse(
  e: Omit<ChunkEnvelope, 'includeUsage'>,
  choices: FinishedChoice[],
  usage: Json,
): string {
  const chat = e.kind === 'chat';
  return JSON.stringify({
    id: e.id,
    object: chat ? 'chat.completion' : 'text_completion',
    created: e.created,
    model: e.model,
    ...(e.systemFingerprint !== undefined ? { system_fingerprint: e.systemFingerprint } : {}),
    choices: choices.map((c) =>
      chat
        ? {
            index: c.index,
            message: { role: 'assistant', content: c.text, refusal: null },
            logprobs: null,
            finish_reason: c.finishReason,
          }
        : { text: c.text, index: c.index, logprobs: null, finish_reason: c.finishReason },
    ),
    usage,
  });
}
