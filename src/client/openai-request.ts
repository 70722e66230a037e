import type { z } from 'zod';
import type { TrustTier } from '../attest/types.ts';
import { BadRequestError } from '../errors.ts';
import { type InferenceKind, type InferenceRequest, promptCount } from '../protocol/inference.ts';
import {
  type BaseBody,
  type ChatBody,
  COCOON_EXTRAS,
  type CompletionBody,
  chatSchema,
  completionSchema,
  EXPECTED_INTEGER,
  MAX_CHOICES,
  TOOL_CHOICE_MODES,
} from './openai-schemas.ts';

export { MAX_CHOICES, MAX_STOP_SEQUENCES, MAX_TOKENS_CAP } from './openai-schemas.ts';

/**
 * Validation of OpenAI request bodies, once, at the edge. Every mistake by the caller is a 400 in OpenAI's
 * error shape naming the field (`param`). Fields we interpret are checked strictly; fields OpenAI defines
 * but we do not interpret (tools, tool_choice, response_format, logprobs, logit_bias, user, content parts,
 * tool calls, …) are shape-checked as OpenAI checks them, relations between them included (tool_choice only
 * with tools, top_logprobs only with logprobs, best_of ≥ n, …), and forwarded as the caller wrote them.
 * Fields OpenAI does not define (metadata, engine-specific extras, …) pass through unchanged, so any OpenAI
 * client works. A worker whose model cannot honour a valid field (tools on a model without tool calling)
 * answers 400 itself. Cocoon's own extras are read and removed here.
 */

export interface RequestDefaults {
  /** Max tokens when the caller names none (the reservation basis). */
  maxTokens: number;
  timeoutMs: number;
  maxCoefficient: number;
  /** Lowest worker trust tier accepted when the request names none. */
  minTier?: TrustTier;
  /** Upper bound on a caller's `timeout`. */
  maxTimeoutMs?: number;
}

/** Node timers overflow (and fire at once) above 2^31−1 ms, so no time budget may exceed that. */
const MAX_TIMER_MS = 2 ** 31 - 1;

export function parseInferenceRequest(
  kind: InferenceKind,
  raw: unknown,
  defaults: RequestDefaults,
): InferenceRequest {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    throw new BadRequestError(
      `The request body must be a JSON object, but got ${describeValue(raw)}.`,
      null,
      'invalid_body',
    );
  }
  const input = raw as Record<string, unknown>;
  let data: BaseBody;
  if (kind === 'chat') {
    const chat = parseWith(chatSchema, input);
    checkChatRelations(chat);
    data = chat;
  } else {
    const completion = parseWith(completionSchema, input);
    checkCompletionRelations(completion);
    data = completion;
  }

  const stream = data.stream === true;
  if (data.stream_options != null && !stream) {
    throw new BadRequestError(
      "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
      'stream_options',
      'invalid_value',
    );
  }

  // The forwarded body is the caller's (a shallow copy: `raw` stays untouched), minus Cocoon's extras.
  const body: Record<string, unknown> = { ...input };
  for (const k of COCOON_EXTRAS) delete body[k];
  // `max_completion_tokens` wins; engines that predate it (older vLLM, llama.cpp, Ollama) know only
  // `max_tokens`, so the bound always travels as `max_tokens`.
  const maxTokens = data.max_completion_tokens ?? data.max_tokens ?? defaults.maxTokens;
  delete body.max_completion_tokens;
  body.max_tokens = maxTokens;
  // A batch of prompts gets n choices each: the call is bounded (and paid) for all of them.
  const prompts = promptCount(kind, input);
  const n = (data.n ?? 1) * prompts;
  if (n > MAX_CHOICES) {
    throw new BadRequestError(
      `A batch of ${prompts} prompts with n=${data.n ?? 1} asks for ${n} choices; at most ${MAX_CHOICES} are allowed per request.`,
      'prompt',
      'invalid_value',
    );
  }

  let timeoutMs = data.timeout != null ? Math.round(data.timeout * 1000) : defaults.timeoutMs;
  if (defaults.maxTimeoutMs !== undefined) timeoutMs = Math.min(timeoutMs, defaults.maxTimeoutMs);
  timeoutMs = Math.min(Math.max(1, timeoutMs), MAX_TIMER_MS);

  return {
    kind,
    model: data.model,
    body,
    stream,
    includeUsage: stream && data.stream_options?.include_usage === true,
    maxTokens,
    n,
    timeoutMs,
    maxCoefficient: data.max_coefficient ?? defaults.maxCoefficient,
    minTier: data.min_trust_tier ?? defaults.minTier ?? 'dev',
  };
}

function parseWith<S extends z.ZodType>(schema: S, input: Record<string, unknown>): z.output<S> {
  const r = schema.safeParse(input);
  if (!r.success) throw issueToError(r.error.issues[0]!, input);
  return r.data;
}

