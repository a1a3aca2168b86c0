// End to end: the built service under real PM2 (5 workers), a real Prometheus running the
// project's prometheus.yml and rules, a bounded route mix of load, then every query of the
// committed dashboard, Grafana variables substituted, through Prometheus' HTTP API. Prometheus
// scrapes the app twice: as the project's `webapp` job (for its rules) and as `shop-api`, the
// job a user's own Prometheus might call it; the dashboard is read through `shop-api`. One app
// and one Prometheus serve every test; the load runs only until a scrape holds what the
// queries read.
import assert from 'node:assert/strict'
import { join } from 'node:path'
import { after, before, test } from 'node:test'
import { waitFor } from '../../harness/net'
import { type Pm2App, startPm2App } from '../../harness/pm2'
import { type PrometheusServer, type PromSample, startPrometheus } from '../../harness/prometheus'
import {
  allPanels,
  type Dashboard,
  discoveryBlock,
  loopbackPrometheusConfig,
  parseLabelValues,
  queryVariables,
  readDashboard,
  type Substitution,
  startRouteMix,
  substitute,
  withIntervals,
  writeTargets,
} from '../../harness/stack'

const WORKERS = ['0', '1', '2', '3', '4']
/** Any job name but the project's own. */
const JOB = 'shop-api'
/**
 * The test's Prometheus scrapes and evaluates every second: the shipped 5 s and 15 s only make
 * the test wait.
 */
const SCRAPE_SECONDS = 1
/**
 * The test's Grafana: its datasource's interval, which $__rate_interval is computed from and
 * the smallest step, is two scrapes. A killed worker is out of a scrape or two before its new
 * process answers; at one scrape a coarse step's window (step + interval) can fall between
 * the old process' last sample and the new one's first, and the restart goes unmarked.
 */
const GRAFANA_INTERVAL_SECONDS = 2 * SCRAPE_SECONDS
const LOAD_RATE = 150
/** The longest the load may run: it stops as soon as Prometheus holds what the queries read. */
const LOAD_MAX_SECONDS = 40

let app: Pm2App
let prom: PrometheusServer
let dashboard: Dashboard
let evalTime: number
let all: Substitution

/** Grafana's $__rate_interval for a step: max(step + scrape interval, 4 x scrape interval). */
function rateIntervalFor(stepSeconds: number): string {
  return `${Math.max(stepSeconds + GRAFANA_INTERVAL_SECONDS, 4 * GRAFANA_INTERVAL_SECONDS)}s`
}

const workerIdsOf = (samples: PromSample[]) =>
  [...new Set(samples.map((s) => s.metric.worker_id))].sort()

const finiteValues = (sample: PromSample) =>
  [...(sample.values ?? []), ...(sample.value ? [sample.value] : [])]
    .map(([, v]) => Number(v))
    .filter(Number.isFinite)

/**
 * The time of a scrape of `JOB` at which every worker's every request counter had moved within
 * the rate window: the moment of traffic a dashboard open then would show. Undefined before.
 */
async function scrapeWithEveryCounterMoving(): Promise<number | undefined> {
  const last = await prom.query(`timestamp(up{job="${JOB}"})`)
  const at = Number(last[0]?.value?.[1])
  if (!Number.isFinite(at)) return undefined
  const window = rateIntervalFor(GRAFANA_INTERVAL_SECONDS)
  const count = async (expr: string) =>
    new Map((await prom.query(expr, at)).map((s) => [s.metric.worker_id, s.value?.[1]]))
  const series = await count(`count by (worker_id) (http_requests_total{job="${JOB}"})`)
  const moving = await count(
    `count by (worker_id) (increase(http_requests_total{job="${JOB}"}[${window}]) > 0)`,
  )
  const ready =
    WORKERS.every((w) => series.has(w) && series.get(w) === moving.get(w)) &&
    series.size === WORKERS.length
  return ready ? at : undefined
}

