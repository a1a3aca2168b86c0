// Exemplars: a request with a valid W3C `traceparent` leaves its trace id on its counter and
// bucket, in OpenMetrics answers of /metrics only (alone and through the cluster view, checked
// by the official OpenMetrics parser, Python's prometheus_client); requests without one, or
// with a malformed one, leave none and are counted as usual. Reading the header alone is
// test/plugins/traceparent.test.ts.
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, test } from 'node:test'
import Fastify from 'fastify'
import { Registry } from 'prom-client'
import metricsPlugin, {
  countFrameworkErrors,
  type MetricsPluginOptions,
} from '../../packages/plugin/src/plugin'
import { ExpositionParser } from './exposition-parser'

// What Prometheus 2.42 sends (scrape_config defaults).
const OPENMETRICS_ACCEPT =
  'application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1'
// The example of the W3C Trace Context specification.
const TRACE_ID = '4bf92f3577b34da6a3ce929d0e0e4736'
const TRACEPARENT = `00-${TRACE_ID}-00f067aa0ba902b7-01`

const parser = new ExpositionParser()
after(() => parser.close())

async function build(
  t: { after: (fn: () => unknown) => void },
  options: MetricsPluginOptions = {},
) {
  const app = Fastify({ frameworkErrors: countFrameworkErrors })
  await app.register(metricsPlugin, {
    registry: new Registry(),
    workerId: '3',
    buckets: [0.1, 1],
    defaultMetrics: false,
    cluster: false,
    ...options,
  })
  app.get('/items/:id', async () => ({ ok: true }))
  t.after(() => app.close())
  await app.ready()
  return app
}

async function openMetrics(app: Awaited<ReturnType<typeof build>>): Promise<string> {
  const res = await app.inject({ url: '/metrics', headers: { accept: OPENMETRICS_ACCEPT } })
  assert.match(String(res.headers['content-type']), /^application\/openmetrics-text/)
  // The official parser rejects a misplaced or malformed exemplar.
  await parser.parse(res.body, 'openmetrics')
  return res.body
}

/** The sample lines of `text` that carry an exemplar. */
const exemplarLines = (text: string) => text.split('\n').filter((line) => line.includes(' # {'))

const sampleValue = (text: string, sample: RegExp) => {
  const line = text.split('\n').find((l) => sample.test(l))
  return line === undefined ? undefined : Number(line.split(' ')[1])
}

test('a traced request leaves its trace id on its counter and its bucket, in OpenMetrics only', async (t) => {
  // One bucket below 5 s, wide enough for any request here, however loaded the machine.
  const app = await build(t, { buckets: [5, 10] })
  await app.inject({ url: '/items/1' })
  const res = await app.inject({ url: '/items/2', headers: { traceparent: TRACEPARENT } })
  assert.equal(res.statusCode, 200)

  const text = await openMetrics(app)
  const lines = exemplarLines(text)
  // One on the counter, one on the bucket the duration fell in.
  assert.equal(lines.length, 2, lines.join('\n'))
  const counter = lines.find((l) => l.startsWith('http_requests_total{'))
  const bucket = lines.find((l) => l.startsWith('http_request_duration_seconds_bucket{'))
  assert.match(
    counter ?? '',
    new RegExp(
      `^http_requests_total\\{method="GET",route="/items/:id",status_code="200",worker_id="3"\\} 2 # \\{trace_id="${TRACE_ID}"\\} 1 \\d+(\\.\\d+)?$`,
    ),
  )
  const [, observed] =
    new RegExp(
      `^http_request_duration_seconds_bucket\\{le="5",method="GET",route="/items/:id",status_code="200",worker_id="3"\\} 2 # \\{trace_id="${TRACE_ID}"\\} (\\S+) \\d+(\\.\\d+)?$`,
    ).exec(bucket ?? '') ?? assert.fail(`no exemplar on the le="5" bucket: ${bucket}`)
  // The exemplar's value is the traced request's own duration, inside its bucket.
  assert.ok(Number(observed) > 0 && Number(observed) <= 5, observed)
  // Both requests counted, traced or not.
  assert.equal(sampleValue(text, /^http_request_duration_seconds_count\{/), 2)

  const plain = await app.inject({ url: '/metrics' })
  assert.match(String(plain.headers['content-type']), /^text\/plain/)
  assert.match(plain.body, /^http_requests_total\{[^}]*\} 2$/m)
  assert.doesNotMatch(plain.body, /trace_id/)
})

test('requests without traceparent leave no exemplar', async (t) => {
  const app = await build(t)
  for (let i = 0; i < 3; i++) await app.inject({ url: '/items/1' })
  await app.inject({ url: '/nope' })
  const text = await openMetrics(app)
  assert.equal(sampleValue(text, /^http_requests_total\{[^}]*route="\/items\/:id"/), 3)
  assert.equal(sampleValue(text, /^http_requests_total\{[^}]*route="__unmatched__"/), 1)
  assert.deepEqual(exemplarLines(text), [])
})

