import { z } from 'zod';
import { MAX_CHOICES, MAX_TOKENS_LIMIT } from '../protocol/inference.ts';

export { MAX_CHOICES };

/**
 * Zod schemas for the OpenAI request bodies the client daemon accepts, built once at module load. Objects are
 * loose: fields we do not interpret (tools, tool_choice, response_format, logprobs, user, metadata, …) pass
 * through to the engine unchanged. Optional OpenAI fields accept null (clients send it for "unset").
 */

/** One definition for every hop (the proxy's schema refuses more). */
export const MAX_TOKENS_CAP = MAX_TOKENS_LIMIT;
export const MAX_STOP_SEQUENCES = 4;
export const MESSAGE_ROLES = ['system', 'developer', 'user', 'assistant', 'tool', 'function'] as const;

/**
 * Zod reports a string given for `z.int()` as "expected number"; this message marks such issues so the error
 * converter can say "expected an integer" instead.
 */
export const EXPECTED_INTEGER = 'expected an integer';
const int = () => z.int({ error: (iss) => (iss.code === 'invalid_type' ? EXPECTED_INTEGER : undefined) });

const tokenLimit = int().min(0).max(MAX_TOKENS_CAP).nullish();
const penalty = z.number().min(-2).max(2).nullish();

/** `{type:'text', text}` is checked; other typed parts (image_url, input_audio, file, …) pass through. */
const contentPart = z.looseObject({ type: z.string() }).superRefine((part, ctx) => {
  if (part.type === 'text' && typeof part.text !== 'string') {
    ctx.addIssue({ code: 'invalid_type', expected: 'string', input: part.text, path: ['text'] });
  }
});

const message = z
  .looseObject({
    role: z.enum(MESSAGE_ROLES),
    content: z.union([z.string(), z.array(contentPart), z.null()]).optional(),
    name: z.string().optional(),
    tool_call_id: z.string().optional(),
  })
  .superRefine((m, ctx) => {
    if (m.content === undefined || m.content === null) {
      const callsTools = m.role === 'assistant' && (m.tool_calls != null || m.function_call != null);
      if (!callsTools) {
        ctx.addIssue(
          m.content === undefined
            ? { code: 'invalid_type', expected: 'string', input: undefined, path: ['content'] }
            : {
                code: 'custom',
                path: ['content'],
                message: "null is only allowed in an assistant message with 'tool_calls' or 'function_call'",
              },
        );
      }
    }
    if (m.role === 'tool' && m.tool_call_id === undefined) {
      ctx.addIssue({ code: 'invalid_type', expected: 'string', input: undefined, path: ['tool_call_id'] });
    }
  });

const isTokenId = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) >= 0;

/** What a prompt element is, for messages: numbers as themselves, anything else by kind. */
function kindOf(v: unknown): string {
  if (typeof v === 'number') return Number.isInteger(v) ? `the integer ${v}` : `the number ${v}`;
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  const t = typeof v;
  return t === 'object' ? 'an object' : `a ${t}`;
}

/**
 * `prompt` is a non-empty string, or a non-empty array of strings, of token ids, or of non-empty token-id
 * arrays (the first element decides which). Hand-written: zod walks arrays at ~40 ns an element, which a
 * 30k-token prompt would turn into a millisecond per request.
 */
function checkPrompt(prompt: unknown, ctx: z.RefinementCtx<unknown>): void {
  if (typeof prompt === 'string') {
    if (prompt.length === 0) ctx.addIssue({ code: 'too_small', origin: 'string', minimum: 1, input: prompt });
  } else if (!Array.isArray(prompt)) {
    // Reported like a failed union: the converter names every accepted shape.
    ctx.addIssue({ code: 'invalid_union', errors: [], input: prompt });
  } else if (prompt.length === 0) {
    ctx.addIssue({ code: 'too_small', origin: 'array', minimum: 1, input: prompt });
  } else {
    const problem = promptArrayProblem(prompt);
    if (problem) ctx.addIssue({ code: 'custom', ...problem });
  }
}

function promptArrayProblem(prompt: unknown[]): { path: number[]; message: string } | null {
  const first = prompt[0];
  const notTokenId = (v: unknown) => `expected a token id (a non-negative integer), but got ${kindOf(v)}`;
  if (typeof first === 'string') {
    for (let i = 1; i < prompt.length; i++) {
      if (typeof prompt[i] !== 'string') {
        return { path: [i], message: `expected a string like 'prompt[0]', but got ${kindOf(prompt[i])}` };
      }
    }
  } else if (typeof first === 'number') {
    for (let i = 0; i < prompt.length; i++) {
      if (!isTokenId(prompt[i])) return { path: [i], message: notTokenId(prompt[i]) };
    }
  } else if (Array.isArray(first)) {
    for (let i = 0; i < prompt.length; i++) {
      const ids: unknown = prompt[i];
      if (!Array.isArray(ids)) {
        return {
          path: [i],
          message: `expected an array of token ids like 'prompt[0]', but got ${kindOf(ids)}`,
        };
      }
      if (ids.length === 0) return { path: [i], message: 'a token-id array must not be empty' };
      for (let j = 0; j < ids.length; j++) {
        if (!isTokenId(ids[j])) return { path: [i, j], message: notTokenId(ids[j]) };
      }
    }
  } else {
    return {
      path: [0],
      message: `expected a string, a token id or an array of token ids, but got ${kindOf(first)}`,
    };
  }
  return null;
}

/** Fields both endpoints share (after `model` and the prompt, so those are checked first). */
const shared = {
  max_tokens: tokenLimit,
  max_completion_tokens: tokenLimit,
  temperature: z.number().min(0).max(2).nullish(),
  top_p: z.number().min(0).max(1).nullish(),
  n: int().min(1).max(MAX_CHOICES).nullish(),
  seed: int().nullish(),
  stop: z.union([z.string(), z.array(z.string().min(1)).max(MAX_STOP_SEQUENCES)]).nullish(),
  presence_penalty: penalty,
  frequency_penalty: penalty,
  logit_bias: z.record(z.string(), z.number()).nullish(),
  stream: z.boolean().nullish(),
  stream_options: z
    .looseObject({ include_usage: z.boolean().nullish(), include_obfuscation: z.boolean().nullish() })
    .nullish(),
  // Cocoon extras: read by the client daemon and removed before the body is forwarded.
  max_coefficient: int().min(0).nullish(),
  min_trust_tier: z.enum(['dev', 'tee-cpu', 'tee-gpu']).nullish(),
  timeout: z.number().positive().nullish(),
  request_guid: z.string().nullish(),
  enable_debug: z.boolean().nullish(),
};

const model = z.string().min(1);

export const chatSchema = z.looseObject({ model, messages: z.array(message).min(1), ...shared });

export const completionSchema = z.looseObject({
  model,
  prompt: z.unknown().superRefine(checkPrompt),
  ...shared,
});

/** What both schemas produce, apart from the prompt. */
export type BaseBody = z.output<z.ZodObject<typeof shared & { model: typeof model }, z.core.$loose>>;

/** Cocoon's own request fields, never forwarded to an engine. */
export const COCOON_EXTRAS = [
  'max_coefficient',
  'min_trust_tier',
  'timeout',
  'request_guid',
  'enable_debug',
] as const;
