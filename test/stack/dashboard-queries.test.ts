// End to end: the built service under real PM2 (5 workers), a real Prometheus running the
// project's prometheus.yml and rules, a bounded route mix of load, then every query of the
// committed dashboard, Grafana variables substituted, through Prometheus' HTTP API.
import assert from 'node:assert/strict'
import { after, before, test } from 'node:test'
import { waitFor } from '../helpers/net'
import { type Pm2App, startPm2App } from '../helpers/pm2'
import { type PrometheusServer, type PromSample, startPrometheus } from '../helpers/prometheus'
import {
  allPanels,
  type Dashboard,
  driveRouteMix,
  loopbackPrometheusConfig,
  PROMETHEUS_CONFIG,
  parseLabelValues,
  readDashboard,
  readYaml,
  type Substitution,
  substitute,
} from './stack'

const WORKERS = ['0', '1', '2', '3', '4']
const LOAD_RATE = 150
const LOAD_SECONDS = 35

let app: Pm2App
let prom: PrometheusServer
let dashboard: Dashboard
let evalTime: number
let all: Substitution
let loadSent = 0

/** Grafana's $__rate_interval for a short range: 4 x the datasource's scrape interval. */
function rateIntervalFromConfig(): string {
  const config = readYaml<{ global: { scrape_interval: string } }>(PROMETHEUS_CONFIG)
  const match = /^(\d+)s$/.exec(config.global.scrape_interval)
  assert.ok(match, `scrape_interval in seconds, got ${config.global.scrape_interval}`)
  return `${4 * Number(match[1])}s`
}

const workerIdsOf = (samples: PromSample[]) =>
  [...new Set(samples.map((s) => s.metric.worker_id))].sort()

const finiteValues = (sample: PromSample) =>
  [...(sample.values ?? []), ...(sample.value ? [sample.value] : [])]
    .map(([, v]) => Number(v))
    .filter(Number.isFinite)

before(async () => {
  dashboard = readDashboard()
  app = await startPm2App({ instances: 5 })
  prom = await startPrometheus(loopbackPrometheusConfig(`127.0.0.1:${app.port}`))

  // The cluster view is complete before any load: one target, five workers answering.
  await waitFor(
    'Prometheus to scrape all 5 workers',
    async () => {
      const answered = await prom.query('cluster_metrics_workers_answered{job="webapp"}')
      return answered.length === 1 && answered[0].value?.[1] === '5'
    },
    { timeoutMs: 60_000, intervalMs: 1000 },
  )

  const load = driveRouteMix(app.baseUrl, LOAD_RATE, LOAD_SECONDS)
  // The recording rules have produced every worker's series while the load runs.
  await waitFor(
    'recording rules for all 5 workers',
    async () =>
      (await prom.query('instance_worker:http_request_duration_seconds:p99_rate1m')).length === 5,
    { timeoutMs: (LOAD_SECONDS + 60) * 1000, intervalMs: 1000 },
  )
  const result = await load
  loadSent = result.requests.total
  // Evaluate at the last scrape that saw the load, as a dashboard open at that moment would.
  await waitFor(
    'a scrape after the load',
    async () => {
      const up = await prom.query('timestamp(up{job="webapp"})')
      return up.length === 1 && Number(up[0].value?.[1]) * 1000 > Date.now() - 5000
    },
    { timeoutMs: 30_000, intervalMs: 500 },
  )
  evalTime = Date.now() / 1000
  all = {
    variables: { instance: '.*', worker: '.*', route: '.*' },
    rateInterval: rateIntervalFromConfig(),
    range: '1800s',
  }
})

after(async () => {
  await prom?.stop()
  await app?.stop()
})

test('the load reached the service', () => {
  assert.ok(loadSent >= LOAD_RATE * 10, `only ${loadSent} requests sent`)
})

