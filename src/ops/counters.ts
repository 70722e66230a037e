/** Request figures every OpenAI-facing hop keeps (client, proxy), as shown in `/jsonstats`. */
export function requestCounters() {
  return {
    inFlight: 0,
    total: 0,
    succeeded: 0,
    failed: 0,
    cancelled: 0,
    rejected: 0,
    promptTokens: 0,
    completionTokens: 0,
  };
}
