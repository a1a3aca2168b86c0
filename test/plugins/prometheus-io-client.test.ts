// The plugin with @prometheus-io/client, prom-client's successor: it records into the client
// whose registry it is given, with that client's classes, through every path prom-client takes
// (the request hot path, the three expositions, native histograms, the cluster view over real
// unix sockets, counts carried to a worker's next process); with only one client installed it
// makes its registry with that one and loads no other; with none it says what to install.
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, test } from 'node:test'
import { promisify } from 'node:util'
import * as prometheusIo from '@prometheus-io/client'
import Fastify from 'fastify'
import type { Registry } from 'prom-client'
import { duplicateSeries } from '../../harness/exposition'
import { PROMETHEUS_ACCEPT } from '../../harness/prometheus-accept'
import { decodeFamilies, protobufSamples, samplesByKey, textSamples } from '../../harness/protobuf'
import { renderRegistry } from '../../packages/plugin/src/exposition/exposition'
import { ClusterView } from '../../packages/plugin/src/gather/cluster-view'
import { clientFor } from '../../packages/plugin/src/lib/metrics-client'
import metricsPlugin from '../../packages/plugin/src/plugin'
import {
  createHttpMetrics,
  createWorkerRegistry,
  REQUEST_DURATION,
} from '../../packages/plugin/src/plugin/http-metrics'
import { createSocketPaths } from '../../packages/plugin/src/run-dir/socket-paths'

const base = mkdtempSync(join(tmpdir(), 'pio-'))
after(() => rmSync(base, { recursive: true, force: true }))

const OPENMETRICS_ACCEPT = 'application/openmetrics-text; version=1.0.0'
const PROTOBUF_ACCEPT = PROMETHEUS_ACCEPT['prometheus-3.5 protobuf first']
const SERIES = 'method="GET",route="/",status_code="200",worker_id="0"'

/** The plugin recording into a registry of @prometheus-io/client that has a counter of its own. */
async function appWithRegistry(t: { after(fn: () => unknown): void }, nativeHistograms = false) {
  const registry = new prometheusIo.Registry()
  const jobs = new prometheusIo.Counter({
    name: 'jobs_total',
    help: 'Jobs.',
    registers: [registry],
  })
  jobs.inc(5)
  const app = Fastify()
  t.after(() => app.close())
  await app.register(metricsPlugin, {
    registry: registry as unknown as Registry,
    cluster: false,
    workerId: '0',
    nativeHistograms: nativeHistograms ? {} : false,
  })
  app.get('/', async () => 'ok')
  await app.ready()
  return { app, registry }
}

test('given a registry of @prometheus-io/client, the plugin records into it with its classes', async (t) => {
  const { app, registry } = await appWithRegistry(t)
  assert.ok(app.metrics.http.requestsTotal instanceof prometheusIo.Counter)
  assert.ok(app.metrics.http.requestDuration instanceof prometheusIo.Histogram)
  assert.equal(registry.getSingleMetric('http_requests_total'), app.metrics.http.requestsTotal)
  for (let i = 0; i < 3; i++) await app.inject({ url: '/' })
  const text = (await app.inject({ url: '/metrics' })).body
  // Three requests: the first through the client's API, the others written to its stored series.
  assert.match(text, new RegExp(`^http_requests_total\\{${SERIES}\\} 3$`, 'm'))
  assert.match(text, new RegExp(`^http_request_duration_seconds_count\\{${SERIES}\\} 3$`, 'm'))
  assert.match(
    text,
    new RegExp(`^http_request_duration_seconds_bucket\\{le="\\+Inf",${SERIES}\\} 3$`, 'm'),
  )
  assert.match(text, /^jobs_total 5$/m)
  assert.deepEqual(duplicateSeries(text), [])
  // A reset of the client's metrics is seen by the hot path: counting starts again from zero.
  registry.resetMetrics()
  await app.inject({ url: '/' })
  const afterReset = (await app.inject({ url: '/metrics' })).body
  assert.match(afterReset, new RegExp(`^http_requests_total\\{${SERIES}\\} 1$`, 'm'))
  assert.match(
    afterReset,
    new RegExp(`^http_request_duration_seconds_count\\{${SERIES}\\} 1$`, 'm'),
  )
})

