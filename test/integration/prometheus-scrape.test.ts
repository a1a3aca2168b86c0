// A real Prometheus scraping the PM2 app every second with its default keep-alive (the setup
// that pinned every scrape to one worker before the cluster view): every scrape holds all 5
// workers and the requests Prometheus counts match the requests sent.
import assert from 'node:assert/strict'
import { after, before, test } from 'node:test'
import { describeTally, startLoad } from '../helpers/load'
import { httpGet, waitFor } from '../helpers/net'
import { type Pm2App, startPm2App } from '../helpers/pm2'
import { type PrometheusServer, startPrometheus } from '../helpers/prometheus'

const REQUESTS = 4000
const RATE = 200

let app: Pm2App
let prometheus: PrometheusServer

before(async () => {
  app = await startPm2App({ instances: 5 })
  prometheus = await startPrometheus(`
global:
  scrape_interval: 1s
  scrape_timeout: 900ms
scrape_configs:
  - job_name: webapp
    static_configs:
      - targets: ['127.0.0.1:${app.port}']
`)
})

after(async () => {
  await prometheus?.stop()
  await app?.stop()
})

const value = (samples: Array<{ value?: [number, string] }>) =>
  Number(samples[0]?.value?.[1] ?? Number.NaN)

test('every scrape holds 5 workers and sum(increase()) matches the requests sent within 1 %', async (t) => {
  await waitFor(
    'the first scrapes',
    async () => value(await prometheus.query('up{job="webapp"}')) === 1,
  )
  // The time of Prometheus' latest scrape of the service, in seconds.
  const lastScrape = async () => value(await prometheus.query('timestamp(up{job="webapp"})'))
  // Warm-up: every series of the route exists before the measured window opens, so increase()
  // measures growth only, never a series' first appearance.
  const warmUp = await startLoad({
    url: app.baseUrl,
    path: '/items/1',
    rate: 100,
    durationSeconds: 1,
  }).done
  assert.equal(warmUp.statuses.get(200), 100, describeTally(warmUp))
  const warmedAt = Date.now() / 1000
  // The window opens on a scrape taken after the warm-up.
  const t0 = await waitFor('a scrape after the warm-up', async () => {
    const at = await lastScrape()
    return at > warmedAt + 0.05 ? at : undefined
  })
  const start = t0

  const load = startLoad({
    url: app.baseUrl,
    path: '/items/1',
    rate: RATE,
    durationSeconds: REQUESTS / RATE,
  })
  const result = await load.done
  assert.equal(result.errors, 0, describeTally(result))
  assert.equal(result.statuses.get(200), REQUESTS, describeTally(result))
  const loadEndedAt = Date.now() / 1000
  // The window closes on a scrape taken a little after the last request.
  const end = await waitFor('a scrape after the load', async () => {
    const at = await lastScrape()
    return at > loadEndedAt + 1 ? at : undefined
  })
  // Both ends of the window fall on scrapes, so Prometheus has nothing to extrapolate.
  const window = `${Math.round((end - start) * 1000)}ms`

  // Every scrape over the run saw all 5 workers and none missing.
  const answered = await prometheus.queryRange(
    'cluster_metrics_workers_answered{job="webapp"}',
    start,
    end,
    1,
  )
  const samples = answered[0]?.values ?? []
  assert.ok(
    samples.length >= (end - start) * 0.8,
    `only ${samples.length} scrapes in ${end - start} s`,
  )
  for (const [, v] of samples) assert.equal(v, '5')
  assert.equal(
    value(
      await prometheus.query(`min_over_time(cluster_metrics_workers_answered[${window}])`, end),
    ),
    5,
  )
  const perWorkerSamples = await prometheus.query(
    `count_over_time(process_start_time_seconds{job="webapp"}[${window}])`,
    end,
  )
  assert.equal(perWorkerSamples.length, 5)
  const scrapes = value(await prometheus.query(`count_over_time(up{job="webapp"}[${window}])`, end))
  for (const s of perWorkerSamples)
    assert.equal(Number(s.value?.[1]), scrapes, `worker ${s.metric.worker_id}`)

  // The counts Prometheus holds match what was sent: exactly at the end, and through increase().
  const total = value(
    await prometheus.query('sum(http_requests_total{job="webapp",route="/items/:id"})', end),
  )
  assert.equal(total, REQUESTS + 100)
  const increase = value(
    await prometheus.query(
      `sum(increase(http_requests_total{job="webapp",route="/items/:id"}[${window}]))`,
      end,
    ),
  )
  const error = Math.abs(increase - REQUESTS) / REQUESTS
  t.diagnostic(
    `${samples.length} scrapes, all with 5 workers; sum(increase()) ${increase.toFixed(1)} for ${REQUESTS} sent (${(error * 100).toFixed(2)} %)`,
  )
  assert.ok(
    error <= 0.01,
    `sum(increase()) = ${increase.toFixed(1)} for ${REQUESTS} sent (${(error * 100).toFixed(2)} %)`,
  )
  const perWorker = await prometheus.query(
    `sum by (worker_id) (increase(http_requests_total{job="webapp",route="/items/:id"}[${window}]))`,
    end,
  )
  assert.equal(perWorker.length, 5, 'every worker served part of the load')
  // The scrape itself never went to one worker only: Prometheus' target answered every time.
  const [target] = await prometheus.targets()
  assert.equal(target.health, 'up')
  const health = await httpGet(`${app.baseUrl}/health`)
  assert.equal(health.status, 200)
})
