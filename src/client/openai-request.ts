import { z } from 'zod';
import { BadRequestError } from '../errors.ts';
import type { InferenceKind, InferenceRequest } from '../protocol/inference.ts';

/**
 * Validation of OpenAI request bodies, once, at the edge. Fields we interpret are checked strictly; fields
 * we do not (tools, response_format, logprobs, user, metadata, …) pass through to the engine unchanged,
 * so any OpenAI client works. Cocoon's own extras are read and removed here.
 */

export interface RequestDefaults {
  /** Max tokens when the caller names none (the reservation basis). */
  maxTokens: number;
  timeoutMs: number;
  maxCoefficient: number;
  maxTimeoutMs?: number;
}

const MAX_TOKENS_CAP = 1_000_000;
export const MAX_CHOICES = 8;

const tokenLimit = z.number().int().min(0).max(MAX_TOKENS_CAP);
const textPart = z.looseObject({ type: z.string() });
const message = z
  .looseObject({
    role: z.enum(['system', 'developer', 'user', 'assistant', 'tool', 'function']),
    content: z.union([z.string(), z.array(textPart), z.null()]).optional(),
    name: z.string().optional(),
    tool_call_id: z.string().optional(),
  })
  .superRefine((m, ctx) => {
    const hasCalls = m.tool_calls !== undefined || m.function_call !== undefined;
    if ((m.content === undefined || m.content === null) && !(m.role === 'assistant' && hasCalls)) {
      ctx.addIssue({ code: 'custom', path: ['content'], message: `a '${m.role}' message needs 'content'` });
    }
    if (m.role === 'tool' && typeof m.tool_call_id !== 'string') {
      ctx.addIssue({
        code: 'custom',
        path: ['tool_call_id'],
        message: "a 'tool' message needs 'tool_call_id'",
      });
    }
  });

const common = {
  model: z.string().min(1),
  max_tokens: tokenLimit.nullish(),
  temperature: z.number().min(0).max(2).nullish(),
  top_p: z.number().min(0).max(1).nullish(),
  n: z.number().int().min(1).max(MAX_CHOICES).nullish(),
  seed: z.number().int().min(Number.MIN_SAFE_INTEGER).max(Number.MAX_SAFE_INTEGER).nullish(),
  stop: z.union([z.string(), z.array(z.string().min(1)).max(4), z.null()]).optional(),
  presence_penalty: z.number().min(-2).max(2).nullish(),
  frequency_penalty: z.number().min(-2).max(2).nullish(),
  logit_bias: z.record(z.string(), z.number()).nullish(),
  stream: z.boolean().nullish(),
  stream_options: z
    .looseObject({ include_usage: z.boolean().optional(), include_obfuscation: z.boolean().optional() })
    .nullish(),
  // Cocoon extras (removed before forwarding)
  max_coefficient: z.number().int().min(0).optional(),
  timeout: z.number().positive().optional(),
  request_guid: z.string().optional(),
  enable_debug: z.boolean().optional(),
};

const chatSchema = z.looseObject({
  ...common,
  messages: z.array(message).min(1, "'messages' must contain at least one message."),
  max_completion_tokens: tokenLimit.nullish(),
});

const completionSchema = z.looseObject({
  ...common,
  prompt: z.union([
    z.string(),
    z.array(z.string()).min(1),
    z.array(z.number().int().min(0)).min(1),
    z.array(z.array(z.number().int().min(0)).min(1)).min(1),
  ]),
});

const EXTRAS = ['max_coefficient', 'timeout', 'request_guid', 'enable_debug'] as const;