test('with @prometheus-io/client, /metrics answers in text, OpenMetrics and protobuf alike', async (t) => {
  const { app } = await appWithRegistry(t, true)
  // The histogram that records native histograms too is the registry's client's.
  assert.ok(app.metrics.http.requestDuration instanceof prometheusIo.Histogram)
  for (let i = 0; i < 4; i++) await app.inject({ url: '/' })
  const text = (await app.inject({ url: '/metrics' })).body
  const openMetrics = await app.inject({ url: '/metrics', headers: { accept: OPENMETRICS_ACCEPT } })
  assert.match(openMetrics.headers['content-type'] as string, /^application\/openmetrics-text/)
  assert.match(openMetrics.body, new RegExp(`^http_requests_total\\{${SERIES}\\} 4$`, 'm'))
  assert.match(openMetrics.body, /^jobs_total 5$/m)
  assert.ok(openMetrics.body.endsWith('# EOF\n'))
  // The OpenMetrics render renamed nothing in place: the text format keeps `_total`.
  const textAgain = (await app.inject({ url: '/metrics' })).body
  assert.match(textAgain, /^# TYPE http_requests_total counter$/m)
  const protobuf = await app.inject({ url: '/metrics', headers: { accept: PROTOBUF_ACCEPT } })
  assert.match(protobuf.headers['content-type'] as string, /^application\/vnd\.google\.protobuf/)
  const families = decodeFamilies(protobuf.rawPayload)
  const fromProtobuf = samplesByKey(protobufSamples(families))
  const fromText = samplesByKey(textSamples(text))
  for (const [key, sample] of fromText) {
    if (!key.startsWith('http_') && !key.startsWith('jobs_')) continue
    assert.equal(fromProtobuf.get(key)?.value, sample.value, key)
  }
  // Every observation, through the client's API or written to its stored series, reached the
  // series' native histogram too.
  const labels = { method: 'GET', route: '/', status_code: '200', worker_id: '0' }
  assert.equal(app.metrics.nativeFor(REQUEST_DURATION, labels)?.count, 4)
})

test("@prometheus-io/client's process metrics render in protobuf as in text", async () => {
  const registry = createWorkerRegistry('0', true, clientFor(new prometheusIo.Registry()))
  const text = await renderRegistry(registry, 'prometheus')
  const protobuf = await renderRegistry(registry, 'protobuf')
  const fromProtobuf = samplesByKey(protobufSamples(decodeFamilies(protobuf as Uint8Array)))
  // Its event-loop utilization summary, which has no labels of its own, among them.
  const summaryCount = 'nodejs_eventloop_utilization_summary_count{worker_id="0"}'
  assert.equal(typeof fromProtobuf.get(summaryCount)?.value, 'number')
  assert.deepEqual(
    [...fromProtobuf.keys()].sort(),
    [...samplesByKey(textSamples(text as string)).keys()].sort(),
  )
})

/** A worker's cluster view over a registry of @prometheus-io/client. */
function pioWorker(workerId: string, dir: string) {
  const client = clientFor(new prometheusIo.Registry())
  const registry = createWorkerRegistry(workerId, false, client)
  const http = createHttpMetrics(registry)
  const view = new ClusterView({
    registry,
    workerId,
    scope: 'test:1',
    gatherTimeoutMs: 2000,
    paths: createSocketPaths(join(base, dir)),
  })
  return { registry, http, view }
}

const requestsLine = (id: string, n: number) =>
  new RegExp(
    `^http_requests_total\\{method="GET",route="/",status_code="200",worker_id="${id}"\\} ${n}$`,
    'm',
  )

test('with @prometheus-io/client, workers gather over unix sockets and a next process carries the counts on', async () => {
  const zero = pioWorker('0', 'pio')
  const one = pioWorker('1', 'pio')
  assert.ok(zero.registry instanceof prometheusIo.Registry)
  await zero.view.start()
  await one.view.start()
  const labels = (id: string) => ({ method: 'GET', route: '/', status_code: '200', worker_id: id })
  try {
    zero.http.requestsTotal.inc(labels('0'), 2)
    one.http.requestsTotal.inc(labels('1'), 5)
    one.http.requestDuration.observe(labels('1'), 0.05)
    for (const format of ['prometheus', 'openmetrics'] as const) {
      const result = await zero.view.gather(format)
      assert.deepEqual(result.answered, ['0', '1'])
      assert.match(result.exposition as string, requestsLine('0', 2))
      assert.match(result.exposition as string, requestsLine('1', 5))
      assert.match(result.exposition as string, /^cluster_metrics_workers_answered 2$/m)
      assert.deepEqual(duplicateSeries(result.exposition as string), [])
    }
    const protobuf = await zero.view.gather('protobuf')
    const samples = samplesByKey(protobufSamples(decodeFamilies(protobuf.exposition as Uint8Array)))
    assert.equal(
      samples.get('http_requests_total{method="GET",route="/",status_code="200",worker_id="1"}')
        ?.value,
      5,
    )
    // Worker 1 stops gracefully: its counts are handed over, served through worker 0 until its
    // next process takes them and continues from them.
    await one.view.close()
    assert.match((await zero.view.gather('prometheus')).exposition as string, requestsLine('1', 5))
    const next = pioWorker('1', 'pio')
    await next.view.start()
    try {
      next.http.requestsTotal.inc(labels('1'), 1)
      const result = await zero.view.gather('prometheus')
      assert.deepEqual(result.answered, ['0', '1'])
      assert.match(result.exposition as string, requestsLine('1', 6))
      assert.match(
        result.exposition as string,
        /^http_request_duration_seconds_count\{method="GET",route="\/",status_code="200",worker_id="1"\} 1$/m,
      )
      assert.deepEqual(duplicateSeries(result.exposition as string), [])
    } finally {
      await next.view.close()
    }
  } finally {
    await zero.view.close()
  }
})

const execFileAsync = promisify(execFile)

/** The one-client app run with `hidden` impossible to find; its JSON line. */
async function runOneClientApp(hidden: string[]) {
  const { stdout } = await execFileAsync(
    process.execPath,
    ['--import', 'tsx', join(__dirname, '../fixtures/one-client-app.ts')],
    { env: { ...process.env, METRICS_CLIENTS_HIDDEN: hidden.join(',') } },
  )
  return JSON.parse(stdout.trim().split('\n').at(-1) as string) as {
    loaded?: string[]
    registryFile?: string
    body?: string
    error?: string
  }
}

test('with only @prometheus-io/client installed, the plugin makes its registry with it and loads no other', async () => {
  const result = await runOneClientApp(['prom-client'])
  assert.equal(result.error, undefined)
  assert.deepEqual(result.loaded, ['@prometheus-io/client'])
  assert.match(result.registryFile ?? '', /node_modules[\\/]@prometheus-io[\\/]client[\\/]/)
  assert.match(result.body ?? '', new RegExp(`^http_requests_total\\{${SERIES}\\} 3$`, 'm'))
  // The client's process metrics, with the worker's label.
  assert.match(result.body ?? '', /^process_cpu_user_seconds_total\{worker_id="0"\} /m)
})

test('with only prom-client installed, the plugin makes its registry with it and loads no other', async () => {
  const result = await runOneClientApp(['@prometheus-io/client'])
  assert.equal(result.error, undefined)
  assert.deepEqual(result.loaded, ['prom-client'])
  assert.match(result.body ?? '', new RegExp(`^http_requests_total\\{${SERIES}\\} 3$`, 'm'))
})

test('with neither client installed, registration fails naming both', async () => {
  const result = await runOneClientApp(['prom-client', '@prometheus-io/client'])
  assert.match(
    result.error ?? '',
    /install prom-client@~15\.1\.3 or @prometheus-io\/client@\^0\.16\.1/,
  )
})
