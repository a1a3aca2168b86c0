// The trace id of a W3C Trace Context `traceparent` header (https://www.w3.org/TR/trace-context/),
// for exemplars. Only version 00 is read; anything malformed is ignored, never an error: a
// client's bad header must not cost it its answer.

/** version 00: `00-<32 hex trace-id>-<16 hex parent-id>-<2 hex flags>`, lowercase hex only. */
const TRACEPARENT_V00 = /^00-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}$/
const ZERO_TRACE_ID = '0'.repeat(32)
const ZERO_PARENT_ID = '0'.repeat(16)

/**
 * The 32-hex trace id of a valid `traceparent`, or `undefined`. Repeated headers arrive joined
 * by `, ` (or as an array) and are ignored: the specification allows one only.
 */
export function traceIdOf(traceparent: unknown): string | undefined {
  if (typeof traceparent !== 'string') return undefined
  const match = TRACEPARENT_V00.exec(traceparent)
  if (match === null || match[1] === ZERO_TRACE_ID || match[2] === ZERO_PARENT_ID) return undefined
  return match[1]
}