export function parseInferenceRequest(
  kind: InferenceKind,
  raw: unknown,
  defaults: RequestDefaults,
): InferenceRequest {
  if (!raw || typeof raw !== 'object' || Array.isArray(raw)) {
    throw new BadRequestError('The request body must be a JSON object.', null, 'invalid_body');
  }
  const r = (kind === 'chat' ? chatSchema : completionSchema).safeParse(raw);
  if (!r.success) throw issueToError(r.error.issues[0]!, raw as Record<string, unknown>);
  const data = r.data as Record<string, unknown> & z.infer<typeof chatSchema>;
  const stream = data.stream === true;
  if (data.stream_options != null && !stream) {
    throw new BadRequestError(
      "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
      'stream_options',
    );
  }
  const body: Record<string, unknown> = { ...(raw as Record<string, unknown>) };
  for (const k of EXTRAS) delete body[k];
  // `max_completion_tokens` wins; engines that predate it (older vLLM, llama.cpp, Ollama) know only
  // `max_tokens`, so the bound always travels as `max_tokens`.
  const maxTokens = data.max_completion_tokens ?? data.max_tokens ?? defaults.maxTokens;
  delete body.max_completion_tokens;
  body.max_tokens = maxTokens;
  let timeoutMs = data.timeout !== undefined ? Math.round(data.timeout * 1000) : defaults.timeoutMs;
  if (defaults.maxTimeoutMs !== undefined) timeoutMs = Math.min(timeoutMs, defaults.maxTimeoutMs);
  return {
    kind,
    model: data.model,
    body,
    stream,
    includeUsage: stream && data.stream_options?.include_usage === true,
    maxTokens,
    timeoutMs: Math.max(1, timeoutMs),
    maxCoefficient: data.max_coefficient ?? defaults.maxCoefficient,
  };
}

function formatPath(path: PropertyKey[]): string {
  let out = '';
  for (const p of path) out += typeof p === 'number' ? `[${p}]` : out ? `.${String(p)}` : String(p);
  return out;
}

function describeValue(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (Number.isInteger(v)) return 'an integer';
  const t = typeof v;
  return t === 'object' ? 'an object' : `a ${t}`;
}

function valueAt(raw: Record<string, unknown>, path: PropertyKey[]): unknown {
  let v: unknown = raw;
  for (const p of path) v = v && typeof v === 'object' ? (v as Record<PropertyKey, unknown>)[p] : undefined;
  return v;
}

/** One zod issue → one OpenAI-style message naming the field (first issue wins). */
function issueToError(issue: z.core.$ZodIssue, raw: Record<string, unknown>): BadRequestError {
  const param = formatPath(issue.path);
  const value = valueAt(raw, issue.path);
  if (value === undefined && (issue.code === 'invalid_type' || issue.code === 'invalid_union')) {
    return new BadRequestError(
      `Missing required parameter: '${param}'.`,
      param,
      'missing_required_parameter',
    );
  }
  switch (issue.code) {
    case 'invalid_type':
      return new BadRequestError(
        `Invalid type for '${param}': expected ${article(issue.expected)}, but got ${describeValue(value)} instead.`,
        param,
        'invalid_type',
      );
    case 'too_small':
    case 'too_big': {
      if (param === 'n' && issue.code === 'too_big') {
        return new BadRequestError(
          `Invalid 'n': Cocoon supports at most ${MAX_CHOICES} choices per request.`,
          param,
          'invalid_value',
        );
      }
      const bound = issue.code === 'too_small' ? `at least ${issue.minimum}` : `at most ${issue.maximum}`;
      const what =
        issue.origin === 'array'
          ? `must have ${bound} items`
          : issue.origin === 'string'
            ? `must have ${bound} characters`
            : `must be ${bound}`;
      const custom = issue.message && !issue.message.startsWith('Too') ? issue.message : null;
      return new BadRequestError(
        custom ?? `Invalid '${param}': ${what}, got ${JSON.stringify(value)}.`,
        param,
        'invalid_value',
      );
    }
    case 'invalid_value':
      return new BadRequestError(
        `Invalid value for '${param}': ${JSON.stringify(value)}. Supported values are: ${issue.values.map((v) => `'${String(v)}'`).join(', ')}.`,
        param,
        'invalid_value',
      );
    case 'invalid_union': {
      const expected = UNION_EXPECTATIONS[param.replace(/\[\d+\]/g, '[]')];
      return new BadRequestError(
        `Invalid type or value for '${param}'${expected ? `: expected ${expected}` : ''}, but got ${describeValue(value)}.`,
        param,
        'invalid_type',
      );
    }
    default:
      return new BadRequestError(`Invalid '${param}': ${issue.message}.`, param, 'invalid_value');
  }
}

const UNION_EXPECTATIONS: Record<string, string> = {
  stop: 'a string or an array of at most 4 non-empty strings',
  prompt: 'a string, an array of strings, or an array of token ids',
  'messages[].content': 'a string, an array of content parts, or null',
};

function article(t: string): string {
  if (t === 'int') return 'an integer';
  return /^[aeiou]/.test(t) ? `an ${t}` : `a ${t}`;
}