/** OpenAI's "'x' is only allowed when …" refusal. */
function onlyWhen(field: string, condition: string): BadRequestError {
  return new BadRequestError(
    `Invalid value for '${field}': '${field}' is only allowed when ${condition}.`,
    field,
    'invalid_value',
  );
}

type ToolRef =
  | { type: 'function'; function: { name: string } }
  | { type: 'custom'; custom: { name: string } };

/** Rules between chat fields, as OpenAI has them, once each field has its shape. */
function checkChatRelations(data: ChatBody): void {
  const tools = data.tools ?? [];
  const choice = data.tool_choice;
  if (tools.length === 0) {
    if (choice != null && choice !== 'none') throw onlyWhen('tool_choice', "'tools' are specified");
    if (data.parallel_tool_calls != null) throw onlyWhen('parallel_tool_calls', "'tools' are specified");
  }
  if (choice != null && typeof choice === 'object') {
    const named: [ToolRef, string][] =
      choice.type === 'allowed_tools'
        ? choice.allowed_tools.tools.map((t, i) => [t, `tool_choice.allowed_tools.tools[${i}]`])
        : [[choice, 'tool_choice']];
    for (const [ref, at] of named) {
      const wanted = toolName(ref);
      if (!tools.some((t) => t.type === ref.type && toolName(t) === wanted)) {
        const param = `${at}.${ref.type}.name`;
        const what = ref.type === 'function' ? 'function' : 'custom tool';
        throw new BadRequestError(
          `Invalid value for '${param}': no ${what} named ${short(wanted)} is among 'tools'.`,
          param,
          'invalid_value',
        );
      }
    }
  }
  if (data.top_logprobs != null && data.logprobs !== true) {
    throw onlyWhen('top_logprobs', "'logprobs' is true");
  }
}

function toolName(t: ToolRef): string {
  return t.type === 'function' ? t.function.name : t.custom.name;
}

/** Rules between completion fields, as OpenAI has them. */
function checkCompletionRelations(data: CompletionBody): void {
  const bestOf = data.best_of;
  if (bestOf == null) return;
  if (data.n != null && bestOf < data.n) {
    throw new BadRequestError(
      `Invalid value for 'best_of': best_of must be greater than or equal to n, but got best_of=${bestOf} and n=${data.n}.`,
      'best_of',
      'invalid_value',
    );
  }
  if (bestOf > 1 && data.stream === true) {
    throw new BadRequestError(
      `Invalid value for 'best_of': results cannot be streamed when best_of is greater than 1, but got best_of=${bestOf} with 'stream' enabled.`,
      'best_of',
      'invalid_value',
    );
  }
}

type Issue = z.core.$ZodIssue;
type Path = readonly PropertyKey[];

/** One zod issue → one OpenAI-style 400 naming the field and what was expected (first issue wins). */
export function issueToError(first: Issue, raw: Record<string, unknown>): BadRequestError {
  const { issue, path } = resolveUnion(first, raw);
  const param = formatPath(path);
  const value = valueAt(raw, path);
  // Optional fields accept undefined, so any issue on an absent value means a required one is missing.
  if (value === undefined) {
    return new BadRequestError(
      `Missing required parameter: '${param}'.`,
      param,
      'missing_required_parameter',
    );
  }
  const generic = param.replace(/\[\d+\]/g, '[]');
  switch (issue.code) {
    case 'invalid_type': {
      const expected = issue.message === EXPECTED_INTEGER ? 'an integer' : withArticle(issue.expected);
      return new BadRequestError(
        `Invalid type for '${param}': expected ${expected}, but got ${describeValue(value)} instead.`,
        param,
        'invalid_type',
      );
    }
    case 'too_small':
    case 'too_big': {
      if (generic === 'n' && issue.code === 'too_big') {
        return new BadRequestError(
          `Invalid 'n': Cocoon supports at most ${MAX_CHOICES} choices per request (n ≤ ${MAX_CHOICES}), got ${JSON.stringify(value)}.`,
          param,
          'invalid_value',
        );
      }
      return new BadRequestError(rangeMessage(issue, param, generic, value), param, 'invalid_value');
    }
    case 'invalid_value':
      return new BadRequestError(
        `Invalid value for '${param}': ${short(value)}. Supported values are: ${issue.values.map((v) => `'${String(v)}'`).join(', ')}.`,
        param,
        'invalid_value',
      );
    case 'invalid_format':
      if (issue.format === 'regex' && issue.pattern !== undefined) {
        const pattern = issue.pattern.replace(/^\/(.*)\/[a-z]*$/, '$1');
        return new BadRequestError(
          `Invalid '${param}': string does not match pattern. Expected a string that matches the pattern '${pattern}', but got ${short(value)}.`,
          param,
          'invalid_value',
        );
      }
      return new BadRequestError(`Invalid '${param}': ${issue.message}.`, param, 'invalid_value');
    case 'invalid_union': {
      // A discriminated union whose discriminator (`type`) names no option.
      if (issue.discriminator !== undefined && 'options' in issue && issue.options) {
        return new BadRequestError(
          `Invalid value for '${param}': ${short(value)}. Supported values are: ${issue.options.map((v) => `'${String(v)}'`).join(', ')}.`,
          param,
          'invalid_value',
        );
      }
      const expected = UNION_EXPECTATIONS[generic];
      return new BadRequestError(
        `Invalid type for '${param}': expected ${expected ?? 'another type'}, but got ${describeValue(value)} instead.`,
        param,
        'invalid_type',
      );
    }
    case 'custom':
      return new BadRequestError(`Invalid value for '${param}': ${issue.message}.`, param, 'invalid_value');
    default:
      return new BadRequestError(`Invalid '${param}': ${issue.message}.`, param, 'invalid_value');
  }
}

