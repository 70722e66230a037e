export { OpenAICompatibleBackend, type OpenAICompatibleOptions } from './openai-compatible-backend.ts';
export { SseDecoder } from './sse-decoder.ts';
