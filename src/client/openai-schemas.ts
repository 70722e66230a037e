import { z } from 'zod';
import { MAX_CHOICES, MAX_TOKENS_LIMIT } from '../protocol/inference.ts';
import { MAX_MODEL_NAME_CHARS } from '../protocol/limits.ts';

export { MAX_CHOICES };

/**
 * Zod schemas for the OpenAI request bodies the client daemon accepts, built once at module load. Every field
 * OpenAI defines that a caller commonly gets wrong is shape-checked the way OpenAI checks it (tools,
 * tool_choice, response_format, logprobs, logit_bias, content parts, tool calls, …), and forwarded as the
 * caller wrote it. Objects are loose: fields not named here (metadata, engine-specific extras, …) pass
 * through to the engine unchanged. Optional OpenAI fields accept null (clients send it for "unset").
 * Relations between fields (tool_choice needs tools, top_logprobs needs logprobs, …) are checked after the
 * shapes, in openai-request.ts.
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

/** OpenAI's limits. */
export const MAX_TOOLS = 128;
export const MAX_TOP_LOGPROBS = 20;
export const MAX_COMPLETION_LOGPROBS = 5;
export const MAX_BEST_OF = 20;
export const MAX_LOGIT_BIAS_ENTRIES = 300;
export const MAX_LOGIT_BIAS = 100;
/** Function, custom tool and response-format schema names, as OpenAI restricts them. */
export const NAME_PATTERN = /^[a-zA-Z0-9_-]{1,64}$/;

// OpenAI requires at least one token.
const tokenLimit = int().min(1).max(MAX_TOKENS_CAP).nullish();
const penalty = z.number().min(-2).max(2).nullish();
const name = z.string().regex(NAME_PATTERN);
/** A JSON Schema (tool parameters, a response format's schema): an object, not checked further. */
const jsonObject = z.record(z.string(), z.unknown());

/** Content parts by `type`: an unknown type is refused with the supported ones listed. */
const contentPart = z.discriminatedUnion('type', [
  z.looseObject({ type: z.literal('text'), text: z.string() }),
  z.looseObject({
    type: z.literal('image_url'),
    image_url: z.looseObject({ url: z.string(), detail: z.enum(['auto', 'low', 'high']).nullish() }),
  }),
  z.looseObject({
    type: z.literal('input_audio'),
    input_audio: z.looseObject({ data: z.string(), format: z.enum(['wav', 'mp3']) }),
  }),
  z.looseObject({
    type: z.literal('file'),
    file: z.looseObject({
      file_data: z.string().nullish(),
      file_id: z.string().nullish(),
      filename: z.string().nullish(),
    }),
  }),
  z.looseObject({ type: z.literal('refusal'), refusal: z.string() }),
]);
/** A refusal is the model's: only an assistant message may carry one. */
const NON_ASSISTANT_PART_TYPES = ['text', 'image_url', 'input_audio', 'file'] as const;

/** The calls an assistant message made, as the model returned them (arguments are JSON text). */
const toolCall = z.discriminatedUnion('type', [
  z.looseObject({
    id: z.string(),
    type: z.literal('function'),
    function: z.looseObject({ name: z.string(), arguments: z.string() }),
  }),
  z.looseObject({
    id: z.string(),
    type: z.literal('custom'),
    custom: z.looseObject({ name: z.string(), input: z.string() }),
  }),
]);

const message = z
  .looseObject({
    role: z.enum(MESSAGE_ROLES),
    content: z.union([z.string(), z.array(contentPart), z.null()]).optional(),
    name: z.string().optional(),
    tool_call_id: z.string().optional(),
    tool_calls: z.array(toolCall).nullish(),
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
    if (m.role !== 'assistant' && Array.isArray(m.content)) {
      const j = m.content.findIndex((part) => part.type === 'refusal');
      if (j >= 0) {
        ctx.addIssue({
          code: 'invalid_value',
          values: [...NON_ASSISTANT_PART_TYPES],
          input: 'refusal',
          path: ['content', j, 'type'],
        });
      }
    }
  });