const UNION_EXPECTATIONS: Record<string, string> = {
  stop: `a string or an array of at most 4 non-empty strings`,
  prompt: 'a string, an array of strings, an array of token ids or an array of token-id arrays',
  'messages[].content': 'a string, an array of content parts, or null',
  tool_choice: `one of ${TOOL_CHOICE_MODES.map((m) => `'${m}'`).join(', ')} or an object naming a tool`,
};

/**
 * When every union option rejects the value's type at the top, zod reports `invalid_union`. When exactly one
 * kind of failure got further (the value had the right type but a bad element), report that one instead:
 * "'messages[0].content[1].text' is missing" beats "content has the wrong type". An enum's refusal of a
 * value of another type (an object given where 'auto' | { type, … } is expected) is a type mismatch too.
 */
function resolveUnion(issue: Issue, raw: Record<string, unknown>): { issue: Issue; path: Path } {
  let path: Path = issue.path;
  while (issue.code === 'invalid_union') {
    const value = valueAt(raw, path);
    const deeper: Issue[] = [];
    for (const errs of issue.errors) {
      const e = errs[0];
      if (e && !(e.path.length === 0 && wrongKind(e, value))) deeper.push(e);
    }
    const next = deeper[0];
    if (!next || deeper.some((e) => e.code !== next.code || formatPath(e.path) !== formatPath(next.path)))
      break;
    path = [...path, ...next.path];
    issue = next;
  }
  return { issue, path };
}

/** Whether an issue at a union option's top says only that the value is of a kind the option never takes. */
function wrongKind(e: Issue, value: unknown): boolean {
  if (e.code === 'invalid_type') return true;
  return e.code === 'invalid_value' && !e.values.some((v) => typeof v === typeof value && v !== null);
}

function rangeMessage(
  issue: Extract<Issue, { code: 'too_small' | 'too_big' }>,
  param: string,
  generic: string,
  value: unknown,
): string {
  const small = issue.code === 'too_small';
  const limit = Number(small ? issue.minimum : issue.maximum);
  if (issue.origin === 'array' || issue.origin === 'string') {
    if (small && limit === 1) {
      return generic === 'messages'
        ? "'messages' must contain at least one message."
        : `Invalid '${param}': must not be empty.`;
    }
    const length = (value as string | unknown[]).length;
    const unit = issue.origin === 'array' ? 'items' : 'characters';
    return `Invalid '${param}': must have ${small ? 'at least' : 'at most'} ${limit} ${unit}, but got ${length}.`;
  }
  const bound = small
    ? issue.inclusive
      ? `at least ${limit}`
      : `greater than ${limit}`
    : issue.inclusive
      ? `at most ${limit}`
      : `less than ${limit}`;
  return `Invalid '${param}': must be ${bound}, but got ${short(value)}.`;
}

/** `messages[0].content` from ['messages', 0, 'content']. */
function formatPath(path: Path): string {
  let out = '';
  for (const p of path) out += typeof p === 'number' ? `[${p}]` : out ? `.${String(p)}` : String(p);
  return out;
}

function valueAt(raw: Record<string, unknown>, path: Path): unknown {
  let v: unknown = raw;
  for (const p of path) v = v && typeof v === 'object' ? (v as Record<PropertyKey, unknown>)[p] : undefined;
  return v;
}

function describeValue(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (Number.isInteger(v)) return 'an integer';
  // JSON.parse reads 1e400 as Infinity: a number, but none any field can hold.
  if (typeof v === 'number' && !Number.isFinite(v)) return 'a number too large to represent';
  const t = typeof v;
  return t === 'object' ? 'an object' : `a ${t}`;
}

function withArticle(expected: string): string {
  switch (expected) {
    case 'int':
      return 'an integer';
    case 'record':
    case 'object':
      return 'an object';
    case 'null':
    case 'undefined':
      return expected;
    default:
      return /^[aeiou]/.test(expected) ? `an ${expected}` : `a ${expected}`;
  }
}

/** A value quoted in a message, cut short so a huge string cannot bloat the error. */
function short(v: unknown): string {
  const s = JSON.stringify(v) ?? String(v);
  return s.length > 80 ? `${s.slice(0, 77)}...` : s;
}
