import type { Session } from '../../src/net/session.ts';
import type { Stream } from '../../src/net/stream.ts';
import type { InferenceRequest } from '../../src/protocol/inference.ts';
import { controlSchema, parseMessage } from '../../src/protocol/messages.ts';

/**
 * Opens an inference call as a client that turned end-to-end encryption off would: the call's metadata
 * in OPEN, then the body in the clear to every worker the proxy offers (the offer is not checked: a
 * raw client takes what it is given). Returns the call's stream.
 */
export function openPlainCall(session: Session, requestId: string, request: InferenceRequest): Stream {
  const { body, ...meta } = request;
  const bytes = Buffer.from(JSON.stringify(body));
  const stream = session.openStream({
    method: 'inference',
    requestId,
    request: { ...meta, bodyBytes: bytes.length, sealed: false },
  });
  const onControl = (payload: Buffer) => {
    if (stream.isClosed) {
      session.off('control', onControl);
      return;
    }
    const msg = parseMessage(controlSchema, payload, 'control');
    if (msg.type === 'request.offer' && msg.requestId === requestId) void stream.write(bytes);
  };
  session.on('control', onControl);
  return stream;
}
