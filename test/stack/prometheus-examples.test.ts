// prometheus/examples (docs/capacity.md): promtool checks every config and rule file and runs
// the rules' unit test; then the examples run for real against the PM2 app (5 workers): the
// large-fleet config thins the buckets, records per-pod series and remote-writes only those to
// a second Prometheus (a remote-write receiver standing in for Mimir, Thanos or Cortex); the
// counters-only config drops the per-worker buckets. For the run, the configs' targets, rule
// path and remote_write URL point at this machine and their intervals (scrape, rule evaluation,
// remote-write batch deadline) shrink to 1 s; the relabelling and the rules are as shipped.
import assert from 'node:assert/strict'
import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { after, before, test } from 'node:test'
import { waitFor } from '../../harness/net'
import { type Pm2App, startPm2App } from '../../harness/pm2'
import { type PrometheusServer, startPrometheus } from '../../harness/prometheus'
import {
  PROMETHEUS_DIR,
  PROMTOOL_BIN,
  runCommand,
  startRouteMix,
  writeTargets,
} from '../../harness/stack'

const EXAMPLES = join(PROMETHEUS_DIR, 'examples')
const LARGE_FLEET = join(EXAMPLES, 'prometheus-large-fleet.yml')
const COUNTERS_ONLY = join(EXAMPLES, 'prometheus-counters-only.yml')
const RULES = join(EXAMPLES, 'rules', 'per-pod.yml')
const TARGETS_GLOB = "['/etc/prometheus/targets/webapp-*.json']"
const WORKERS = ['0', '1', '2', '3', '4']
/** Scrape, rule and remote-write intervals of the run: the shipped ones only make it wait. */
const SECONDS = 1
/** The longest the load may run: it stops once the scrapes hold what the checks read. */
const LOAD_MAX_SECONDS = 40

const promtool = (...args: string[]) => {
  const result = runCommand(PROMTOOL_BIN, args)
  return { ...result, output: `${result.stdout}${result.stderr}` }
}

/** `text` with each [from, to] replaced, failing if a `from` is not there. */
function replaceAll(text: string, pairs: Array<[string | RegExp, string]>): string {
  return pairs.reduce((out, [from, to]) => {
    assert.ok(typeof from === 'string' ? out.includes(from) : from.test(out), `no ${from}`)
    return out.replace(from, to)
  }, text)
}

/** An example config for a loopback run: targets from targets.json, 1 s intervals. */
function loopback(file: string, extra: Array<[string | RegExp, string]> = []): string {
  return replaceAll(readFileSync(file, 'utf8'), [
    [TARGETS_GLOB, "['targets.json']"],
    [/scrape_interval: \d+s/, `scrape_interval: ${SECONDS}s`],
    [/scrape_timeout: \d+s/, `scrape_timeout: ${SECONDS}s`],
    ...extra,
  ])
}

let app: Pm2App
let receiver: PrometheusServer
let fleet: PrometheusServer
let countersOnly: PrometheusServer

/** Points a Prometheus started with an empty targets.json at the app (file discovery). */
function target(prom: PrometheusServer, port: number): void {
  writeTargets(join(prom.dir, 'targets.json'), [
    { targets: [`127.0.0.1:${port}`], labels: { pod: 'webapp-0', namespace: 'shop' } },
  ])
}

/** The time of the large-fleet Prometheus' second scrape after `time`. */
function scrapedAfter(time: number): Promise<number> {
  return waitFor(
    `two scrapes after ${time}`,
    async () => {
      const at = Number((await fleet.query('timestamp(up)'))[0]?.value?.[1])
      return at >= time + 2 * SECONDS ? at : undefined
    },
    { timeoutMs: 30_000, intervalMs: 250 },
  )
}

