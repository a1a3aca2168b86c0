// Native histograms in the metrics plugin: off unless asked, then one per duration series,
// found by the labels prom-client renders, holding the same observations as the classic series
// (count and sum agree) through the direct path, the API, exemplars, reset and remove.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import Fastify from 'fastify'
import { Histogram, Registry } from 'prom-client'
import {
  DEFAULT_SCHEMA,
  fromSpans,
  type NativeHistogramSnapshot,
} from '../../packages/plugin/src/lib/native-histogram'
import metricsPlugin, { type MetricsPluginOptions } from '../../packages/plugin/src/plugin'
import { type HttpMetrics, REQUEST_DURATION } from '../../packages/plugin/src/plugin/http-metrics'
import { build as buildService } from '../helper'

const TRACEPARENT = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01'

async function build(
  t: { after: (fn: () => unknown) => void },
  options: MetricsPluginOptions = {},
  registry = new Registry(),
) {
  const app = Fastify()
  await app.register(metricsPlugin, { registry, workerId: '3', buckets: [0.1, 1], ...options })
  app.get('/items/:id', async () => ({ ok: true }))
  t.after(() => app.close())
  await app.ready()
  return { app, registry }
}

interface RenderedSeries {
  labels: Record<string, string>
  count: number
  sum: number
}

/** The duration series as prom-client renders them: labels (default labels in), count, sum. */
async function renderedSeries(registry: Registry): Promise<RenderedSeries[]> {
  const metric = (await registry.getMetricsAsJSON()).find((m) => m.name === REQUEST_DURATION)
  const values = (metric?.values ?? []) as Array<{
    metricName?: string
    labels: Record<string, string | number>
    value: number
  }>
  const byKey = new Map<string, RenderedSeries>()
  for (const value of values) {
    if (value.metricName === undefined || value.metricName.endsWith('_bucket')) continue
    const labels = Object.fromEntries(
      Object.entries(value.labels).map(([name, v]) => [name, String(v)]),
    )
    const key = JSON.stringify(labels)
    const series = byKey.get(key) ?? { labels, count: 0, sum: 0 }
    if (value.metricName.endsWith('_count')) series.count = value.value
    else series.sum = value.value
    byKey.set(key, series)
  }
  return [...byKey.values()]
}

function observationsIn(snapshot: NativeHistogramSnapshot): number {
  let total = snapshot.zeroCount
  for (const count of fromSpans(snapshot.positiveSpans, snapshot.positiveDeltas).values()) {
    total += count
  }
  for (const count of fromSpans(snapshot.negativeSpans, snapshot.negativeDeltas).values()) {
    total += count
  }
  return total
}

test('off by default: the duration histogram is prom-client’s own and nothing is looked up', async (t) => {
  const { app } = await build(t)
  await app.inject({ method: 'GET', url: '/items/1' })
  assert.equal(app.metrics.http.requestDuration.constructor, Histogram)
  assert.equal((app.metrics.http as HttpMetrics).native, undefined)
  const labels = { method: 'GET', route: '/items/:id', status_code: '200', worker_id: '3' }
  assert.equal(app.metrics.nativeFor(REQUEST_DURATION, labels), undefined)
})

