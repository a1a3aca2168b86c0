// Native histograms end to end: the built service under PM2 (5 workers) with
// METRICS_NATIVE_HISTOGRAMS=true, a real Prometheus 3.5 scraping it in protobuf with native
// histograms enabled. Prometheus stores a native histogram per worker, histogram_quantile
// answers per worker from it, its exemplars come back, and through a pm2 reload the native
// counts Prometheus stored add up to exactly the requests answered.
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { after, before, test } from 'node:test'
import { httpGet, waitFor } from '../../harness/net'
import { type Pm2App, startPm2App } from '../../harness/pm2'
import {
  type PrometheusServer,
  scrapesPass,
  startNativeHistogramPrometheus,
} from '../../harness/prometheus'
import { allPanels, readDashboard, substitute } from '../../harness/stack'
import { increaseSince } from '../../harness/traffic-phases'

const WORKERS = 5
const SCRAPE_SECONDS = 1

let app: Pm2App
let prometheus: PrometheusServer

interface NativeSample {
  metric: Record<string, string>
  histogram?: [number, { count: string; sum: string }]
  histograms?: Array<[number, { count: string; sum: string }]>
  value?: [number, string]
}

/** The API's raw answer: the harness' query() knows float samples only. */
async function api(path: string, params: Record<string, string>): Promise<NativeSample[]> {
  const query = new URLSearchParams(params).toString()
  const res = await httpGet(`${prometheus.url}/api/v1/${path}?${query}`)
  const parsed = JSON.parse(res.body) as { status: string; data: unknown; error?: string }
  if (parsed.status !== 'success') throw new Error(`${path}: ${parsed.error ?? res.body}`)
  const data = parsed.data as { result?: NativeSample[] } | NativeSample[]
  return Array.isArray(data) ? data : (data.result ?? [])
}

/** Sends `n` requests to `path`, each traced, each on a fresh connection; returns the answered. */
async function traced(path: string, n: number): Promise<number> {
  let answered = 0
  for (let i = 0; i < n; i++) {
    const traceparent = `00-${randomBytes(16).toString('hex')}-${randomBytes(8).toString('hex')}-01`
    const res = await httpGet(`${app.baseUrl}${path}`, { headers: { traceparent } })
    if (res.status === 200) answered++
  }
  return answered
}

before(async () => {
  app = await startPm2App({ instances: WORKERS, env: { METRICS_NATIVE_HISTOGRAMS: 'true' } })
  await app.waitOnline(WORKERS)
  prometheus = await startNativeHistogramPrometheus(
    [{ name: 'webapp', port: app.port }],
    SCRAPE_SECONDS,
    1,
    ['exemplar-storage'],
  )
})
after(async () => {
  await prometheus?.stop()
  await app?.stop()
})

test('Prometheus 3.5 stores a native histogram per worker, with quantiles and exemplars', {
  timeout: 180_000,
}, async () => {
  const start = Date.now() / 1000 - 1
  await traced('/', 60)
  const selector = 'http_request_duration_seconds{job="webapp",route="/"}'
  const stored = await waitFor('a native histogram of every worker', async () => {
    const samples = await api('query', { query: selector })
    const ids = samples.filter((s) => s.histogram !== undefined).map((s) => s.metric.worker_id)
    return ids.length === WORKERS ? ids.sort() : undefined
  })
  assert.deepEqual(stored, ['0', '1', '2', '3', '4'])
  // The classic buckets are kept beside them.
  const classic = await api('query', { query: `count(${selector.replace('{', '_bucket{')})` })
  assert.ok(Number(classic[0]?.value?.[1]) > 0)

  await traced('/', 60)
  const quantiles = await waitFor('a p99 per worker from the native histograms', async () => {
    const samples = await api('query', {
      query: `histogram_quantile(0.99, sum by (worker_id) (rate(${selector}[1m])))`,
    })
    const finite = samples.filter((s) => Number.isFinite(Number(s.value?.[1])))
    return finite.length === WORKERS ? finite : undefined
  })
  for (const q of quantiles) assert.ok(Number(q.value?.[1]) > 0, JSON.stringify(q))

  const exemplars = await waitFor('native exemplars', async () => {
    const series = (await api('query_exemplars', {
      query: selector,
      start: String(start),
      end: String(Date.now() / 1000 + 1),
    })) as unknown as Array<{
      seriesLabels: Record<string, string>
      exemplars: Array<{ labels: Record<string, string> }>
    }>
    const withTrace = series.filter((s) =>
      s.exemplars.some((e) => /^[0-9a-f]{32}$/.test(e.labels.trace_id ?? '')),
    )
    return withTrace.length > 0 ? withTrace : undefined
  })
  assert.ok(exemplars.every((s) => s.seriesLabels.__name__ === 'http_request_duration_seconds'))
})

