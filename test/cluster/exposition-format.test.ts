// Format negotiation from the Accept header: what each Prometheus sends gets the format it
// prefers among those /metrics writes, under a Content-Type naming exactly what is sent.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { PROMETHEUS_ACCEPT, type PrometheusAcceptName } from '../../harness/prometheus-accept'
import {
  CONTENT_TYPES,
  type ExpositionFormat,
  negotiate,
} from '../../packages/plugin/src/exposition/exposition'

const TEXT_004 = 'text/plain; version=0.0.4; charset=utf-8'
const TEXT_100 = 'text/plain; version=1.0.0; charset=utf-8'
const OPENMETRICS = 'application/openmetrics-text; version=1.0.0; charset=utf-8'
const PROTOBUF =
  'application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited'
/** The range Prometheus 3 sends for PrometheusProto. */
const PROTO_RANGE =
  'application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited'

/** The format a Content-Type names. */
function formatOf(contentType: string): ExpositionFormat {
  if (contentType.startsWith('application/vnd.google.protobuf')) return 'protobuf'
  return contentType.startsWith('application/openmetrics-text') ? 'openmetrics' : 'prometheus'
}

test("the text format 0.0.4 and OpenMetrics 1.0.0 are rendered under prom-client's own types", () => {
  assert.equal(CONTENT_TYPES.prometheus, TEXT_004)
  assert.equal(CONTENT_TYPES.openmetrics, OPENMETRICS)
})

test('each Accept header Prometheus sends gets its first choice that /metrics writes', () => {
  const expected: Record<PrometheusAcceptName, string> = {
    'prometheus-2.42': OPENMETRICS,
    'prometheus-3.5': `${OPENMETRICS}; escaping=allow-utf-8`,
    'prometheus-3.5 protobuf first': PROTOBUF,
    'prometheus-3.5 protobuf, text 0.0.4': PROTOBUF,
    'prometheus-3.5 text 1.0.0': `${TEXT_100}; escaping=allow-utf-8`,
    'prometheus-3.5 text 0.0.4': TEXT_004,
    // OpenMetrics 0.0.1 is the same format; the answer names the version prom-client writes.
    'prometheus-3.5 OpenMetrics 0.0.1': OPENMETRICS,
    'prometheus-3.5 escaping underscores': `${OPENMETRICS}; escaping=underscores`,
  }
  for (const [name, accept] of Object.entries(PROMETHEUS_ACCEPT)) {
    const contentType = expected[name as PrometheusAcceptName]
    assert.deepEqual(negotiate(accept), { format: formatOf(contentType), contentType }, name)
  }
})

/** [Accept header, Content-Type of the answer]; the format follows from the type. */
type Row = [string | undefined, string]

function check(rows: Row[]) {
  for (const [accept, contentType] of rows) {
    const got = negotiate(accept)
    assert.ok(got !== undefined, `${accept} is answered`)
    assert.equal(got.contentType, contentType, String(accept))
    assert.equal(got.format, formatOf(contentType), String(accept))
  }
}

test('no header, wildcards, bare text/plain and unknown types get the text format 0.0.4', () => {
  check([
    [undefined, TEXT_004],
    ['', TEXT_004],
    ['*/*', TEXT_004],
    ['text/*', TEXT_004],
    ['text/plain', TEXT_004],
    ['text/plain; version=0.0.4', TEXT_004],
    ['application/json', TEXT_004],
    // OpenMetrics only when named: application/* is not a request for it.
    ['application/*', TEXT_004],
    // Versions /metrics does not write are not matched by the versioned range.
    ['text/plain;version=2.0.0', TEXT_004],
    ['application/openmetrics-text;version=2.0.0', TEXT_004],
  ])
})

test('protobuf by name with its proto and delimited encoding, never by a wildcard', () => {
  check([
    [PROTO_RANGE, PROTOBUF],
    [
      'Application/Vnd.Google.Protobuf ; Proto="io.prometheus.client.MetricFamily" ; Encoding=delimited',
      PROTOBUF,
    ],
    // Another message, another encoding (client_golang's text and compact-text), or none named.
    [
      'application/vnd.google.protobuf;proto=io.prometheus.client.Metric;encoding=delimited',
      TEXT_004,
    ],
    [
      'application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=text',
      TEXT_004,
    ],
    ['application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily', TEXT_004],
    ['application/vnd.google.protobuf;encoding=delimited', TEXT_004],
    ['application/vnd.google.protobuf', TEXT_004],
    ['application/*', TEXT_004],
    // Refused, or ranked by q-value like any other.
    [`${PROTO_RANGE};q=0, application/openmetrics-text;q=0.1`, OPENMETRICS],
    [`${PROTO_RANGE};q=0.4, application/openmetrics-text;q=0.5`, OPENMETRICS],
    [`${PROTO_RANGE};q=0.5, application/openmetrics-text;q=0.4`, PROTOBUF],
    [`${PROTO_RANGE};q=0.2, */*`, TEXT_004],
    // A tie goes to protobuf, first of the offers.
    [`application/openmetrics-text, ${PROTO_RANGE}`, PROTOBUF],
  ])
})

