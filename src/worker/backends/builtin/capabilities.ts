import { BadRequestError } from '../../../errors.ts';
import type { InferenceRequest } from '../../../protocol/inference.ts';

/**
 * What the built-in model cannot do, refused before any work: it has no tools, no structured output (JSON
 * mode, JSON schema, vLLM's guided decoding), no log-probabilities, no `suffix` (insertion), no `best_of`
 * and reads only text (no images, audio or files; it writes only text). A field it cannot honour is never
 * ignored: the caller gets a 400 naming it (`param`), with OpenAI's codes: `unsupported_parameter` for a
 * field the model does not take at all, `unsupported_value` for a value of a field it takes otherwise.
 *
 * Everything else in the body is read by the model (`params.ts`, `prompt.ts`) or does not change what it
 * writes (`user`, `metadata`, `store`, penalties, `logit_bias`, …). `echo` is honoured (completions).
 */

type Body = Record<string, unknown>;

const set = (v: unknown): boolean => v !== undefined && v !== null;

function unsupported(param: string, what: string): BadRequestError {
  return new BadRequestError(
    `Unsupported parameter: '${param}': ${what} The built-in model writes plain text only.`,
    param,
    'unsupported_parameter',
  );
}

function unsupportedValue(param: string, what: string): BadRequestError {
  return new BadRequestError(
    `Unsupported value: '${param}': ${what} The built-in model writes plain text only.`,
    param,
    'unsupported_value',
  );
}

/** vLLM's structured-output extensions: they shape the output the way `response_format` does. */
const GUIDED = ['guided_json', 'guided_regex', 'guided_choice', 'guided_grammar', 'structured_outputs'];

/** Throws the 400 for the first field of `req.body` the built-in model cannot honour. */
export function refuseUnsupported(req: InferenceRequest): void {
  const b = req.body;
  checkTools(b);
  const rf = b.response_format;
  if (set(rf)) {
    const type = typeof rf === 'object' ? (rf as { type?: unknown }).type : rf;
    if (type !== 'text') {
      throw unsupportedValue(
        'response_format',
        `response_format of type ${JSON.stringify(type)} is not supported with this model (only 'text' is).`,
      );
    }
  }
  for (const k of GUIDED) if (set(b[k])) throw unsupported(k, 'this model has no guided decoding.');
  if (set(b.best_of) && b.best_of !== 1) {
    throw unsupportedValue(
      'best_of',
      'this model generates no candidates to choose from (best_of must be 1).',
    );
  }
  if (req.kind === 'chat') {
    if (set(b.logprobs) && b.logprobs !== false) {
      throw unsupportedValue('logprobs', 'this model does not return log probabilities.');
    }
    if (set(b.top_logprobs) && b.top_logprobs !== 0) {
      throw unsupported('top_logprobs', 'this model does not return log probabilities.');
    }
    const modalities = b.modalities;
    if (set(modalities) && (!Array.isArray(modalities) || modalities.some((m) => m !== 'text'))) {
      throw unsupportedValue('modalities', 'this model has no output modality but text.');
    }
    if (set(b.audio)) throw unsupported('audio', 'this model does not produce audio.');
    checkContent(b.messages);
  } else {
    if (set(b.logprobs) && b.logprobs !== false) {
      throw unsupported('logprobs', 'this model does not return log probabilities.');
    }
    if (set(b.suffix) && b.suffix !== '') {
      throw unsupported('suffix', 'this model does not insert text before a suffix.');
    }
  }
}

function checkTools(b: Body): void {
  const nonEmpty = (v: unknown) => set(v) && !(Array.isArray(v) && v.length === 0);
  if (nonEmpty(b.tools)) throw unsupported('tools', 'this model does not call tools.');
  if (set(b.tool_choice) && b.tool_choice !== 'none') {
    throw unsupportedValue('tool_choice', "this model does not call tools (only 'none' is supported).");
  }
  if (set(b.parallel_tool_calls)) {
    throw unsupported('parallel_tool_calls', 'this model does not call tools.');
  }
  if (nonEmpty(b.functions)) throw unsupported('functions', 'this model does not call functions.');
  if (set(b.function_call) && b.function_call !== 'none') {
    throw unsupportedValue('function_call', "this model does not call functions (only 'none' is supported).");
  }
}

/**
 * Content parts: text is read; an assistant's earlier refusal is part of the conversation and read as its
 * text. Anything else (image_url, input_audio, file, …) is refused, naming the part's type.
 */
function checkContent(messages: unknown): void {
  if (!Array.isArray(messages)) return; // the prompt's own check says what is wrong
  messages.forEach((m, i) => {
    const content = (m as { content?: unknown } | null)?.content;
    if (!Array.isArray(content)) return;
    const role = (m as { role?: unknown }).role;
    content.forEach((part, j) => {
      const type = (part as { type?: unknown } | null)?.type;
      if (type === 'text' || (type === 'refusal' && role === 'assistant')) return;
      throw new BadRequestError(
        `Unsupported value: 'messages[${i}].content[${j}].type': content parts of type ${JSON.stringify(type)} ` +
          'are not supported with this model. The built-in model reads text only.',
        `messages[${i}].content[${j}].type`,
        'unsupported_value',
      );
    });
  });
}
