// Native histograms as one worker's successive processes switch them on, and as a scrape reads
// them: every duration series of a protobuf scrape has native fields holding exactly its
// classic observations (Prometheus refuses a family that mixes native and classic-only series,
// and a native histogram whose buckets disagree with its count).
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, test } from 'node:test'
import Fastify from 'fastify'
import { Gauge, Registry } from 'prom-client'
import { type DecodedMetric, decodeFamilies } from '../../harness/protobuf'
import { fromSpans } from '../../packages/plugin/src/lib/native-histogram'
import metricsPlugin, { type MetricsPluginOptions } from '../../packages/plugin/src/plugin'
import { REQUEST_DURATION } from '../../packages/plugin/src/plugin/http-metrics'

const PROTOBUF =
  'application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited'

const base = mkdtempSync(join(tmpdir(), 'native-switch-'))
after(() => rmSync(base, { recursive: true, force: true }))

/** An app of worker 1 whose cluster view lives in `dir`, as one process of a PM2 app. */
async function start(dir: string, options: MetricsPluginOptions, registry = new Registry()) {
  const app = Fastify()
  await app.register(metricsPlugin, {
    registry,
    workerId: '1',
    buckets: [0.1, 1],
    defaultMetrics: false,
    cluster: { socketDir: join(base, dir), key: 'switch' },
    ...options,
  })
  app.get('/fast', async () => 'ok')
  app.get('/slow', async () => {
    await new Promise((resolve) => setTimeout(resolve, 150))
    return 'ok'
  })
  app.post('/fast', async () => 'ok')
  await app.ready()
  return app
}

/** The duration series of a protobuf scrape. */
async function durationSeries(app: Awaited<ReturnType<typeof start>>): Promise<DecodedMetric[]> {
  const response = await app.inject({ url: '/metrics', headers: { accept: PROTOBUF } })
  assert.equal(response.statusCode, 200)
  const family = decodeFamilies(response.rawPayload).find((f) => f.name === REQUEST_DURATION)
  assert.ok(family?.metric !== undefined && family.metric.length > 0, 'no duration series')
  return family.metric
}

function describe(metric: DecodedMetric): string {
  return (metric.label ?? []).map((l) => `${l.name}=${l.value}`).join(',')
}

/** Every series has native fields whose buckets hold exactly its classic count. */
function assertNativeForEvery(series: readonly DecodedMetric[]): void {
  for (const metric of series) {
    const h = metric.histogram
    assert.ok(h !== undefined)
    assert.equal(typeof h.schema, 'number', `${describe(metric)} has no native histogram`)
    let inBuckets = h.zero_count ?? 0
    for (const count of fromSpans(
      (h.positive_span ?? []).map((s) => ({ offset: s.offset ?? 0, length: s.length ?? 0 })),
      h.positive_delta ?? [],
    ).values()) {
      inBuckets += count
    }
    assert.equal(inBuckets, h.sample_count, `${describe(metric)}: native and classic counts`)
  }
}

function countOf(series: readonly DecodedMetric[], method: string, route: string): number {
  const metric = series.find(
    (m) =>
      (m.label ?? []).some((l) => l.name === 'method' && l.value === method) &&
      (m.label ?? []).some((l) => l.name === 'route' && l.value === route),
  )
  assert.ok(metric?.histogram, `no series of ${method} ${route}`)
  return metric.histogram.sample_count ?? 0
}

test('a process with native histograms on continues a handover without them: every series gets a native histogram of its classic count', async () => {
  const classic = await start('switch-on', { nativeHistograms: false })
  for (let i = 0; i < 3; i++) await classic.inject({ url: '/fast' })
  await classic.inject({ url: '/slow' }) // between the bounds 0.1 s and 1 s
  await classic.inject({ method: 'POST', url: '/fast' })
  await classic.close() // a reload: the process hands its counts over

  const native = await start('switch-on', { nativeHistograms: {} })
  try {
    await native.inject({ url: '/fast' })
    const series = await durationSeries(native)
    assert.equal(countOf(series, 'GET', '/fast'), 4, 'the carried and the new observations')
    assert.equal(countOf(series, 'GET', '/slow'), 1)
    assert.equal(countOf(series, 'POST', '/fast'), 1)
    assertNativeForEvery(series)
  } finally {
    await native.close()
  }
})

test('a handover with native histograms is continued as it is, after a process without them', async () => {
  // off → on → on: the second handover carries native histograms of the whole count.
  const classic = await start('switch-chain', { nativeHistograms: false })
  await classic.inject({ url: '/fast' })
  await classic.close()
  const first = await start('switch-chain', { nativeHistograms: {} })
  await first.inject({ url: '/fast' })
  await first.close()
  const second = await start('switch-chain', { nativeHistograms: {} })
  try {
    const series = await durationSeries(second)
    assert.equal(countOf(series, 'GET', '/fast'), 2)
    assertNativeForEvery(series)
  } finally {
    await second.close()
  }
})

test('a metric whose collect is async lets requests finish mid-scrape: classic and native values are still of one moment', async () => {
  const registry = new Registry()
  let app: Awaited<ReturnType<typeof start>> | undefined
  new Gauge({
    name: 'jobs_waiting',
    help: 'Jobs waiting, read from a queue',
    registers: [registry],
    async collect() {
      // The queue answers later; meanwhile a request ends and is observed.
      await app?.inject({ url: '/fast' })
      this.set(2)
    },
  })
  app = await start('async-collect', { nativeHistograms: {} }, registry)
  try {
    await app.inject({ url: '/fast' })
    for (let scrape = 1; scrape <= 3; scrape++) {
      const series = await durationSeries(app)
      // The first request, and one finished during each scrape's read before this one's.
      assert.equal(countOf(series, 'GET', '/fast'), scrape)
      assertNativeForEvery(series)
    }
  } finally {
    await app.close()
  }
})
