// RequestSeries writes into prom-client's stored series directly: its exposition must equal,
// line for line, what prom-client's public API produces from the same calls, including after
// reset(), remove() and resetMetrics(), and for values on and beyond the bucket bounds.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { Registry } from 'prom-client'
import { renderRegistry } from '../../packages/plugin/src/exposition/exposition'
import { createHttpMetrics } from '../../packages/plugin/src/plugin/http-metrics'
import { RequestSeries } from '../../packages/plugin/src/plugin/request-series'

const BUCKETS = [0.005, 0.01, 0.1, 1]
const LABELS = { method: 'GET', route: '/a', status_code: '200', worker_id: '4' }
const OTHER = { method: 'POST', route: '/b', status_code: '201', worker_id: '4' }

/** The same sequence of calls through RequestSeries and through prom-client's public API. */
function twin() {
  const direct = new Registry()
  const publicApi = new Registry()
  const d = createHttpMetrics(direct, BUCKETS)
  const p = createHttpMetrics(publicApi, BUCKETS)
  const series = new RequestSeries(d.requestsTotal, d.requestDuration, LABELS)
  const other = new RequestSeries(d.requestsTotal, d.requestDuration, OTHER)
  return {
    record(seconds: number, which: 'one' | 'other' = 'one') {
      ;(which === 'one' ? series : other).record(seconds)
      const labels = which === 'one' ? LABELS : OTHER
      p.requestsTotal.inc(labels)
      p.requestDuration.observe(labels, seconds)
    },
    count() {
      series.count()
      p.requestsTotal.inc(LABELS)
    },
    both(action: (m: typeof d, registry: Registry) => void) {
      action(d, direct)
      action(p, publicApi)
    },
    async assertSame(what: string) {
      const [a, b] = await Promise.all([direct.metrics(), publicApi.metrics()])
      assert.equal(a, b, what)
      return a
    },
  }
}

test('records exactly what prom-client records, on, between and beyond the bounds', async () => {
  const t = twin()
  for (const seconds of [0, 0.005, 0.0050001, 0.01, 0.05, 1, 1.5, 30, 0.003]) t.record(seconds)
  t.record(0.2, 'other')
  t.count()
  t.count()
  const text = await t.assertSame('after records')
  // The fast path was taken: the series exists once, with every request in it.
  assert.match(
    text,
    /^http_requests_total\{method="GET",route="\/a",status_code="200",worker_id="4"\} 11$/m,
  )
  assert.match(
    text,
    /^http_request_duration_seconds_count\{method="GET",route="\/a",status_code="200",worker_id="4"\} 9$/m,
  )
})

test('keeps counting correctly after reset, remove and resetMetrics', async () => {
  const t = twin()
  t.record(0.02)
  t.record(0.02, 'other')
  t.both((m) => m.requestsTotal.reset())
  t.record(0.03)
  await t.assertSame('after counter reset')
  t.both((m) => m.requestDuration.remove(LABELS))
  t.record(2)
  await t.assertSame('after histogram remove')
  t.both((_m, registry) => registry.resetMetrics())
  t.record(0.004)
  t.count()
  t.record(0.5, 'other')
  await t.assertSame('after resetMetrics')
})

test('a value that is not a number is refused as prom-client refuses it', () => {
  const registry = new Registry()
  const m = createHttpMetrics(registry, BUCKETS)
  const series = new RequestSeries(m.requestsTotal, m.requestDuration, LABELS)
  series.record(0.1)
  assert.throws(() => series.record(Number.NaN), /not a valid number/)
})

test('a series that already exists (created elsewhere) is continued, not duplicated', async () => {
  const registry = new Registry()
  const m = createHttpMetrics(registry, BUCKETS)
  m.requestsTotal.inc({ ...LABELS }, 5)
  m.requestDuration.observe({ ...LABELS }, 0.1)
  const series = new RequestSeries(m.requestsTotal, m.requestDuration, LABELS)
  series.record(0.1)
  series.record(0.1)
  const text = await registry.metrics()
  assert.match(text, /^http_requests_total\{[^}]*\} 7$/m)
  assert.match(text, /^http_request_duration_seconds_count\{[^}]*\} 3$/m)
  assert.equal(text.match(/^http_requests_total\{/gm)?.length, 1)
})

test('after its first request, a series is written without prom-client’s per-call API', async () => {
  const registry = new Registry()
  const m = createHttpMetrics(registry, BUCKETS)
  const calls = { inc: 0, observe: 0 }
  // Spies on the public calls, passing them through unchanged.
  type Spied = Record<'inc' | 'observe', (...args: unknown[]) => unknown>
  for (const [metric, name] of [
    [m.requestsTotal, 'inc'],
    [m.requestDuration, 'observe'],
  ] as const) {
    const spied = metric as unknown as Spied
    const original = spied[name].bind(metric)
    spied[name] = (...args: unknown[]) => {
      calls[name]++
      return original(...args)
    }
  }
  const series = new RequestSeries(m.requestsTotal, m.requestDuration, LABELS)
  for (let i = 0; i < 100; i++) series.record(0.05)
  assert.deepEqual(calls, { inc: 1, observe: 1 })
  registry.resetMetrics()
  series.record(0.05)
  assert.deepEqual(calls, { inc: 2, observe: 2 }, 'a reset series is created again through the API')
  assert.match(await registry.metrics(), /^http_requests_total\{[^}]*\} 1$/m)
})

test('with exemplars on, traced and untraced records equal prom-client’s own, exemplars included', async () => {
  const direct = new Registry()
  const publicApi = new Registry()
  const d = createHttpMetrics(direct, BUCKETS, { exemplars: true })
  const p = createHttpMetrics(publicApi, BUCKETS, { exemplars: true })
  const series = new RequestSeries(d.requestsTotal, d.requestDuration, LABELS)
  const steps: Array<[number, string | undefined]> = [
    [0.05, undefined],
    [0.003, 'trace-a'],
    [0.07, undefined],
    [0.5, 'trace-b'],
    [30, 'trace-c'],
    [0.004, undefined],
  ]
  // prom-client types exemplar labels as the metric's own label names.
  const exemplar = (trace: string): Record<string, string> => ({ trace_id: trace })
  for (const [seconds, trace] of steps) {
    if (trace === undefined) {
      series.record(seconds)
      p.requestsTotal.inc({ labels: LABELS })
      p.requestDuration.observe({ labels: LABELS, value: seconds })
    } else {
      series.recordTraced(seconds, exemplar(trace))
      p.requestsTotal.inc({ labels: LABELS, exemplarLabels: exemplar(trace) })
      p.requestDuration.observe({ labels: LABELS, value: seconds, exemplarLabels: exemplar(trace) })
    }
  }
  series.countTraced(exemplar('trace-d'))
  p.requestsTotal.inc({ labels: LABELS, exemplarLabels: exemplar('trace-d') })
  // Exemplar timestamps are the clock at each call; everything else must be equal.
  const render = async (registry: Registry) =>
    (await renderRegistry(registry, 'openmetrics')).replace(/( # \{[^}]*\} \S+) \S+$/gm, '$1 T')
  const [a, b] = await Promise.all([render(direct), render(publicApi)])
  assert.equal(a, b)
  assert.match(a, /^http_requests_total\{[^}]*\} 7 # \{trace_id="trace-d"\} 1 T$/m)
  assert.match(
    a,
    /^http_request_duration_seconds_bucket\{le="\+Inf",[^}]*\} 6 # \{trace_id="trace-c"\} 30 T$/m,
  )
})
