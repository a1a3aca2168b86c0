// What people do to a live PM2 app, against real PM2 and a real Prometheus scraping at the
// project's 5 s interval: reloads under steady load must lose no count and never step a
// worker's counter back; `pm2 scale` changes who is expected; a deleted socket directory heals.
import assert from 'node:assert/strict'
import { readdirSync, rmSync } from 'node:fs'
import { after, before, describe, test } from 'node:test'
import { gaugeValue, parseExposition, scrape } from '../../harness/exposition'
import { describeTally, startKeepAliveLoad } from '../../harness/load'
import { waitFor } from '../../harness/net'
import { type Pm2App, startPm2App } from '../../harness/pm2'
import {
  type PrometheusServer,
  startPrometheus,
  scrapesPass as waitForScrapes,
} from '../../harness/prometheus'
import { workerIdOfLink } from '../../packages/plugin/src/run-dir/socket-paths'

const SCRAPE_INTERVAL_SECONDS = 5
const ROUTE = '/items/:id'

let app: Pm2App
let prometheus: PrometheusServer

before(async () => {
  // A generous gather deadline: a worker missing from a scrape here means it was not there,
  // not that a loaded machine was slow to answer.
  app = await startPm2App({ instances: 5, env: { METRICS_GATHER_TIMEOUT_MS: '5000' } })
  prometheus = await startPrometheus(`
global:
  scrape_interval: ${SCRAPE_INTERVAL_SECONDS}s
  scrape_timeout: 4s
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

/** Waits until Prometheus has scraped the app `count` more times; returns the newest scrape's time. */
function scrapesPass(count: number): Promise<number> {
  return waitForScrapes(prometheus, 'webapp', SCRAPE_INTERVAL_SECONDS, count)
}

/** Every stored sample of each series of `metric` on ROUTE between two scrape times. */
async function stored(metric: string, from: number, to: number) {
  const seconds = Math.ceil(to - from) + 1
  const series = await prometheus.query(`${metric}{route="${ROUTE}"}[${seconds}s]`, to)
  return series.map((s) => ({
    labels: s.metric,
    values: (s.values ?? []).map(([, v]) => Number(v)),
  }))
}

describe('pm2 operations on a live app', () => {
  test('reloads under steady load: every answered request is counted once, no counter steps back', {
    timeout: 300_000,
  }, async (t) => {
    const baselineAt = await scrapesPass(1)
    const load = startKeepAliveLoad({
      url: app.baseUrl,
      path: '/items/2',
      rate: 100,
      // Stopped once the reloads are done; this only bounds it.
      durationSeconds: 120,
      connections: 10,
    })
    await scrapesPass(1)
    await app.pm2('reload', app.name)
    await app.waitOnline(5)
    await scrapesPass(1)
    for (let i = 0; i < 3; i++) {
      await app.pm2('reload', app.name)
      await app.waitOnline(5)
    }
    load.stop()
    const tally = await load.done
    // Two scrapes after the load: every process of every worker has been read since.
    const finalAt = await scrapesPass(2)

    const counters = await stored('http_requests_total', baselineAt, finalAt)
    const counts = await stored('http_request_duration_seconds_count', baselineAt, finalAt)
    const decreases = counters.filter((s) => s.values.some((v, i) => i > 0 && v < s.values[i - 1]))
    // Sum of raw deltas, as increase() adds them (a drop counts the whole new value again).
    let deltas = 0
    for (const { values } of counters) {
      let previous = 0 // the route's series did not exist before the load started
      for (const v of values) {
        deltas += v >= previous ? v - previous : v
        previous = v
      }
    }
    const finalCounter = new Map(counters.map((s) => [s.labels.worker_id, s.values.at(-1)]))
    const finalCount = new Map(counts.map((s) => [s.labels.worker_id, s.values.at(-1)]))
    // What the reloads cost in scrapes: those in which a worker did not answer.
    const seconds = Math.ceil(finalAt - baselineAt) + 1
    const raw = async (expr: string) =>
      ((await prometheus.query(`${expr}[${seconds}s]`, finalAt))[0]?.values ?? []).map(([, v]) =>
        Number(v),
      )
    const answered = await raw('cluster_metrics_workers_answered')
    const expected = await raw('cluster_metrics_workers_expected')
    const partial = answered.filter((n, i) => n < expected[i]).length
    t.diagnostic(
      `load: ${describeTally(tally)}; raw deltas ${deltas}; series ${counters.length}; ` +
        `scrapes ${answered.length}, partial ${partial}`,
    )

    assert.equal(tally.errors + tally.non2xx + tally.unanswered, 0, describeTally(tally))
    assert.deepEqual(decreases, [])
    assert.equal(deltas, tally.ok)
    assert.deepEqual(finalCount, finalCounter)
  })

  test('pm2 scale: every scrape expects and shows exactly the live workers', {
    timeout: 120_000,
  }, async () => {
    for (const size of [3, 7]) {
      await app.pm2('scale', app.name, String(size))
      const live = (await app.waitOnline(size)).map((p) => p.workerId).sort()
      await waitFor(`a scrape of the ${size} live workers`, async () => {
        const text = await scrape(app.baseUrl)
        return (
          gaugeValue(text, 'cluster_metrics_workers_answered') === size &&
          gaugeValue(text, 'cluster_metrics_workers_expected') === size
        )
      })
      for (let i = 0; i < 10; i++) {
        const families = parseExposition(await scrape(app.baseUrl))
        const up = families.find((f) => f.name === 'cluster_metrics_worker_up')?.metrics ?? []
        const started = families.find((f) => f.name === 'process_start_time_seconds')?.metrics ?? []
        assert.deepEqual(
          up.map((m) => `${m.labels?.worker_id}=${m.value}`).sort(),
          live.map((id) => `${id}=1`).sort(),
        )
        assert.deepEqual(started.map((m) => m.labels?.worker_id).sort(), live)
      }
    }
  })

  test('a deleted socket directory is recreated without a reload', {
    timeout: 60_000,
  }, async () => {
    const size = (await app.list()).filter((p) => p.status === 'online').length
    // The workers may recreate files while rm runs, as after a temp cleaner: retry as rm -rf would.
    rmSync(app.socketDir, { recursive: true, force: true, maxRetries: 20, retryDelay: 10 })
    // The cause: every worker has recreated its link (the answering worker always counts
    // itself, so a scrape alone cannot tell).
    await waitFor('every worker to recreate its link', async () => {
      const links = readdirSync(app.socketDir).filter((name) => workerIdOfLink(name) !== undefined)
      return links.length === size
    })
    for (let i = 0; i < 5; i++) {
      const text = await scrape(app.baseUrl)
      const health = text.split('\n').filter((line) => line.startsWith('cluster_metrics_'))
      assert.equal(gaugeValue(text, 'cluster_metrics_workers_expected'), size, health.join('\n'))
      assert.equal(gaugeValue(text, 'cluster_metrics_workers_answered'), size, health.join('\n'))
    }
  })
})
