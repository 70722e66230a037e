import { BadRequestError } from '../../../errors.ts';
import { countTokens, decodeTokens } from './tokenizer.ts';

/** A prompt as the model sees it, with its token count. */
export interface Prompt {
  text: string;
  tokens: number;
}

/**
 * Text of a message's content: a string, or the text (and an assistant's refusal) parts of a content array.
 * Other parts (images, audio, files) never get here: `refuseUnsupported` answers them with a 400.
 */
function contentText(content: unknown): string {
  if (typeof content === 'string') return content;
  if (!Array.isArray(content)) return '';
  let text = '';
  for (const part of content) {
    if (!part || typeof part !== 'object') continue;
    const p = part as { type?: unknown; text?: unknown; refusal?: unknown };
    if (p.type === 'text' && typeof p.text === 'string') text += p.text;
    else if (p.type === 'refusal' && typeof p.refusal === 'string') text += p.refusal;
  }
  return text;
}

/**
 * ChatML rendering: `<|im_start|>role\ncontent<|im_end|>\n` per message, then `<|im_start|>assistant\n`.
 * The two markers count as one control token each (as in a real chat template); everything the caller
 * wrote is counted as plain text, so markers typed into a message cannot pose as control tokens.
 */
export function chatPrompt(body: Record<string, unknown>): Prompt {
  const messages = body.messages;
  if (!Array.isArray(messages) || messages.length === 0) {
    throw new BadRequestError('messages must be a non-empty array.', 'messages');
  }
  let text = '';
  let tokens = 0;
  for (const m of messages) {
    if (!m || typeof m !== 'object') throw new BadRequestError('Each message must be an object.', 'messages');
    const msg = m as { role?: unknown; content?: unknown; tool_calls?: unknown };
    let content = contentText(msg.content);
    if (Array.isArray(msg.tool_calls)) content += JSON.stringify(msg.tool_calls);
    const block = `${typeof msg.role === 'string' ? msg.role : ''}\n${content}`;
    text += `<|im_start|>${block}<|im_end|>\n`;
    tokens += 2 + countTokens(block) + 1; // markers + block + '\n'
  }
  text += '<|im_start|>assistant\n';
  tokens += 1 + countTokens('assistant\n');
  return { text, tokens };
}

const isTokenArray = (v: unknown): v is number[] =>
  Array.isArray(v) && v.length > 0 && v.every((x) => Number.isInteger(x) && x >= 0);

function tokenPrompt(ids: number[]): Prompt {
  try {
    return { text: decodeTokens(ids), tokens: ids.length };
  } catch {
    throw new BadRequestError('prompt contains token ids outside the vocabulary.', 'prompt');
  }
}

/**
 * Legacy completions prompts: a string, an array of strings, a token array or an array of token arrays.
 * Like OpenAI, an array yields one prompt each (and n choices per prompt).
 */
export function completionPrompts(body: Record<string, unknown>): Prompt[] {
  const p = body.prompt ?? '';
  if (typeof p === 'string') return [{ text: p, tokens: countTokens(p) }];
  if (isTokenArray(p)) return [tokenPrompt(p)];
  if (Array.isArray(p) && p.length > 0) {
    return p.map((item) => {
      if (typeof item === 'string') return { text: item, tokens: countTokens(item) };
      if (isTokenArray(item)) return tokenPrompt(item);
      throw new BadRequestError('prompt must be a string, token array, or an array of them.', 'prompt');
    });
  }
  throw new BadRequestError('prompt must be a string, token array, or an array of them.', 'prompt');
}