test('each rendered duration series has a native histogram with the same count and sum', async (t) => {
  const registry = new Registry()
  // A default label of the registry's own is rendered on every series and ignored by the key.
  registry.setDefaultLabels({ region: 'eu', worker_id: '3' })
  const { app } = await build(t, { nativeHistograms: {} }, registry)
  // Enough requests for the direct path (after the first of each series) to carry most of them.
  for (let i = 0; i < 20; i++) await app.inject({ method: 'GET', url: `/items/${i}` })
  for (let i = 0; i < 5; i++) await app.inject({ method: 'GET', url: '/nowhere' })
  await app.inject({ method: 'POST', url: '/items/1' })

  const rendered = await renderedSeries(registry)
  assert.equal(rendered.length, 3) // GET /items/:id 200, GET unmatched 404, POST unmatched 404
  for (const series of rendered) {
    assert.equal(series.labels.region, 'eu')
    const native = app.metrics.nativeFor(REQUEST_DURATION, series.labels)
    assert.ok(native, JSON.stringify(series.labels))
    assert.equal(native.count, series.count)
    assert.equal(native.sum, series.sum)
    assert.equal(observationsIn(native), series.count)
    assert.equal(native.schema, 3)
    assert.equal(native.zeroThreshold, 2 ** -128)
  }
  // Another metric, or a label set that was never observed, has none.
  const [first] = rendered
  assert.equal(app.metrics.nativeFor('http_requests_total', first.labels), undefined)
  assert.equal(
    app.metrics.nativeFor(REQUEST_DURATION, { ...first.labels, method: 'PUT' }),
    undefined,
  )
})

test('observations through the API land in the buckets of their values', async (t) => {
  const { app } = await build(t, { nativeHistograms: { schema: 0 }, exemplars: false })
  const duration = app.metrics.http.requestDuration
  const labels = { method: 'GET', route: '/api', status_code: '200', worker_id: '3' }
  duration.observe(labels, 0.75) // schema 0: (0.5, 1], bucket 0
  duration.labels(labels).observe(3) // (2, 4], bucket 2
  duration.labels('GET', '/api', '200', '3').observe(4) // 4 closes (2, 4]
  duration.zero({ ...labels, route: '/other' })
  const native = app.metrics.nativeFor(REQUEST_DURATION, labels)
  assert.ok(native)
  assert.equal(native.count, 3)
  assert.deepEqual(
    [...fromSpans(native.positiveSpans, native.positiveDeltas)],
    [
      [0, 1],
      [2, 2],
    ],
  )
  const [series] = (await renderedSeries(app.metrics.registry)).filter(
    (s) => s.labels.route === '/api',
  )
  assert.equal(series.count, 3)
  assert.equal(series.sum, native.sum)
})

test('a traced request leaves the newest exemplar on its native histogram, with a timestamp', async (t) => {
  const { app } = await build(t, { nativeHistograms: {} })
  const labels = { method: 'GET', route: '/items/:id', status_code: '200', worker_id: '3' }
  await app.inject({ method: 'GET', url: '/items/1' })
  assert.equal(app.metrics.nativeFor(REQUEST_DURATION, labels)?.exemplars, undefined)

  const before = Date.now()
  await app.inject({ method: 'GET', url: '/items/2', headers: { traceparent: TRACEPARENT } })
  await app.inject({ method: 'GET', url: '/items/3' }) // untraced: the exemplar stays
  const native = app.metrics.nativeFor(REQUEST_DURATION, labels)
  assert.equal(native?.exemplars?.length, 1)
  const [exemplar] = native?.exemplars ?? []
  assert.deepEqual(exemplar.labels, { trace_id: '0af7651916cd43dd8448eb211c80319c' })
  assert.ok(exemplar.timestampMs >= before && exemplar.timestampMs <= Date.now())
  assert.ok(exemplar.value > 0)
  assert.equal(native?.count, 3)

  const newer = '00-11111111111111111111111111111111-2222222222222222-01'
  await app.inject({ method: 'GET', url: '/items/4', headers: { traceparent: newer } })
  const [latest] = app.metrics.nativeFor(REQUEST_DURATION, labels)?.exemplars ?? []
  assert.equal(latest.labels.trace_id, '11111111111111111111111111111111')
})

