// Stops under the traffic a service really gets: keep-alive clients sending 200s, 404s (matched
// and unmatched), 400s and slow requests, through `pm2 reload` (alone and with --update-env),
// `pm2 restart`, stop + start and scale 8 → 3, against real PM2 and a real Prometheus scraping
// every second. What must hold: every answered request is counted once in what Prometheus stored, no worker exits with a
// non-zero code, no client meets a reset, and after the scale exactly PM2's live workers are
// expected.
import assert from 'node:assert/strict'
import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { after, before, test } from 'node:test'
import { gaugeValue, scrape } from '../../harness/exposition'
import { describeTally, type LoadTally, startKeepAliveLoad } from '../../harness/load'
import { sleep } from '../../harness/net'
import { type Pm2App, startPm2App } from '../../harness/pm2'
import {
  type PrometheusServer,
  startPrometheus,
  scrapesPass as waitForScrapes,
} from '../../harness/prometheus'

const SCRAPE_INTERVAL_SECONDS = 1
/** One request in six is slow, up to 2.5 s: some are in flight whenever a stop begins. */
const TRAFFIC = [
  '/items/1',
  '/items/99', // 404 from the handler
  '/no-such-route', // 404 from the router
  '/items/abc', // 400 from the schema
  '/',
  '/slow?ms=2500',
  '/items/2',
  '/slow?ms=600',
  '/items/abc',
  '/no-such-route',
  '/',
  '/slow?ms=1200',
]

let app: Pm2App
let prometheus: PrometheusServer