test('malformed traceparent values are ignored: counted as usual, no exemplar, no error', async (t) => {
  const app = await build(t)
  const malformed = [
    `00-${'0'.repeat(32)}-00f067aa0ba902b7-01`,
    `00-${TRACE_ID}-${'0'.repeat(16)}-01`,
    `00-${TRACE_ID.toUpperCase()}-00f067aa0ba902b7-01`,
    `01-${TRACE_ID}-00f067aa0ba902b7-01`,
    'garbage',
    `00-${TRACE_ID}-00f067aa0ba902b7-01-00`,
  ]
  for (const traceparent of malformed) {
    const res = await app.inject({ url: '/items/1', headers: { traceparent } })
    assert.equal(res.statusCode, 200, traceparent)
  }
  // Two headers at once: not one trace.
  const res = await app.inject({
    url: '/nope',
    headers: { traceparent: [TRACEPARENT, TRACEPARENT] },
  })
  assert.equal(res.statusCode, 404)
  const text = await openMetrics(app)
  assert.equal(
    sampleValue(text, /^http_requests_total\{[^}]*route="\/items\/:id"/),
    malformed.length,
  )
  assert.equal(sampleValue(text, /^http_requests_total\{[^}]*route="__unmatched__"/), 1)
  assert.deepEqual(exemplarLines(text), [])
})

test('an unmatched traced request carries its exemplar on the unmatched series', async (t) => {
  const app = await build(t)
  await app.inject({ url: '/nope', headers: { traceparent: TRACEPARENT } })
  const lines = exemplarLines(await openMetrics(app))
  assert.equal(lines.length, 2, lines.join('\n'))
  for (const line of lines) {
    assert.match(line, /route="__unmatched__",status_code="404"/)
    assert.ok(line.includes(`# {trace_id="${TRACE_ID}"}`), line)
  }
})

test('a request the router rejects carries its exemplar too', async (t) => {
  const app = await build(t)
  const res = await app.inject({ url: '/items/%zz', headers: { traceparent: TRACEPARENT } })
  assert.equal(res.statusCode, 400)
  const lines = exemplarLines(await openMetrics(app))
  assert.equal(lines.length, 2, lines.join('\n'))
  for (const line of lines) {
    assert.match(line, /route="__unmatched__",status_code="400"/)
    assert.ok(line.includes(`# {trace_id="${TRACE_ID}"}`), line)
  }
})

test('the newest traced request of a bucket is its exemplar', async (t) => {
  const app = await build(t)
  const second = `${'a'.repeat(31)}b`
  await app.inject({ url: '/items/1', headers: { traceparent: TRACEPARENT } })
  await app.inject({
    url: '/items/1',
    headers: { traceparent: `00-${second}-00f067aa0ba902b7-01` },
  })
  const lines = exemplarLines(await openMetrics(app))
  assert.equal(lines.length, 2, lines.join('\n'))
  for (const line of lines) assert.ok(line.includes(`# {trace_id="${second}"}`), line)
})

test('exemplars: false keeps none', async (t) => {
  const app = await build(t, { exemplars: false })
  await app.inject({ url: '/items/1', headers: { traceparent: TRACEPARENT } })
  const text = await openMetrics(app)
  assert.equal(sampleValue(text, /^http_requests_total\{/), 1)
  assert.deepEqual(exemplarLines(text), [])
})

test('through the cluster view, each worker’s exemplars reach the merged OpenMetrics answer', async (t) => {
  const socketDir = mkdtempSync(join(tmpdir(), 'exemplars-'))
  t.after(() => rmSync(socketDir, { recursive: true, force: true }))
  const cluster = { key: 'exemplars', socketDir }
  const workers = [
    await build(t, { workerId: '0', cluster }),
    await build(t, { workerId: '1', cluster }),
  ]
  const traceOf = (worker: number) => `${String(worker + 1).repeat(31)}f`
  for (const [i, app] of workers.entries()) {
    await app.inject({
      url: '/items/1',
      headers: { traceparent: `00-${traceOf(i)}-00f067aa0ba902b7-01` },
    })
  }
  const text = await openMetrics(workers[0])
  for (const [i] of workers.entries()) {
    const lines = exemplarLines(text).filter((l) => l.includes(`worker_id="${i}"`))
    assert.equal(lines.length, 2, `worker ${i}:\n${text}`)
    for (const line of lines) assert.ok(line.includes(`# {trace_id="${traceOf(i)}"}`), line)
  }
})