test('reset and remove clear the native histograms with the classic series', async (t) => {
  const { app, registry } = await build(t, { nativeHistograms: {} })
  const labels = { method: 'GET', route: '/items/:id', status_code: '200', worker_id: '3' }
  for (let i = 0; i < 4; i++) await app.inject({ method: 'GET', url: '/items/1' })
  assert.equal(app.metrics.nativeFor(REQUEST_DURATION, labels)?.count, 4)

  registry.resetMetrics()
  assert.equal(app.metrics.nativeFor(REQUEST_DURATION, labels)?.count, 0)
  await app.inject({ method: 'GET', url: '/items/1' })
  await app.inject({ method: 'GET', url: '/items/1' })
  const [afterReset] = await renderedSeries(registry)
  assert.equal(afterReset.count, 2)
  assert.equal(app.metrics.nativeFor(REQUEST_DURATION, labels)?.count, 2)

  app.metrics.http.requestDuration.remove(labels)
  assert.equal(app.metrics.nativeFor(REQUEST_DURATION, labels)?.count, 0)
  await app.inject({ method: 'GET', url: '/items/1' })
  const [afterRemove] = await renderedSeries(registry)
  assert.equal(afterRemove.count, 1)
  const native = app.metrics.nativeFor(REQUEST_DURATION, labels)
  assert.equal(native?.count, 1)
  assert.equal(native?.sum, afterRemove.sum)
})

test('the text exposition is the same with native histograms on', async (t) => {
  const shape = async (options: MetricsPluginOptions) => {
    const { app, registry } = await build(t, options)
    for (let i = 0; i < 3; i++) await app.inject({ method: 'GET', url: '/items/1' })
    await app.inject({ method: 'GET', url: '/items/1', headers: { traceparent: TRACEPARENT } })
    // Durations differ from run to run: compare every line but its value.
    return (await registry.metrics()).split('\n').map((line) => line.replace(/ [^ ]+$/, ''))
  }
  assert.deepEqual(await shape({ nativeHistograms: { schema: 1 } }), await shape({}))
})

test('nativeHistograms: true turns them on with the default settings', async (t) => {
  const { app, registry } = await build(t, { nativeHistograms: true })
  await app.inject({ method: 'GET', url: '/items/1' })
  const [series] = await renderedSeries(registry)
  const native = app.metrics.nativeFor(REQUEST_DURATION, series.labels)
  assert.equal(native?.schema, DEFAULT_SCHEMA)
  assert.equal(native?.count, 1)
})

test('bad nativeHistograms options are refused at registration, naming the setting', async () => {
  const cases: Array<[unknown, RegExp]> = [
    [{ schema: 9 }, /nativeHistograms schema must be an integer from -4 to 8, got 9/],
    [{ schema: 2.5 }, /nativeHistograms schema must be an integer/],
    [{ maxBuckets: 0 }, /nativeHistograms maxBuckets must be a positive integer, got 0/],
    [{ zeroThreshold: -1 }, /nativeHistograms zeroThreshold must be a finite number/],
    ['yes', /nativeHistograms must be a boolean or an object, got yes/],
  ]
  for (const [nativeHistograms, message] of cases) {
    const app = Fastify()
    await assert.rejects(
      (async () => {
        await app.register(metricsPlugin, {
          registry: new Registry(),
          nativeHistograms: nativeHistograms as MetricsPluginOptions['nativeHistograms'],
        })
        await app.ready()
      })(),
      message,
    )
    await app.close()
  }
})

test('the service turns them on with METRICS_NATIVE_HISTOGRAMS and its two settings', async (t) => {
  const app = await buildService(t, {
    METRICS_NATIVE_HISTOGRAMS: 'true',
    METRICS_NATIVE_HISTOGRAM_SCHEMA: '-1',
    METRICS_NATIVE_HISTOGRAM_MAX_BUCKETS: '20',
  })
  await app.inject({ method: 'GET', url: '/' })
  const http = app.metrics.http as HttpMetrics
  assert.ok(http.native)
  assert.equal((http.requestDuration as { native?: unknown }).native, http.native)
  const [series] = await renderedSeries(app.metrics.registry)
  const native = app.metrics.nativeFor(REQUEST_DURATION, series.labels)
  assert.equal(native?.schema, -1)
  assert.equal(native?.count, 1)
  const off = await buildService(t, {})
  assert.equal((off.metrics.http as HttpMetrics).native, undefined)
})