test('Prometheus loaded the project rules and evaluates every one without error', async () => {
  const res = await fetch(`${prom.url}/api/v1/rules`)
  const body = (await res.json()) as {
    data: { groups: Array<{ name: string; rules: Array<{ name: string; health: string }> }> }
  }
  const rules = body.data.groups.flatMap((g) => g.rules)
  assert.ok(rules.length >= 20, `only ${rules.length} rules loaded`)
  for (const rule of rules) assert.equal(rule.health, 'ok', `rule ${rule.name}: ${rule.health}`)
  // With every worker answering and no restarts, none of the alerts fires.
  const alerts = await prom.query('ALERTS{alertstate="firing"}')
  const firing = alerts.map((a) => a.metric.alertname)
  for (const quiet of [
    'WebappTargetDown',
    'WebappNoTargets',
    'WebappWorkerMissingFromClusterView',
    'WebappWorkerRestarting',
  ]) {
    assert.ok(!firing.includes(quiet), `${quiet} fires`)
  }
})

test('every variable query returns values, the worker variable all 5 workers', async () => {
  const found: Record<string, string[]> = {}
  for (const variable of dashboard.templating.list) {
    const { selector, label } = parseLabelValues(variable.query)
    const series = await fetch(
      `${prom.url}/api/v1/series?match[]=${encodeURIComponent(substitute(selector, all))}`,
    )
    const body = (await series.json()) as { data: Array<Record<string, string>> }
    found[variable.name] = [...new Set(body.data.map((s) => s[label]))].sort()
    assert.ok(found[variable.name].length > 0, `variable ${variable.name} has no values`)
  }
  assert.deepEqual(found.instance, [`127.0.0.1:${app.port}`])
  assert.deepEqual(found.worker, WORKERS)
  for (const route of ['/', '/items/:id', '/error', '/slow', '__unmatched__']) {
    assert.ok(found.route.includes(route), `route variable lacks ${route}: ${found.route}`)
  }
})

test('every panel query returns data; every per-worker query returns all 5 workers', async () => {
  const queried: string[] = []
  let perWorker = 0
  for (const panel of allPanels(dashboard)) {
    for (const target of panel.targets ?? []) {
      const expr = substitute(target.expr, all)
      const what = `"${panel.title}" ${target.refId}: ${expr}`
      const samples =
        target.instant === true
          ? await prom.query(expr, evalTime)
          : await prom.queryRange(expr, evalTime - 60, evalTime, 5)
      assert.ok(samples.length > 0, `empty: ${what}`)
      for (const sample of samples) {
        assert.ok(finiteValues(sample).length > 0, `no finite value in ${what}`)
      }
      // A legend naming the worker marks a per-worker query.
      if (target.legendFormat?.includes('{{worker_id}}')) {
        assert.deepEqual(workerIdsOf(samples), WORKERS, `not every worker: ${what}`)
        perWorker++
      }
      queried.push(`${panel.title}/${target.refId}`)
    }
  }
  assert.ok(queried.length >= 20, `only ${queried.length} queries in the dashboard`)
  assert.ok(perWorker >= 12, `only ${perWorker} per-worker queries`)
})

test('choosing one worker narrows every per-worker query to that worker', async () => {
  const one: Substitution = { ...all, variables: { ...all.variables, worker: '3' } }
  for (const panel of allPanels(dashboard)) {
    for (const target of panel.targets ?? []) {
      if (!target.legendFormat?.includes('{{worker_id}}')) continue
      const samples = await prom.query(substitute(target.expr, one), evalTime)
      assert.deepEqual(workerIdsOf(samples), ['3'], `"${panel.title}" ${target.refId}`)
    }
  }
})

test('the route variable filters the request panels', async () => {
  const errorsOnly: Substitution = { ...all, variables: { ...all.variables, route: '/error' } }
  const rate = allPanels(dashboard).find((p) => p.title === 'Request rate per worker and total')
  const ratio = allPanels(dashboard).find((p) => p.title === '5xx error ratio per worker')
  assert.ok(rate?.targets && ratio?.targets)
  const total = await prom.query(substitute(rate.targets[1].expr, errorsOnly), evalTime)
  const everything = await prom.query(substitute(rate.targets[1].expr, all), evalTime)
  assert.ok(Number(total[0].value?.[1]) < Number(everything[0].value?.[1]))
  // Every request to /error is a 500: the ratio is exactly 1 on every worker.
  const ratios = await prom.query(substitute(ratio.targets[0].expr, errorsOnly), evalTime)
  assert.deepEqual(workerIdsOf(ratios), WORKERS)
  for (const sample of ratios) assert.equal(Number(sample.value?.[1]), 1)
})
