// An anonymous client that sends `X-Prometheus-Scrape-Timeout-Seconds: 0.001` sixty times a
// second cannot make a real Prometheus 3.5 store a partial scrape: the app under PM2 (five
// workers, all healthy, about 1,100 series each, so that no sibling answers within 1 ms) raises that header to the gather's floor, and a gather made under it
// never answers Prometheus' own scrapes unless it is whole. Every `cluster_metrics_worker_up`
// sample Prometheus stored is 1.
import assert from 'node:assert/strict'
import { Agent } from 'node:http'
import { join } from 'node:path'
import { test } from 'node:test'
import { httpGet, sleep, waitFor } from '../../harness/net'
import { ROOT, startPm2App } from '../../harness/pm2'
import { startPrometheus } from '../../harness/prometheus'

const WORKERS = 5
const HOSTILE_PER_SECOND = 60
const STORED_SCRAPES = 20

test('a 60/s loop of 1 ms scrape deadlines leaves no partial sample in Prometheus', {
  timeout: 300_000,
}, async (t) => {
  // The bench's process file: the service as deployed, its registry filled with 20 routes' series.
  const app = await startPm2App({
    instances: WORKERS,
    ecosystem: join(ROOT, 'bench', 'cluster', 'ecosystem.config.js'),
    env: { BENCH_SERIES_ROUTES: '20', BENCH_SERIES_STATUS_CODES: '3' },
  })
  t.after(() => app.stop())
  await app.waitOnline(WORKERS)
  await waitFor(
    'every worker in the gather',
    async () => {
      const body = (await httpGet(`${app.baseUrl}/metrics`)).body
      return body.includes(`cluster_metrics_workers_answered ${WORKERS}\n`)
    },
    { timeoutMs: 30_000, intervalMs: 200 },
  )

  // The hostile loop, as Prometheus would ask (OpenMetrics, gzip), so it shares a format with it.
  let stop = false
  let sent = 0
  // A connection per request: PM2 balances connections, so every worker gets its share.
  const agent = new Agent({ keepAlive: false })
  const hostile = (async () => {
    const started = performance.now()
    while (!stop) {
      void httpGet(`${app.baseUrl}/metrics`, {
        agent,
        headers: {
          accept: 'application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5',
          'accept-encoding': 'gzip',
          'x-prometheus-scrape-timeout-seconds': '0.001',
        },
      }).catch(() => {})
      sent++
      const next = started + (sent * 1000) / HOSTILE_PER_SECOND
      await sleep(Math.max(0, next - performance.now()))
    }
  })()
  t.after(async () => {
    stop = true
    await hostile
    agent.destroy()
  })

  const prometheus = await startPrometheus(
    [
      'global:',
      '  scrape_interval: 1s',
      '  scrape_timeout: 1s',
      'scrape_configs:',
      '  - job_name: app',
      `    static_configs: [{ targets: ['127.0.0.1:${app.port}'] }]`,
      '',
    ].join('\n'),
  )
  t.after(() => prometheus.stop())

  const stored = await waitFor(
    `${STORED_SCRAPES} scrapes stored for every worker`,
    async () => {
      const series = await prometheus.query('cluster_metrics_worker_up[5m]')
      const enough =
        series.length === WORKERS && series.every((s) => (s.values?.length ?? 0) >= STORED_SCRAPES)
      return enough ? series : undefined
    },
    { timeoutMs: 120_000, intervalMs: 1000 },
  )
  stop = true
  await hostile

  // The hostile loop really ran beside Prometheus.
  assert.ok(sent >= HOSTILE_PER_SECOND * STORED_SCRAPES * 0.5, `${sent} hostile requests sent`)
  for (const series of stored) {
    const partial = (series.values ?? []).filter(([, value]) => value !== '1')
    assert.deepEqual(partial, [], `worker ${series.metric.worker_id}: samples with worker_up 0`)
  }
  const clamped = await prometheus.query('sum(cluster_metrics_scrape_timeout_clamped_total)')
  assert.ok(Number(clamped[0]?.value?.[1]) > 0, 'the hostile requests were counted as clamped')
})
