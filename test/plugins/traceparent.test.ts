// The W3C `traceparent` header as the metrics plugin reads it for exemplars: version 00 with a
// non-zero trace id and parent id in lowercase hex; anything else is no trace. The exemplars
// themselves, checked by the official OpenMetrics parser, are test/tools/exemplars.test.ts.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { traceIdOf } from '../../packages/plugin/src/plugin/traceparent'

// The example of the W3C Trace Context specification.
const TRACE_ID = '4bf92f3577b34da6a3ce929d0e0e4736'
const TRACEPARENT = `00-${TRACE_ID}-00f067aa0ba902b7-01`

test('traceIdOf reads version 00 and ignores anything malformed', () => {
  assert.equal(traceIdOf(TRACEPARENT), TRACE_ID)
  assert.equal(traceIdOf(`00-${TRACE_ID}-00f067aa0ba902b7-00`), TRACE_ID, 'unsampled is a trace')
  for (const bad of [
    undefined,
    '',
    `00-${'0'.repeat(32)}-00f067aa0ba902b7-01`, // all-zero trace id
    `00-${TRACE_ID}-${'0'.repeat(16)}-01`, // all-zero parent id
    `00-${TRACE_ID.toUpperCase()}-00f067aa0ba902b7-01`, // hex must be lowercase
    `01-${TRACE_ID}-00f067aa0ba902b7-01`, // another version
    `ff-${TRACE_ID}-00f067aa0ba902b7-01`,
    `00-${TRACE_ID.slice(1)}-00f067aa0ba902b7-01`, // short trace id
    `00-${TRACE_ID}-00f067aa0ba902b-01`, // short parent id
    `00-${TRACE_ID}-00f067aa0ba902b7-1`, // short flags
    `00-${TRACE_ID}-00f067aa0ba902b7-01-extra`,
    `00-${TRACE_ID}-00f067aa0ba902b7-0g`,
    ` ${TRACEPARENT}`,
    `${TRACEPARENT}, ${TRACEPARENT}`, // repeated headers, as Node joins them
    [TRACEPARENT, TRACEPARENT],
    `00_${TRACE_ID}_00f067aa0ba902b7_01`,
    'x"}\n# EOF',
  ]) {
    assert.equal(traceIdOf(bad), undefined, JSON.stringify(bad))
  }
})