before(async () => {
  app = await startPm2App({ instances: 5, env: { METRICS_GATHER_TIMEOUT_MS: '5000' } })
  prometheus = await startPrometheus(`
global:
  scrape_interval: ${SCRAPE_INTERVAL_SECONDS}s
  scrape_timeout: 1s
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

/** Runs `operation` under the traffic mix; returns what the clients saw. */
async function underTraffic(operation: () => Promise<void>): Promise<LoadTally> {
  const load = startKeepAliveLoad({
    url: app.baseUrl,
    paths: TRAFFIC,
    rate: 60,
    durationSeconds: 120, // bound only: stopped once the operation is done
    connections: 12,
  })
  await sleep(2000)
  await operation()
  await sleep(2000)
  load.stop()
  return load.done
}

/** Worker exits PM2 logged with a code other than 0 since the app started. */
function abnormalExits(): string[] {
  const log = readFileSync(join(app.home, 'pm2.log'), 'utf8')
  return log.split('\n').filter((line) => /exited with code \[(?!0\])\d+\]/.test(line))
}

/** The workers' own error lines, to explain an abnormal exit. */
function workerErrors(): string {
  const logs = join(app.home, 'logs')
  return readdirSync(logs)
    .filter((name) => name.endsWith('.log'))
    .map((name) => readFileSync(join(logs, name), 'utf8'))
    .join('\n')
    .slice(-4000)
}

/**
 * Requests counted in Prometheus between two scrapes: the sum of every request series' raw
 * deltas, as increase() adds them (a drop counts the whole new value), from each series' value
 * at the first scrape (0 for a series that appears later).
 */
async function countedBetween(
  from: number,
  to: number,
): Promise<{ deltas: number; drops: string[] }> {
  const ms = Math.round((to - from + 0.5) * 1000)
  const series = await prometheus.query(`http_requests_total{route!="/health"}[${ms}ms]`, to)
  let deltas = 0
  const drops: string[] = []
  for (const s of series) {
    const samples = (s.values ?? []).map(([at, raw]) => [Number(at), Number(raw)] as const)
    let previous = 0
    for (const [i, [at, v]] of samples.entries()) {
      if (i === 0 && at <= from + 0.1) {
        previous = v
        continue
      }
      if (v < previous) drops.push(JSON.stringify(s.metric))
      deltas += v >= previous ? v - previous : v
      previous = v
    }
  }
  return { deltas, drops }
}

function addTallies(a: LoadTally, b: LoadTally): LoadTally {
  const statuses = new Map(a.statuses)
  for (const [status, n] of b.statuses) statuses.set(status, (statuses.get(status) ?? 0) + n)
  const errorCodes = new Map(a.errorCodes)
  for (const [code, n] of b.errorCodes) errorCodes.set(code, (errorCodes.get(code) ?? 0) + n)
  return {
    sent: a.sent + b.sent,
    statuses,
    ok: a.ok + b.ok,
    non2xx: a.non2xx + b.non2xx,
    errors: a.errors + b.errors,
    timeouts: a.timeouts + b.timeouts,
    errorCodes,
    unanswered: a.unanswered + b.unanswered,
  }
}

interface Phase {
  name: string
  answered: number
  counted: number
  drops: string[]
  tally: LoadTally
}

/** Runs one operation under traffic and reads back what Prometheus stored for it. */
async function phase(
  name: string,
  operation: () => Promise<void>,
  thenWithoutTraffic?: () => Promise<void>,
): Promise<Phase> {
  const from = await scrapesPass(1)
  let tally = await underTraffic(operation)
  if (thenWithoutTraffic !== undefined) {
    await thenWithoutTraffic()
    tally = addTallies(tally, await underTraffic(async () => {}))
  }
  // Two scrapes after the traffic: every process of every worker has been read since.
  const to = await scrapesPass(2)
  const { deltas, drops } = await countedBetween(from, to)
  const answered = [...tally.statuses.values()].reduce((a, b) => a + b, 0)
  return { name, answered, counted: deltas, drops, tally }
}

test('reload, restart, stop + start, reload --update-env and scale 8 → 3 under mixed keep-alive traffic lose and double nothing', {
  timeout: 600_000,
}, async (t) => {
  const reload = await phase('reload', async () => {
    await app.pm2('reload', app.name)
    await app.waitOnline(5)
  })
  const restart = await phase('restart', async () => {
    await app.pm2('restart', app.name)
    await app.waitOnline(5)
  })
  // No client is sent to a stopped app: the traffic runs up to the stop and after the start.
  const stopStart = await phase(
    'stop + start',
    async () => {},
    async () => {
      await app.pm2('stop', app.name)
      await scrapesPass(1)
      await app.pm2('start', app.name)
      await app.waitOnline(5)
    },
  )
  const updateEnv = await phase('reload --update-env', async () => {
    await app.pm2('reload', app.name, '--update-env')
    await app.waitOnline(5)
  })
  const scale = await phase('scale 8 → 3', async () => {
    await app.pm2('scale', app.name, '8')
    await app.waitOnline(8)
    await sleep(2000)
    await app.pm2('scale', app.name, '3')
    await app.waitOnline(3)
  })
  const phases = [reload, restart, stopStart, updateEnv, scale]
  for (const p of phases) {
    t.diagnostic(
      `${p.name}: answered ${p.answered}, counted ${p.counted}, ratio ${(p.counted / p.answered).toFixed(4)}; ${describeTally(p.tally)}`,
    )
  }

  assert.deepEqual(abnormalExits(), [], workerErrors())
  for (const p of phases) {
    assert.equal(p.tally.errors + p.tally.unanswered, 0, `${p.name}: ${describeTally(p.tally)}`)
    // The mix really reached the workers: every kind of answer came back.
    for (const status of [200, 400, 404])
      assert.ok(p.tally.statuses.get(status), `${p.name}: ${status}`)
    assert.deepEqual(p.drops, [], p.name)
  }
  // A replaced process hands its last counts to its successor, and a worker removed by the
  // scale down to the workers that stay, which serve them: exact within 0.1 %.
  for (const p of phases) {
    const ratio = p.counted / p.answered
    assert.ok(Math.abs(ratio - 1) <= 0.001, `${p.name}: counted ÷ answered = ${ratio}`)
  }

  // After the scale, every scrape expects exactly the workers PM2 runs.
  const live = (await app.list()).filter((p) => p.status === 'online').map((p) => p.workerId)
  assert.equal(live.length, 3)
  for (let i = 0; i < 5; i++) {
    const text = await scrape(app.baseUrl)
    assert.equal(gaugeValue(text, 'cluster_metrics_workers_expected'), 3, text.slice(-600))
    assert.equal(gaugeValue(text, 'cluster_metrics_workers_answered'), 3)
  }
})