test('OpenMetrics by name, any case and spacing, version 1.0.0, 0.0.1 or none', () => {
  check([
    ['application/openmetrics-text', OPENMETRICS],
    ['Application/OpenMetrics-Text ; Version=1.0.0', OPENMETRICS],
    ['  application/openmetrics-text;version=0.0.1 ,  text/html', OPENMETRICS],
  ])
})

test('the text format 1.0.0 when preferred, 0.0.4 on a tie', () => {
  check([
    ['text/plain;version=1.0.0', TEXT_100],
    ['text/plain;version=1.0.0;q=0.4,text/plain;version=0.0.4;q=0.3', TEXT_100],
    ['text/plain;version=1.0.0;q=0.3,text/plain;version=0.0.4;q=0.4', TEXT_004],
    ['text/plain;version=1.0.0,text/plain;version=0.0.4', TEXT_004],
    // The versioned range is more specific than the bare one.
    ['text/plain;version=1.0.0;q=0,text/plain', TEXT_004],
    ['text/plain;version=0.0.4;q=0,text/plain', TEXT_100],
  ])
})

test('escaping is echoed only on a 1.0.0 format, and only a scheme Prometheus defines', () => {
  check([
    ['text/plain;version=1.0.0;escaping=dots', `${TEXT_100}; escaping=dots`],
    ['text/plain;version=1.0.0;escaping=values', `${TEXT_100}; escaping=values`],
    ['text/plain;version=1.0.0;escaping="underscores"', `${TEXT_100}; escaping=underscores`],
    ['text/plain;version=1.0.0;escaping=rot13', TEXT_100],
    ['text/plain;version=0.0.4;escaping=underscores', TEXT_004],
    [
      'application/openmetrics-text;version=1.0.0;escaping=values',
      `${OPENMETRICS}; escaping=values`,
    ],
  ])
})

test('q-values decide, with the most specific range counting', () => {
  check([
    // */* at 1 outranks OpenMetrics at 0.5, and nothing more specific names the text format.
    ['application/openmetrics-text;q=0.5, */*', TEXT_004],
    // text/plain at 0.2 is more specific than */* at 1, so it is the text format's q-value.
    ['*/*, text/plain;q=0.2, application/openmetrics-text;q=0.5', OPENMETRICS],
    // text/* is more specific than */*.
    ['*/*;q=0.1, text/*;q=0.9, application/openmetrics-text;q=0.5', TEXT_004],
    // A tie goes to OpenMetrics, which the client named.
    ['text/plain, application/openmetrics-text', OPENMETRICS],
    // The most specific OpenMetrics range counts: the exact version, then none, then 0.0.1.
    [
      'application/openmetrics-text;version=0.0.1;q=0.1, text/plain;q=0.5, application/openmetrics-text;q=0.6',
      OPENMETRICS,
    ],
    [
      'application/openmetrics-text;version=1.0.0;q=0.2, application/openmetrics-text;q=0.9, text/plain;q=0.5',
      TEXT_004,
    ],
    [
      'application/openmetrics-text;version=0.0.1;q=0.9, application/openmetrics-text;q=0.1, text/plain;q=0.5',
      TEXT_004,
    ],
  ])
})

test('one format refused with q=0, or nothing acceptable: the text format 0.0.4', () => {
  check([
    ['application/openmetrics-text;q=0', TEXT_004],
    ['application/openmetrics-text;q=0.000, text/plain;q=0.1', TEXT_004],
    ['application/json', TEXT_004],
  ])
})

test('every format refused with q=0, the text format 0.0.4 included: nothing (406)', () => {
  for (const accept of [
    '*/*;q=0',
    'text/*;q=0',
    'text/plain;q=0, */*;q=0',
    'text/plain;version=0.0.4;q=0',
    'text/*;q=0, application/openmetrics-text;q=0',
    'text/plain;q=0, */*',
  ]) {
    assert.equal(negotiate(accept), undefined, accept)
  }
})

test('malformed elements are skipped, well-formed ones still count', () => {
  check([
    ['application/openmetrics-text;q=2', TEXT_004],
    ['application/openmetrics-text;q=0.5000', TEXT_004],
    ['application/openmetrics-text;q=abc', TEXT_004],
    ['application/openmetrics-text;q', TEXT_004],
    ['application/openmetrics-text;version=1 0', TEXT_004],
    ['application/openmetrics-text;escaping="open', TEXT_004],
    ['application/openmetrics-text/extra', TEXT_004],
    ['*/openmetrics-text', TEXT_004],
    ['openmetrics', TEXT_004],
    [';;;,,,', TEXT_004],
    ['"application/openmetrics-text"', TEXT_004],
    ['\u0000\uffff', TEXT_004],
    ['garbage;;, application/openmetrics-text', OPENMETRICS],
  ])
})

test('commas and semicolons inside quoted parameter values do not split elements', () => {
  check([
    ['text/plain;foo="a, application/openmetrics-text, b"', TEXT_004],
    ['application/openmetrics-text;foo="x;q=0\\",y";q=1, text/plain;q=0.5', OPENMETRICS],
  ])
})
