// Format negotiation from the Accept header, and each format's Content-Type.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { contentTypeOf, negotiateFormat } from '../../src/cluster/exposition'

test('each format has its registered Content-Type', () => {
  assert.equal(contentTypeOf('prometheus'), 'text/plain; version=0.0.4; charset=utf-8')
  assert.equal(
    contentTypeOf('openmetrics'),
    'application/openmetrics-text; version=1.0.0; charset=utf-8',
  )
})

test("Prometheus 2's Accept header gets OpenMetrics", () => {
  assert.equal(
    negotiateFormat(
      'application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1',
    ),
    'openmetrics',
  )
})

test("Prometheus 3's Accept header, with escaping parameters, gets OpenMetrics", () => {
  assert.equal(
    negotiateFormat(
      'application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.5,application/openmetrics-text;version=0.0.1;q=0.4,text/plain;version=1.0.0;escaping=allow-utf-8;q=0.3,text/plain;version=0.0.4;q=0.2,*/*;q=0.1',
    ),
    'openmetrics',
  )
})

test('Prometheus configured for the text format first gets the text format', () => {
  assert.equal(
    negotiateFormat(
      'text/plain;version=0.0.4;q=1,application/openmetrics-text;version=1.0.0;q=0.5,*/*;q=0.1',
    ),
    'prometheus',
  )
})

test('no header, wildcards, text/plain and unrelated types get the text format', () => {
  for (const accept of [
    undefined,
    '',
    '*/*',
    'text/*',
    'text/plain',
    'text/plain; version=0.0.4',
    'application/json',
    'application/*',
  ]) {
    assert.equal(negotiateFormat(accept), 'prometheus', String(accept))
  }
})

test('OpenMetrics alone, in any case and spacing, gets OpenMetrics', () => {
  for (const accept of [
    'application/openmetrics-text',
    'Application/OpenMetrics-Text ; Version=1.0.0',
    '  application/openmetrics-text;version=0.0.1 ,  text/html',
  ]) {
    assert.equal(negotiateFormat(accept), 'openmetrics', accept)
  }
})

test('q-values decide, with the most specific text range counting', () => {
  // */* at 1 outranks OpenMetrics at 0.5, and nothing more specific names the text format.
  assert.equal(negotiateFormat('application/openmetrics-text;q=0.5, */*'), 'prometheus')
  // text/plain at 0.2 is more specific than */* at 1, so it is the text format's q-value.
  assert.equal(
    negotiateFormat('*/*, text/plain;q=0.2, application/openmetrics-text;q=0.5'),
    'openmetrics',
  )
  // text/* is more specific than */*.
  assert.equal(
    negotiateFormat('*/*;q=0.1, text/*;q=0.9, application/openmetrics-text;q=0.5'),
    'prometheus',
  )
  // A tie goes to OpenMetrics, which the client named.
  assert.equal(negotiateFormat('text/plain, application/openmetrics-text'), 'openmetrics')
  // The best of several OpenMetrics ranges counts.
  assert.equal(
    negotiateFormat(
      'application/openmetrics-text;version=0.0.1;q=0.1, text/plain;q=0.5, application/openmetrics-text;q=0.6',
    ),
    'openmetrics',
  )
})

test('OpenMetrics refused with q=0 gets the text format', () => {
  assert.equal(negotiateFormat('application/openmetrics-text;q=0'), 'prometheus')
  assert.equal(
    negotiateFormat('application/openmetrics-text;q=0.000, text/plain;q=0.1'),
    'prometheus',
  )
})

test('malformed elements are skipped, well-formed ones still count', () => {
  for (const accept of [
    'application/openmetrics-text;q=2',
    'application/openmetrics-text;q=0.5000',
    'application/openmetrics-text;q=abc',
    'application/openmetrics-text;q',
    'application/openmetrics-text/extra',
    'openmetrics',
    ';;;,,,',
    '"application/openmetrics-text"',
    '\u0000\uffff',
  ]) {
    assert.equal(negotiateFormat(accept), 'prometheus', accept)
  }
  assert.equal(negotiateFormat('garbage;;, application/openmetrics-text'), 'openmetrics')
})

test('commas and semicolons inside quoted parameter values do not split elements', () => {
  assert.equal(negotiateFormat('text/plain;foo="a, application/openmetrics-text, b"'), 'prometheus')
  assert.equal(
    negotiateFormat('application/openmetrics-text;foo="x;q=0\\",y";q=1, text/plain;q=0.5'),
    'openmetrics',
  )
})
