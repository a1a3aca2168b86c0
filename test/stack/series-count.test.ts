// docs/capacity.md's series-per-pod formula against a real /metrics of the PM2 app (5 workers):
// after every worker has served each of T (method, route, status) combinations, one scrape holds
//   W × T × (B + 4)   request series: per combination 1 counter + B buckets, +Inf, _sum, _count
// + 2W + 6            the cluster view's own series (cluster_metrics_*)
// + W × D             Node and process metrics, D per worker (measured here, reported)
import assert from 'node:assert/strict'
import { after, before, test } from 'node:test'
import { scrape } from '../../harness/exposition'
import { httpGet } from '../../harness/net'
import { type Pm2App, startPm2App } from '../../harness/pm2'
import { configSchema, parseBuckets } from '../../src/config'

const W = 5
/** Requests whose (method, route, status) differ: T combinations. */
const COMBINATIONS: Array<{ method: string; path: string; body?: string }> = [
  { method: 'GET', path: '/' },
  { method: 'GET', path: '/health' },
  { method: 'GET', path: '/items/1' },
  { method: 'GET', path: '/items/99' },
  { method: 'POST', path: '/items', body: '{"name":"fig"}' },
  { method: 'GET', path: '/error' },
  { method: 'GET', path: '/no-such-route' },
]
const T = COMBINATIONS.length
const B = parseBuckets(configSchema.properties.METRICS_BUCKETS.default).length
/** Each request on a fresh connection, W × ROUNDS times: PM2 hands connections round-robin. */
const ROUNDS = 3

let app: Pm2App
let lines: string[]

before(async () => {
  app = await startPm2App({ instances: W })
  for (const { method, path, body } of COMBINATIONS) {
    for (let i = 0; i < W * ROUNDS; i++) {
      await httpGet(`${app.baseUrl}${path}`, {
        method,
        body,
        headers: body ? { 'content-type': 'application/json' } : {},
      })
    }
  }
  lines = (await scrape(app.baseUrl)).split('\n').filter((l) => l !== '' && !l.startsWith('#'))
})

after(async () => {
  await app?.stop()
})

const series = (prefix: string) => lines.filter((l) => l.startsWith(prefix))
const workerOf = (line: string) => /worker_id="(\d+)"/.exec(line)?.[1]

test('every worker served every combination', () => {
  const combos = series('http_requests_total{')
  for (let w = 0; w < W; w++) {
    assert.equal(combos.filter((l) => workerOf(l) === String(w)).length, T, `worker ${w}`)
  }
})

test('request series: W × T × (B + 4)', () => {
  assert.equal(B, 12)
  const counter = series('http_requests_total{').length
  const histogram = series('http_request_duration_seconds_').length
  assert.equal(counter, W * T)
  assert.equal(histogram, W * T * (B + 3))
  assert.equal(counter + histogram, W * T * (B + 4))
})

test('the cluster view adds 2W + 6 series', () => {
  assert.equal(series('cluster_metrics_').length, 2 * W + 6)
  assert.equal(series('cluster_metrics_worker_up{').length, W)
  assert.equal(series('cluster_metrics_scrape_timeout_clamped_total{').length, W)
})

test('the rest is per worker: Node and process metrics, D each', (t) => {
  const rest = lines.filter(
    (l) =>
      !l.startsWith('http_request') && !l.startsWith('cluster_metrics_') && !l.startsWith('up'),
  )
  const perWorker = new Map<string, number>()
  for (const line of rest) {
    const worker = workerOf(line)
    assert.ok(worker !== undefined, `a series without worker_id: ${line}`)
    perWorker.set(worker, (perWorker.get(worker) ?? 0) + 1)
  }
  assert.equal(perWorker.size, W)
  const d = [...perWorker.values()]
  t.diagnostic(`D per worker: ${d.join(', ')}; series in the scrape: ${lines.length}`)
  assert.equal(lines.length, W * T * (B + 4) + 2 * W + 6 + d.reduce((a, b) => a + b, 0))
})
