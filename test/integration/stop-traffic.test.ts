// Stops under the traffic a service really gets: keep-alive clients sending 200s, 404s (matched
// and unmatched), 400s and slow requests, through `pm2 reload` (alone and with --update-env),
// `pm2 restart`, stop + start and scale 8 → 3, against real PM2 and a real Prometheus scraping
// every second. What must hold: every answered request is counted once in what Prometheus stored, no worker exits with a
// non-zero code, no client meets a reset, and after the scale exactly PM2's live workers are
// expected.
import assert from 'node:assert/strict'
import { after, before, test } from 'node:test'
import { gaugeValue, scrape } from '../../harness/exposition'
import { describeTally } from '../../harness/load'
import { sleep } from '../../harness/net'
import { type Pm2App, startPm2App } from '../../harness/pm2'
import { type PrometheusServer, startPrometheus } from '../../harness/prometheus'
import {
  abnormalExits,
  type TrafficPhases,
  trafficPhases,
  workerErrors,
} from '../../harness/traffic-phases'

const SCRAPE_INTERVAL_SECONDS = 1

let app: Pm2App
let prometheus: PrometheusServer
let traffic: TrafficPhases

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
  traffic = trafficPhases({
    app,
    prometheus,
    job: 'webapp',
    intervalSeconds: SCRAPE_INTERVAL_SECONDS,
  })
})
after(async () => {
  await prometheus?.stop()
  await app?.stop()
})

test('reload, restart, stop + start, reload --update-env and scale 8 → 3 under mixed keep-alive traffic lose and double nothing', {
  timeout: 600_000,
}, async (t) => {
  const { phase, scrapesPass } = traffic
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

  assert.deepEqual(abnormalExits(app), [], workerErrors(app))
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
