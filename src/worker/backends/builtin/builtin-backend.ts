import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { CancelledError, CocoonError, GatewayTimeoutError, ModelNotFoundError } from '../../../errors.ts';
import type { InferenceRequest, TokenUsage } from '../../../protocol/inference.ts';
import { ChunkShapes, completionResponse, openAIUsage } from '../../../protocol/openai-shapes.ts';
import type { InferenceBackend, ReplyPart } from '../../backend.ts';
import { refuseUnsupported } from './capabilities.ts';
import { ChoiceRun } from './choice.ts';
import { TextGenerator } from './generator.ts';
import { readSamplingParams } from './params.ts';
import { chatPrompt, completionPrompts, type Prompt } from './prompt.ts';

export interface BuiltinBackendOptions {
  /** Model names served (default ['cocoon-tiny']); they all run the same built-in model. */
  models?: string[];
  /** Delay per generated token, so streams pace like a real engine. 0: no timers at all. */
  tokenDelayMs?: number;
  /** ms clock for `created` timestamps (tests pin it). */
  clock?: () => number;
}

/**
 * The built-in model: deterministic text from a seeded bigram walk, counted with the real cl100k_base BPE
 * tokenizer, in OpenAI's exact response and chunk shapes. Honours the call's bounds (`maxTokens`, `n`,
 * `stream`, `includeUsage`, whatever the body says) and the body's stop, seed, temperature, top_p and
 * (completions) echo. A batch of prompts is served only when the call's `n` counts all its choices
 * (prompts × n per prompt, as OpenAI numbers them). What it cannot do (tools, JSON mode, log-probabilities,
 * suffix, best_of, images and other non-text parts) is refused with a 400 naming the field
 * (`capabilities.ts`), never ignored. The text is deterministic; each response's `id` is random.
 */
export class BuiltinBackend implements InferenceBackend {
  readonly kind = 'builtin';
  private readonly names: string[];
  private readonly delayMs: number;
  private readonly clock: () => number;

  constructor(opts: BuiltinBackendOptions = {}) {
    this.names = [...(opts.models ?? ['cocoon-tiny'])];
    this.delayMs = Math.max(0, opts.tokenDelayMs ?? 0);
    this.clock = opts.clock ?? Date.now;
  }

  models(): string[] {
    return [...this.names];
  }

  async *infer(req: InferenceRequest, signal: AbortSignal): AsyncGenerator<ReplyPart, void, void> {
    if (!this.names.includes(req.model)) throw new ModelNotFoundError(req.model);
    if (signal.aborted) throw abortError(signal);
    const chat = req.kind === 'chat';
    refuseUnsupported(req);
    const params = readSamplingParams(req);
    const prompts: Prompt[] = chat ? [chatPrompt(req.body)] : completionPrompts(req.body);
    // prompts × params.n = req.n (readSamplingParams refuses a batch the call does not count).
    const runs = prompts.flatMap((prompt, p) =>
      Array.from({ length: params.n }, (_, j) => {
        const generator = new TextGenerator({
          model: req.model,
          prompt: prompt.text,
          seed: params.seed,
          choice: j,
          temperature: params.temperature,
          topP: params.topP,
          bareStart: chat || prompt.text.length === 0 || /\s$/.test(prompt.text),
          continuePrompt: !chat,
        });
        return new ChoiceRun(p * params.n + j, generator, params.maxTokens, params.stop);
      }),
    );
    const promptOf = (run: ChoiceRun) => prompts[Math.floor(run.index / params.n)]!.text;
    const promptTokens = prompts.reduce((n, p) => n + p.tokens, 0);
    // Every response has an id of its own (as OpenAI's and vLLM's do), even when its text is the same.
    const id = `${chat ? 'chatcmpl' : 'cmpl'}-${randomBytes(16).toString('hex')}`;
    const created = Math.floor(this.clock() / 1000);
    const envelope = { id, kind: req.kind, created, model: req.model };
    const shapes = new ChunkShapes({ ...envelope, includeUsage: req.includeUsage });

    if (req.stream) {
      for (const run of runs) {
        const opening = chat
          ? shapes.chatRole(run.index)
          : params.echo
            ? shapes.text(run.index, promptOf(run))
            : null;
        if (opening) yield { type: 'chunk', json: opening };
      }
    }
    // One step = one piece for every unfinished choice, as a batched engine would decode them.
    let active = runs;
    while (active.length > 0) {
      const out: string[] = [];
      let stepTokens = 0;
      for (const run of active) {
        const before = run.tokens;
        const delta = run.step();
        stepTokens = Math.max(stepTokens, run.tokens - before);
        if (!req.stream) continue;
        if (delta) out.push(chat ? shapes.chatDelta(run.index, delta) : shapes.text(run.index, delta));
        if (run.finishReason) {
          out.push(shapes.finish(run.index, run.finishReason));
        }
      }
      if (this.delayMs > 0 && stepTokens > 0) {
        try {
          await sleep(this.delayMs * stepTokens, undefined, { signal });
        } catch {
          throw abortError(signal);
        }
      }
      for (const chunk of out) {
        if (signal.aborted) throw abortError(signal);
        yield { type: 'chunk', json: chunk };
      }
      if (signal.aborted) throw abortError(signal);
      active = active.filter((r) => !r.finishReason);
    }

    const completionTokens = runs.reduce((n, r) => n + r.tokens, 0);
    const usage: TokenUsage = { promptTokens, cachedTokens: 0, completionTokens, reasoningTokens: 0 };
    // OpenAI always names both detail counts, even when they are zero.
    const wire = openAIUsage(usage, {
      prompt_tokens_details: { cached_tokens: 0 },
      completion_tokens_details: { reasoning_tokens: 0 },
    });
    let json: string | null = null;
    if (!req.stream) {
      const echoOf = (r: ChoiceRun) => (!chat && params.echo ? promptOf(r) : '');
      const choices = runs.map((r) => ({
        index: r.index,
        text: echoOf(r) + r.text,
        finishReason: r.finishReason,
      }));
      json = completionResponse(envelope, choices, wire);
    } else if (req.includeUsage) json = shapes.usage(wire);
    yield { type: 'final', usage, json };
  }
}

/** Why generation stopped: the budget ran out (504) or whoever asked went away (499). */
function abortError(signal: AbortSignal): CocoonError {
  const reason: unknown = signal.reason;
  if (reason instanceof CocoonError) return reason;
  if (reason instanceof Error && reason.name === 'TimeoutError') {
    return new GatewayTimeoutError('The built-in model ran out of time.');
  }
  return new CancelledError();
}