test('through a pm2 reload, the native counts stored add up to the requests answered', {
  timeout: 240_000,
}, async () => {
  const from = await scrapesPass(prometheus, 'webapp', SCRAPE_SECONDS, 1)
  let answered = await traced('/items/1', 100)
  const reload = app.pm2('reload', app.name)
  // Requests during the reload: each worker's old process serves until its successor takes over.
  answered += await traced('/items/1', 150)
  await reload
  await app.waitOnline(WORKERS)
  answered += await traced('/items/1', 100)
  const to = await scrapesPass(prometheus, 'webapp', SCRAPE_SECONDS, 2)
  const ms = Math.round((to - from + 0.5) * 1000)
  const series = await api('query', {
    query: `http_request_duration_seconds{job="webapp",route="/items/:id"}[${ms}ms]`,
    time: String(to),
  })
  let counted = 0
  const drops: string[] = []
  for (const s of series) {
    // A histogram's count, taken as the counter it is.
    const counts = (s.histograms ?? []).map(([at, h]) => [at, Number(h.count)] as const)
    const { delta, resets } = increaseSince(counts, from)
    counted += delta
    for (let i = 0; i < resets; i++) drops.push(JSON.stringify(s.metric))
  }
  assert.equal(series.length > 0, true)
  assert.deepEqual(drops, [])
  assert.equal(counted, answered)
})

test('the dashboard’s latency queries answer from the native histograms, for every worker', {
  timeout: 120_000,
}, async () => {
  const sub = {
    variables: { job: 'webapp', instance: '.*', worker: '.*', route: '.*' },
    rateInterval: '1m',
    range: '1800s',
  }
  const latency = allPanels(readDashboard())
    .flatMap((panel) => panel.targets ?? [])
    .map((target) => target.expr ?? '')
    .filter((expr) => expr.startsWith('histogram_quantile('))
  assert.ok(latency.length >= 4, latency.join('\n'))
  for (const expr of latency) {
    // The native half alone (left of `or`) must answer: the classic half is the fallback.
    const native = substitute(expr.slice(0, expr.indexOf(' or ')), sub)
    assert.match(native, /http_request_duration_seconds\{/)
    const perWorker = /sum by \([^)]*worker_id/.test(native)
    const samples = await waitFor(`the native half of ${expr.slice(0, 60)}…`, async () => {
      // Traffic across scrapes, so that every worker's rate is above zero.
      await traced('/', 10)
      const found = (await api('query', { query: native })).filter((s) =>
        Number.isFinite(Number(s.value?.[1])),
      )
      return found.length === (perWorker ? WORKERS : 1) ? found : undefined
    })
    if (perWorker) {
      assert.deepEqual(samples.map((s) => s.metric.worker_id).sort(), ['0', '1', '2', '3', '4'])
    }
  }
  // The heatmap draws the native histogram itself: one histogram sample, no classic buckets.
  const heatmaps = allPanels(readDashboard()).filter((panel) => panel.type === 'heatmap')
  assert.equal(heatmaps.length, 1)
  const distribution = substitute(heatmaps[0].targets?.[0]?.expr ?? '', sub)
  const cells = await waitFor('the heatmap’s native histogram', async () => {
    await traced('/', 10)
    const found = await api('query', { query: distribution })
    return found.length > 0 ? found : undefined
  })
  assert.equal(cells.length, 1, JSON.stringify(cells.map((c) => c.metric)))
  assert.ok(cells[0].histogram !== undefined, 'a native histogram sample')
  assert.equal(cells[0].metric.le, undefined)
})