before(async () => {
  // Prometheus takes seconds to hand discovered targets to its scrapers: the three start
  // while PM2 does, and get the app's address once it is up.
  const prometheuses = (async () => {
    const remote = await startPrometheus('global:\n  scrape_interval: 1m\n', {}, [
      '--web.enable-remote-write-receiver',
    ])
    const [large, counters] = await Promise.all([
      startPrometheus(
        loopback(LARGE_FLEET, [
          [/evaluation_interval: \d+m/, `evaluation_interval: ${SECONDS}s`],
          ['  - rules/per-pod.yml', '  - per-pod.yml'],
          [/url: http:\/\/mimir\S+/, `url: ${remote.url}/api/v1/write`],
          // Batches leave every second instead of every 5 s (the default deadline).
          [
            'max_samples_per_send: 2000',
            `max_samples_per_send: 2000\n      batch_send_deadline: ${SECONDS}s`,
          ],
        ]),
        {
          'targets.json': '[]',
          'per-pod.yml': replaceAll(readFileSync(RULES, 'utf8'), [
            ['interval: 1m', `interval: ${SECONDS}s`],
          ]),
        },
      ),
      startPrometheus(loopback(COUNTERS_ONLY), { 'targets.json': '[]' }),
    ])
    return [remote, large, counters] as const
  })()
  const [started, proms] = await Promise.allSettled([startPm2App({ instances: 5 }), prometheuses])
  if (started.status === 'fulfilled') app = started.value
  if (proms.status === 'fulfilled') [receiver, fleet, countersOnly] = proms.value
  if (started.status === 'rejected') throw started.reason
  if (proms.status === 'rejected') throw proms.reason
  // Load from the moment the app is known to the scrapers until the large-fleet Prometheus has
  // scraped it twice under load; a load that cannot get there fails the setup.
  for (const prom of [fleet, countersOnly]) target(prom, app.port)
  const load = startRouteMix(app.baseUrl, 50, LOAD_MAX_SECONDS)
  try {
    for (const prom of [fleet, countersOnly]) {
      await waitFor(
        'the app to be scraped with all 5 workers',
        async () => (await prom.query('cluster_metrics_workers_answered'))[0]?.value?.[1] === '5',
        { timeoutMs: LOAD_MAX_SECONDS * 1000, intervalMs: 250 },
      )
    }
    await scrapedAfter(Date.now() / 1000)
  } finally {
    load.stop()
  }
  const result = await load.done
  if (result.errors > 0) throw new Error(`the load met ${result.errors} connection errors`)
  // Two scrapes after the load: every counter, even one first seen at its end, has a rate.
  const scraped = await scrapedAfter(Date.now() / 1000)
  // The long-term store has the recordings of an evaluation after those scrapes.
  await waitFor(
    'per-pod recordings at the long-term store',
    async () =>
      Number(
        (await receiver.query('max(timestamp(instance:http_requests:rate5m))'))[0]?.value?.[1],
      ) >= scraped,
    { timeoutMs: 60_000, intervalMs: 250 },
  )
})

after(async () => {
  await countersOnly?.stop()
  await fleet?.stop()
  await receiver?.stop()
  await app?.stop()
})

test('promtool accepts every example config and rule file', () => {
  for (const config of [LARGE_FLEET, COUNTERS_ONLY]) {
    const result = promtool('check', 'config', config)
    assert.equal(result.code, 0, result.output)
  }
  const ruleFiles = readdirSync(join(EXAMPLES, 'rules')).map((f) => join(EXAMPLES, 'rules', f))
  const result = promtool('check', 'rules', ...ruleFiles)
  assert.equal(result.code, 0, result.output)
})

test('the per-pod rules pass their unit test', () => {
  const tests = readdirSync(join(EXAMPLES, 'tests')).map((f) => join(EXAMPLES, 'tests', f))
  assert.ok(tests.length > 0)
  const result = promtool('test', 'rules', ...tests)
  assert.equal(result.code, 0, result.output)
})