/** Tools the model may call: functions (JSON arguments) and custom tools (free text, optionally a grammar). */
const tool = z.discriminatedUnion('type', [
  z.looseObject({
    type: z.literal('function'),
    function: z.looseObject({
      name,
      description: z.string().nullish(),
      parameters: jsonObject.nullish(),
      strict: z.boolean().nullish(),
    }),
  }),
  z.looseObject({
    type: z.literal('custom'),
    custom: z.looseObject({
      name,
      description: z.string().nullish(),
      format: z
        .discriminatedUnion('type', [
          z.looseObject({ type: z.literal('text') }),
          z.looseObject({
            type: z.literal('grammar'),
            grammar: z.looseObject({ definition: z.string(), syntax: z.enum(['lark', 'regex']) }),
          }),
        ])
        .nullish(),
    }),
  }),
]);

/** A tool named by `tool_choice`; that it is among `tools` is checked with the other relations. */
const functionRef = z.looseObject({
  type: z.literal('function'),
  function: z.looseObject({ name: z.string() }),
});
const customRef = z.looseObject({ type: z.literal('custom'), custom: z.looseObject({ name: z.string() }) });
export const TOOL_CHOICE_MODES = ['none', 'auto', 'required'] as const;
const toolChoice = z.union([
  z.enum(TOOL_CHOICE_MODES),
  z.discriminatedUnion('type', [
    functionRef,
    customRef,
    z.looseObject({
      type: z.literal('allowed_tools'),
      allowed_tools: z.looseObject({
        mode: z.enum(['auto', 'required']),
        tools: z.array(z.discriminatedUnion('type', [functionRef, customRef])),
      }),
    }),
  ]),
]);

const responseFormat = z.discriminatedUnion('type', [
  z.looseObject({ type: z.literal('text') }),
  z.looseObject({ type: z.literal('json_object') }),
  z.looseObject({
    type: z.literal('json_schema'),
    json_schema: z.looseObject({
      name,
      description: z.string().nullish(),
      schema: jsonObject.nullish(),
      strict: z.boolean().nullish(),
    }),
  }),
]);

const TOKEN_ID_KEY = /^\d{1,10}$/;
const biasValue = z.number().min(-MAX_LOGIT_BIAS).max(MAX_LOGIT_BIAS);
/**
 * `logit_bias` maps token ids (decimal integer strings) to biases in -100..100, at most 300 of them.
 * Hand-written for messages that name the key at fault.
 */
function checkLogitBias(bias: unknown, ctx: z.RefinementCtx<unknown>): void {
  if (bias === undefined || bias === null) return;
  if (typeof bias !== 'object' || Array.isArray(bias)) {
    ctx.addIssue({ code: 'invalid_type', expected: 'record', input: bias });
    return;
  }
  const entries = Object.entries(bias);
  if (entries.length > MAX_LOGIT_BIAS_ENTRIES) {
    ctx.addIssue({
      code: 'custom',
      message: `at most ${MAX_LOGIT_BIAS_ENTRIES} token biases are allowed, but got ${entries.length}`,
      input: bias,
    });
    return;
  }
  for (const [key, value] of entries) {
    if (!TOKEN_ID_KEY.test(key)) {
      ctx.addIssue({
        code: 'custom',
        message: `its keys must be token ids (non-negative integers, as strings), but got ${JSON.stringify(key.slice(0, 40))}`,
        input: bias,
      });
      return;
    }
    const r = biasValue.safeParse(value);
    if (!r.success) {
      ctx.addIssue({ ...r.error.issues[0]!, input: value, path: [key] });
      return;
    }
  }
}

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
  logit_bias: z.unknown().superRefine(checkLogitBias).optional(),
  user: z.string().nullish(),
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

const model = z.string().min(1).max(MAX_MODEL_NAME_CHARS);

export const chatSchema = z.looseObject({
  model,
  messages: z.array(message).min(1),
  ...shared,
  tools: z.array(tool).max(MAX_TOOLS).nullish(),
  tool_choice: toolChoice.nullish(),
  parallel_tool_calls: z.boolean().nullish(),
  response_format: responseFormat.nullish(),
  logprobs: z.boolean().nullish(),
  top_logprobs: int().min(0).max(MAX_TOP_LOGPROBS).nullish(),
});

export const completionSchema = z.looseObject({
  model,
  prompt: z.unknown().superRefine(checkPrompt),
  ...shared,
  echo: z.boolean().nullish(),
  best_of: int().min(0).max(MAX_BEST_OF).nullish(),
  suffix: z.string().nullish(),
  // An integer here (how many alternatives per token), unlike chat's boolean.
  logprobs: int().min(0).max(MAX_COMPLETION_LOGPROBS).nullish(),
});

export type ChatBody = z.output<typeof chatSchema>;
export type CompletionBody = z.output<typeof completionSchema>;
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
