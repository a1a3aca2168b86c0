// Exemplars end to end: requests sent with a W3C `traceparent` to the PM2 app (3 workers), a
// real Prometheus 2.42 with exemplar storage scraping it through the cluster view (OpenMetrics,
// which it negotiates), and `/api/v1/query_exemplars` answering each worker's trace id.
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { after, before, test } from 'node:test'
import { httpGet, waitFor } from '../../harness/net'
import { type Pm2App, startPm2App } from '../../harness/pm2'
import { type PrometheusServer, startPrometheus } from '../../harness/prometheus'

const WORKERS = 3
/** Traced requests at most: enough for PM2's round robin to reach every worker. */
const MAX_REQUESTS = 30

interface ExemplarSeries {
  seriesLabels: Record<string, string>
  exemplars: Array<{ labels: Record<string, string>; value: string; timestamp: number }>
}

let app: Pm2App
let prometheus: PrometheusServer

before(async () => {
  app = await startPm2App({ instances: WORKERS })
  await app.waitOnline(WORKERS)
  prometheus = await startPrometheus(
    `
global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: webapp
    static_configs:
      - targets: ['127.0.0.1:${app.port}']
`,
    {},
    ['--enable-feature=exemplar-storage'],
  )
})
after(async () => {
  await prometheus?.stop()
  await app?.stop()
})

async function queryExemplars(query: string, start: number, end: number) {
  const res = await httpGet(
    `${prometheus.url}/api/v1/query_exemplars?query=${encodeURIComponent(query)}&start=${start}&end=${end}`,
  )
  const parsed = JSON.parse(res.body) as { status: string; data: ExemplarSeries[]; error?: string }
  if (parsed.status !== 'success') throw new Error(`query_exemplars: ${parsed.error ?? res.body}`)
  return parsed.data
}

test('Prometheus stores every worker’s trace ids as exemplars of the request histogram', {
  timeout: 120_000,
}, async () => {
  const start = Date.now() / 1000 - 1
  // The newest trace id each worker answered: the exemplar its series keeps after the last one.
  const lastTraceOf = new Map<string, string>()
  for (let i = 0; i < MAX_REQUESTS && lastTraceOf.size < WORKERS; i++) {
    const traceId = randomBytes(16).toString('hex')
    const traceparent = `00-${traceId}-${randomBytes(8).toString('hex')}-01`
    // A fresh connection each: PM2 hands connections to the workers in turn.
    const res = await httpGet(`${app.baseUrl}/`, { headers: { traceparent } })
    assert.equal(res.status, 200)
    lastTraceOf.set((JSON.parse(res.body) as { worker_id: string }).worker_id, traceId)
  }
  assert.equal(
    lastTraceOf.size,
    WORKERS,
    `traced requests reached workers ${[...lastTraceOf.keys()]}`,
  )

  const found = await waitFor(
    'each worker’s last trace id in query_exemplars',
    async () => {
      const series = await queryExemplars(
        'http_request_duration_seconds_bucket{job="webapp",route="/"}',
        start,
        Date.now() / 1000 + 1,
      )
      const byWorker = new Map<string, Set<string>>()
      for (const s of series) {
        const ids = byWorker.get(s.seriesLabels.worker_id) ?? new Set()
        for (const e of s.exemplars) ids.add(e.labels.trace_id)
        byWorker.set(s.seriesLabels.worker_id, ids)
      }
      const all = [...lastTraceOf].every(([worker, id]) => byWorker.get(worker)?.has(id))
      return all ? series : undefined
    },
    { timeoutMs: 30_000, intervalMs: 500 },
  )
  for (const s of found) {
    assert.equal(s.seriesLabels.__name__, 'http_request_duration_seconds_bucket')
    for (const e of s.exemplars) {
      assert.match(e.labels.trace_id, /^[0-9a-f]{32}$/)
      // An exemplar is the duration of its request, at most its bucket's bound.
      assert.ok(Number(e.value) > 0 && Number(e.value) <= Number(s.seriesLabels.le), e.value)
    }
  }
  // The counter keeps its own exemplars too.
  const counted = await queryExemplars(
    'http_requests_total{job="webapp",route="/"}',
    start,
    Date.now() / 1000 + 1,
  )
  const counterIds = new Set(counted.flatMap((s) => s.exemplars.map((e) => e.labels.trace_id)))
  for (const id of lastTraceOf.values()) assert.ok(counterIds.has(id), id)
})