before(async () => {
  dashboard = readDashboard()
  // Prometheus takes seconds to hand discovered targets to its scrapers: it starts while PM2
  // does, both jobs reading a file_sd file that gets the app's address once it is up.
  // scrape_configs is the last section of prometheus.yml: a job appended joins its list.
  const targets = { file: 'targets.json' }
  const [started, prometheus] = await Promise.allSettled([
    startPm2App({ instances: 5 }),
    startPrometheus(
      withIntervals(
        `${loopbackPrometheusConfig(targets)}\n  - job_name: ${JOB}\n${discoveryBlock(targets)}`,
        SCRAPE_SECONDS,
      ),
      { 'targets.json': '[]' },
    ),
  ])
  if (started.status === 'fulfilled') app = started.value
  if (prometheus.status === 'fulfilled') prom = prometheus.value
  if (started.status === 'rejected') throw started.reason
  if (prometheus.status === 'rejected') throw prometheus.reason
  writeTargets(join(prom.dir, 'targets.json'), [{ targets: [`127.0.0.1:${app.port}`] }])

  // The cluster view is complete before any load: one target, five workers answering.
  await waitFor(
    'Prometheus to scrape all 5 workers',
    async () => {
      const answered = await prom.query('cluster_metrics_workers_answered')
      return answered.length === 2 && answered.every((a) => a.value?.[1] === '5')
    },
    { timeoutMs: 60_000, intervalMs: 250 },
  )

  // Load until a scrape shows every worker's every route moving and the recording rules have
  // every worker's series; a load that cannot get there fails the setup.
  const load = startRouteMix(app.baseUrl, LOAD_RATE, LOAD_MAX_SECONDS)
  try {
    await waitFor(
      'recording rules for all 5 workers',
      async () =>
        (await prom.query('instance_worker:http_request_duration_seconds:p99_rate1m')).length === 5,
      { timeoutMs: LOAD_MAX_SECONDS * 1000, intervalMs: 250 },
    )
    evalTime = await waitFor(
      'a scrape with every worker serving every route of the mix',
      scrapeWithEveryCounterMoving,
      { timeoutMs: LOAD_MAX_SECONDS * 1000, intervalMs: 250 },
    )
  } finally {
    load.stop()
  }
  const result = await load.done
  if (result.errors > 0) throw new Error(`the load met ${result.errors} connection errors`)
  all = {
    variables: { job: JOB, instance: '.*', worker: '.*', route: '.*' },
    rateInterval: rateIntervalFor(GRAFANA_INTERVAL_SECONDS),
    range: '1800s',
  }
})

