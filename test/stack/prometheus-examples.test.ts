// prometheus/examples (docs/capacity.md): promtool checks every config and rule file and runs
// the rules' unit test; then the examples run for real against the PM2 app (5 workers): the
// large-fleet config thins the buckets, records per-pod series and remote-writes only those to
// a second Prometheus (a remote-write receiver standing in for Mimir, Thanos or Cortex); the
// counters-only config drops the per-worker buckets. For the run, the configs' targets, rule
// path and remote_write URL point at this machine and their intervals shrink to 5 s; the
// relabelling and the rules are as shipped.
import assert from 'node:assert/strict'
import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { after, before, test } from 'node:test'
import { waitFor } from '../helpers/net'
import { type Pm2App, startPm2App } from '../helpers/pm2'
import { type PrometheusServer, startPrometheus } from '../helpers/prometheus'
import { driveRouteMix, PROMETHEUS_DIR, PROMTOOL_BIN, runCommand } from './stack'

const EXAMPLES = join(PROMETHEUS_DIR, 'examples')
const LARGE_FLEET = join(EXAMPLES, 'prometheus-large-fleet.yml')
const COUNTERS_ONLY = join(EXAMPLES, 'prometheus-counters-only.yml')
const RULES = join(EXAMPLES, 'rules', 'per-pod.yml')
const TARGETS_GLOB = "['/etc/prometheus/targets/webapp-*.json']"
const WORKERS = ['0', '1', '2', '3', '4']

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

/** An example config for a loopback run: targets from targets.json, 5 s intervals. */
function loopback(file: string, extra: Array<[string | RegExp, string]> = []): string {
  return replaceAll(readFileSync(file, 'utf8'), [
    [TARGETS_GLOB, "['targets.json']"],
    [/scrape_interval: \d+s/, 'scrape_interval: 5s'],
    [/scrape_timeout: \d+s/, 'scrape_timeout: 4s'],
    ...extra,
  ])
}

let app: Pm2App
let receiver: PrometheusServer
let fleet: PrometheusServer
let countersOnly: PrometheusServer

before(async () => {
  app = await startPm2App({ instances: 5 })
  const targets = JSON.stringify([
    { targets: [`127.0.0.1:${app.port}`], labels: { pod: 'webapp-0', namespace: 'shop' } },
  ])
  receiver = await startPrometheus('global:\n  scrape_interval: 1m\n', {}, [
    '--web.enable-remote-write-receiver',
  ])
  fleet = await startPrometheus(
    loopback(LARGE_FLEET, [
      [/evaluation_interval: \d+m/, 'evaluation_interval: 5s'],
      ['  - rules/per-pod.yml', '  - per-pod.yml'],
      [/url: http:\/\/mimir\S+/, `url: ${receiver.url}/api/v1/write`],
    ]),
    {
      'targets.json': targets,
      'per-pod.yml': replaceAll(readFileSync(RULES, 'utf8'), [['interval: 1m', 'interval: 5s']]),
    },
  )
  countersOnly = await startPrometheus(loopback(COUNTERS_ONLY), { 'targets.json': targets })
  const load = driveRouteMix(app.baseUrl, 50, 15)
  await waitFor(
    'per-pod recordings at the long-term store',
    async () => (await receiver.query('instance:http_requests:rate5m')).length > 0,
    { timeoutMs: 90_000, intervalMs: 1000 },
  )
  await load
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
  assert.deepEqual(
    les
      .map((s) => s.metric.le)
      .sort((a, b) => (a === '+Inf' ? 1 : b === '+Inf' ? -1 : Number(a) - Number(b))),
    ['0.01', '0.05', '0.25', '1', '5', '+Inf'],
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
  // Let a few more batches arrive.
  await new Promise((r) => setTimeout(r, 10_000))
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