test('large fleet: 7 of 12 buckets dropped at ingestion, quantiles still computable', async () => {
  const les = await fleet.query('count by (le) (http_request_duration_seconds_bucket)')
  // Compared as numbers: Prometheus 3 stores the service's le="1" as "1.0", Prometheus 2 as "1".
  assert.deepEqual(
    les
      .map((s) => (s.metric.le === '+Inf' ? Number.POSITIVE_INFINITY : Number(s.metric.le)))
      .sort((a, b) => a - b),
    [0.01, 0.05, 0.25, 1, 5, Number.POSITIVE_INFINITY],
  )
  const p99 = await fleet.query(
    'histogram_quantile(0.99, sum by (le) (rate(http_request_duration_seconds_bucket[1m])))',
  )
  assert.equal(p99.length, 1)
  assert.ok(Number.isFinite(Number(p99[0].value?.[1])), `p99 ${p99[0].value?.[1]}`)
  // Per-worker detail stays in this Prometheus.
  const workers = await fleet.query('count by (worker_id) (http_requests_total)')
  assert.deepEqual(workers.map((s) => s.metric.worker_id).sort(), WORKERS)
})

test('large fleet: the recordings hold one series per pod and route, without worker_id', async () => {
  const recorded = await fleet.query('instance:http_requests:rate5m')
  const raw = await fleet.query('count by (method, route, status_code) (http_requests_total)')
  const combo = (m: Record<string, string>) => `${m.method} ${m.route} ${m.status_code}`
  const rawCombos = new Set(raw.map((s) => combo(s.metric)))
  const recordedCombos = recorded.map((s) => combo(s.metric))
  // One series per combination of the pod (a combination first seen after the last
  // evaluation is not recorded yet).
  assert.equal(new Set(recordedCombos).size, recorded.length, 'one series per combination')
  for (const c of recordedCombos) assert.ok(rawCombos.has(c), c)
  for (const route of ['/', '/items/:id', '/error', '__unmatched__']) {
    assert.ok(
      recorded.some((s) => s.metric.route === route),
      route,
    )
  }
  for (const s of recorded) {
    assert.equal(s.metric.worker_id, undefined)
    assert.equal(s.metric.pod, 'webapp-0')
  }
})

test('large fleet: remote_write sends the per-pod recordings and up, nothing per worker', async () => {
  // Batches from several scrapes have arrived: a per-worker series would be among them.
  await waitFor(
    'up from 3 scrapes at the long-term store',
    async () => Number((await receiver.query('count_over_time(up[1m])'))[0]?.value?.[1]) >= 3,
    { timeoutMs: 60_000, intervalMs: 250 },
  )
  const names = (await receiver.query('count by (__name__) ({__name__=~".+"})')).map(
    (s) => s.metric.__name__,
  )
  assert.ok(names.includes('instance:http_requests:rate5m'), names.join(' '))
  assert.ok(names.includes('instance:http_request_duration_seconds_bucket:rate5m'))
  assert.ok(names.includes('up'))
  for (const name of names) assert.match(name, /^(instance:.+|up)$/)
  assert.deepEqual(await receiver.query('{worker_id!=""}'), [])
  // The sender's external label tells its series apart in the shared store.
  const up = await receiver.query('up')
  assert.ok(up.length > 0 && up.every((s) => s.metric.cluster === 'eu-west-1'))
})

test('counters only: no per-worker buckets; counters, _sum and _count per worker stay', async () => {
  await waitFor(
    'counters-only to scrape twice',
    async () => Number((await countersOnly.query('count_over_time(up[1m])'))[0]?.value?.[1]) >= 2,
    { timeoutMs: 30_000, intervalMs: 1000 },
  )
  assert.deepEqual(await countersOnly.query('http_request_duration_seconds_bucket'), [])
  for (const name of [
    'http_requests_total',
    'http_request_duration_seconds_count',
    'http_request_duration_seconds_sum',
  ]) {
    const workers = await countersOnly.query(`count by (worker_id) (${name})`)
    assert.deepEqual(workers.map((s) => s.metric.worker_id).sort(), WORKERS, name)
  }
})