after(async () => {
  await prom?.stop()
  await app?.stop()
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
  for (const variable of queryVariables(dashboard)) {
    const { selector, label } = parseLabelValues(variable.query)
    const series = await fetch(
      `${prom.url}/api/v1/series?match[]=${encodeURIComponent(substitute(selector, all))}`,
    )
    const body = (await series.json()) as { data: Array<Record<string, string>> }
    found[variable.name] = [...new Set(body.data.map((s) => s[label]))].sort()
    assert.ok(found[variable.name].length > 0, `variable ${variable.name} has no values`)
  }
  // Both jobs scrape the app; the job picked narrows the variables below it.
  assert.deepEqual(found.job, [JOB, 'webapp'])
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

test('the job variable narrows every query to its job', async () => {
  const targets = allPanels(dashboard).find((p) => p.title === 'Targets up / discovered')
  assert.ok(targets?.targets)
  const discovered = targets.targets[1].expr
  const count = async (job: string) =>
    Number(
      (
        await prom.query(substitute(discovered, { ...all, variables: { ...all.variables, job } }))
      )[0].value?.[1],
    )
  // Two jobs scrape the one app: the job picked counts one target, a match of both counts two.
  assert.equal(await count(JOB), 1)
  assert.equal(await count('webapp'), 1)
  assert.equal(await count(`${JOB}|webapp`), 2)
})

// ---- restarts as annotations: these tests restart workers, so they run last ----

/** The restart annotation, as Grafana runs it: a range query whose step is $__interval. */
async function restartMarks(start: number, end: number, stepSeconds: number) {
  const annotation = dashboard.annotations.list.find((a) => a.name === 'Worker restarts')
  assert.ok(annotation?.expr)
  const sub: Substitution = {
    ...all,
    interval: `${stepSeconds}s`,
    rateInterval: rateIntervalFor(stepSeconds),
  }
  // Grafana aligns the range to multiples of the step.
  const aligned = (t: number) => Math.floor(t / stepSeconds) * stepSeconds
  const samples = await prom.queryRange(
    substitute(annotation.expr, sub),
    aligned(start),
    aligned(end),
    stepSeconds,
  )
  return new Map(samples.map((s) => [s.metric.worker_id, (s.values ?? []).map(([t]) => t)]))
}

/** Waits until Prometheus holds a start time after `since` for each of `workerIds`. */
async function waitForNewStarts(workerIds: string[], since: number): Promise<number> {
  await waitFor(
    `new process_start_time_seconds for workers ${workerIds}`,
    async () => {
      const starts = await prom.query(`process_start_time_seconds{job="${JOB}"}`)
      return workerIds.every((id) =>
        starts.some((s) => s.metric.worker_id === id && Number(s.value?.[1]) >= Math.floor(since)),
      )
    },
    { timeoutMs: 60_000, intervalMs: 250 },
  )
  // The first scrape that held the new start times happened no later than now.
  return Date.now() / 1000
}

/**
 * Waits for a scrape at least `seconds` after `time`; its time ends the range queried. The mark
 * falls on the first step at or after the new start time, up to a step after it, and the range's
 * end is aligned down by up to a step: callers wait two steps past `time` so the mark is inside.
 */
async function scrapePast(time: number, seconds: number): Promise<number> {
  return waitFor(
    `a scrape ${seconds} s after ${time}`,
    async () => {
      const last = Number((await prom.query(`timestamp(up{job="${JOB}"})`))[0]?.value?.[1])
      return last >= time + seconds + SCRAPE_SECONDS ? Math.floor(last) : undefined
    },
    { timeoutMs: 60_000, intervalMs: 250 },
  )
}

/**
 * A coarser step, as a dashboard over a longer range would use: past 3 intervals, where
 * $__rate_interval becomes step + interval, the other side of Grafana's formula.
 */
const COARSE_STEP_SECONDS = 4 * GRAFANA_INTERVAL_SECONDS

/** Runs of consecutive marked steps: Grafana draws each run as one annotation. */
function events(times: number[], stepSeconds: number): number[] {
  return times.filter((t, i) => i === 0 || t - times[i - 1] > stepSeconds)
}

test('a worker killed and restarted by PM2 is one annotation, on that worker only', async () => {
  const victim = (await app.list()).find((p) => p.workerId === '2')
  assert.ok(victim)
  // The coarse step compares the new start time with those of the 5 minutes up to a step
  // earlier: Prometheus must hold the old one from before then, or there is nothing to compare
  // with and no mark. A fast setup (Prometheus 3 scrapes the app within a second of its start)
  // reaches this point sooner than that.
  await waitFor(
    "worker 2's start time held for longer than a coarse step",
    async () =>
      (
        await prom.query(
          `process_start_time_seconds{job="${JOB}",worker_id="2"} offset ${COARSE_STEP_SECONDS + GRAFANA_INTERVAL_SECONDS}s`,
        )
      ).length === 1,
    { timeoutMs: 60_000, intervalMs: 250 },
  )
  const from = Math.floor(Date.now() / 1000) - 120
  const killedAt = Date.now() / 1000
  process.kill(victim.pid, 'SIGKILL')
  await app.waitOnline(5)
  const seenBy = await waitForNewStarts(['2'], killedAt)
  const steps = [GRAFANA_INTERVAL_SECONDS, COARSE_STEP_SECONDS]
  const to = await scrapePast(seenBy, 2 * Math.max(...steps))

  for (const step of steps) {
    const marks = await restartMarks(from, to, step)
    assert.deepEqual([...marks.keys()], ['2'], `step ${step}s: only worker 2 is marked`)
    const runs = events(marks.get('2') ?? [], step)
    assert.equal(runs.length, 1, `step ${step}s: one event, got ${runs}`)
    // Not before the kill, and at the first step once Prometheus had the new start time.
    assert.ok(runs[0] >= killedAt, `step ${step}s: marked at ${runs[0]}, killed at ${killedAt}`)
    assert.ok(runs[0] <= seenBy + step, `step ${step}s: marked at ${runs[0]}, seen by ${seenBy}`)
  }
  // The restarts panel agrees: one start for worker 2, none for the others.
  const panel = allPanels(dashboard).find((p) => p.title === 'Restarts per worker')
  assert.ok(panel?.targets)
  const counts = await prom.query(substitute(panel.targets[0].expr, all))
  assert.deepEqual(
    Object.fromEntries(counts.map((c) => [c.metric.worker_id, Number(c.value?.[1])])),
    { '0': 0, '1': 0, '2': 1, '3': 0, '4': 0 },
  )
})

test('pm2 reload marks every worker once', async () => {
  const from = Math.ceil(Date.now() / 1000)
  const reloadAt = Date.now() / 1000
  await app.pm2('reload', app.name)
  await app.waitOnline(5)
  const seenBy = await waitForNewStarts(WORKERS, reloadAt)
  const step = GRAFANA_INTERVAL_SECONDS
  const to = await scrapePast(seenBy, 2 * step)
  const marks = await restartMarks(from, to, step)
  assert.deepEqual([...marks.keys()].sort(), WORKERS)
  for (const [worker, times] of marks) {
    const runs = events(times, step)
    assert.equal(runs.length, 1, `worker ${worker}: ${runs}`)
    assert.ok(runs[0] >= reloadAt && runs[0] <= seenBy + step, `worker ${worker}: ${runs[0]}`)
  }
})
