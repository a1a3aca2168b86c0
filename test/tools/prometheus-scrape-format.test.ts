// A real Prometheus 3.5 scrapes the built app in three of its scrape_protocols settings: its
// defaults, text 1.0.0 only, and protocol buffers first (native histograms' order). A loopback
// relay between them records what Prometheus asks for and what the app answers; each target is
// up, and Prometheus read the answer in the format the Content-Type named (OpenMetrics families
// drop a counter's `_total`, the text format's and protobuf's keep it). Then the app under PM2,
// through the cluster view: Prometheus stores exactly the same series from protobuf as from the
// text format.
import assert from 'node:assert/strict'
import { createServer, request } from 'node:http'
import type { AddressInfo } from 'node:net'
import { after, test } from 'node:test'
import { httpGet, waitFor } from '../../harness/net'
import { startPm2App } from '../../harness/pm2'
import { type PromSample, prometheusBin, startPrometheus } from '../../harness/prometheus'
import { PROMETHEUS_ACCEPT } from '../../harness/prometheus-accept'
import { runCommand } from '../../harness/stack'
import { build, listenOnLoopback } from '../helper'
import { ProtobufDecoder } from './protobuf-decoder'

const PROTOBUF =
  'application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited'

interface Exchange {
  accept: string | undefined
  contentType: string | undefined
}

/** Relays HTTP to `port` on loopback, keeping the last exchange per `job` query parameter. */
async function startRelay(port: number) {
  const last = new Map<string, Exchange>()
  const relay = createServer((req, res) => {
    const upstream = request(
      { host: '127.0.0.1', port, path: req.url, method: req.method, headers: req.headers },
      (answer) => {
        const job = new URL(req.url ?? '/', 'http://relay').searchParams.get('job') ?? ''
        last.set(job, {
          accept: req.headers.accept,
          contentType: answer.headers['content-type'],
        })
        res.writeHead(answer.statusCode ?? 502, answer.headers)
        answer.pipe(res)
      },
    )
    upstream.on('error', () => res.destroy())
    req.pipe(upstream)
  })
  await new Promise<void>((resolve) => relay.listen(0, '127.0.0.1', resolve))
  return {
    port: (relay.address() as AddressInfo).port,
    last,
    close: () => new Promise<void>((resolve) => relay.close(() => resolve())),
  }
}

const JOBS = {
  default: {
    protocols: undefined,
    accept: PROMETHEUS_ACCEPT['prometheus-3.5'],
    contentType: 'application/openmetrics-text; version=1.0.0; charset=utf-8; escaping=allow-utf-8',
    counterFamily: 'process_cpu_seconds',
  },
  'text-1-0-0': {
    protocols: ['PrometheusText1.0.0'],
    accept: PROMETHEUS_ACCEPT['prometheus-3.5 text 1.0.0'],
    contentType: 'text/plain; version=1.0.0; charset=utf-8; escaping=allow-utf-8',
    counterFamily: 'process_cpu_seconds_total',
  },
  'protobuf-first': {
    protocols: ['PrometheusProto', 'PrometheusText0.0.4'],
    accept: PROMETHEUS_ACCEPT['prometheus-3.5 protobuf, text 0.0.4'],
    contentType: PROTOBUF,
    counterFamily: 'process_cpu_seconds_total',
  },
} as const

function assertPrometheus35(): void {
  const version = runCommand(prometheusBin(), ['--version'])
  assert.match(
    version.stdout + version.stderr,
    /^prometheus, version 3\.5\./,
    `${prometheusBin()} is not Prometheus 3.5: run scripts/fetch-prometheus3.sh`,
  )
}

test('Prometheus 3.5 scrapes the app in the format it prefers, under every setting', {
  timeout: 90_000,
}, async (t) => {
  assertPrometheus35()
  const app = await build(t)
  const { port } = await listenOnLoopback(app)
  const relay = await startRelay(port)
  t.after(() => relay.close())

  const config = [
    'global:',
    '  scrape_interval: 1s',
    '  scrape_timeout: 1s',
    'scrape_configs:',
    ...Object.entries(JOBS).flatMap(([job, { protocols }]) => [
      `  - job_name: ${job}`,
      `    params: { job: ['${job}'] }`,
      ...(protocols ? [`    scrape_protocols: [${protocols.join(', ')}]`] : []),
      `    static_configs: [{ targets: ['127.0.0.1:${relay.port}'] }]`,
    ]),
    '',
  ].join('\n')
  const prometheus = await startPrometheus(config)
  t.after(() => prometheus.stop())

  await waitFor(
    'every job scraped and up',
    async () => {
      const up = await prometheus.query('up')
      return up.length === Object.keys(JOBS).length && up.every((s) => s.value?.[1] === '1')
    },
    { timeoutMs: 60_000, intervalMs: 250 },
  )
  for (const [job, expected] of Object.entries(JOBS)) {
    assert.deepEqual(
      relay.last.get(job),
      { accept: expected.accept, contentType: expected.contentType },
      job,
    )
    const samples = await prometheus.query(`scrape_samples_scraped{job="${job}"}`)
    assert.ok(Number(samples[0]?.value?.[1]) > 0, `${job}: samples scraped`)
    // The metadata Prometheus keeps names the counter's family as the format it parsed does.
    const metadata = JSON.parse(
      (
        await httpGet(
          `${prometheus.url}/api/v1/targets/metadata?match_target=${encodeURIComponent(`{job="${job}"}`)}`,
        )
      ).body,
    ) as { data: Array<{ metric: string; type: string }> }
    const counters = metadata.data
      .filter((m) => m.type === 'counter' && m.metric.startsWith('process_cpu_seconds'))
      .map((m) => m.metric)
    assert.deepEqual(counters, [expected.counterFamily], job)
  }
})

const decoder = new ProtobufDecoder()
after(() => decoder.close())

/**
 * The answering worker's own open handles and requests, which change with every scrape and
 * with the worker a connection lands on: the same in both formats, but never the same twice.
 */
const MOMENTARY = /^nodejs_active_/

/** A stored series' identity without its job: name and sorted labels. */
function seriesKey(metric: Record<string, string>): string {
  const { job: _job, ...labels } = metric
  return JSON.stringify(Object.entries(labels).sort(([a], [b]) => (a < b ? -1 : 1)))
}

/** Every series Prometheus stored for `job` since `start` (seconds), as seriesKey writes them. */
async function storedSeries(url: string, job: string, start: number): Promise<string[]> {
  const match = encodeURIComponent(`{job="${job}"}`)
  const res = await httpGet(`${url}/api/v1/series?match[]=${match}&start=${start}`)
  const { data } = JSON.parse(res.body) as { data: Array<Record<string, string>> }
  return data
    .filter((metric) => !MOMENTARY.test(metric.__name__))
    .map(seriesKey)
    .sort()
}

const byKey = (series: PromSample[]) =>
  new Map(series.map((s) => [seriesKey(s.metric), s.value?.[1]] as const))

test('through PM2, Prometheus 3.5 stores the same series from protobuf as from the text format', {
  timeout: 180_000,
}, async (t) => {
  assertPrometheus35()
  const app = await startPm2App({ instances: 3 })
  t.after(() => app.stop())
  // Requests of every kind, over fresh connections, so every worker has some.
  const traced = { traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01' }
  for (let i = 0; i < 12; i++) {
    for (const path of ['/', '/items/1', '/items/999', '/nowhere', '/error']) {
      await httpGet(`${app.baseUrl}${path}`, { headers: i % 3 === 0 ? traced : {} })
    }
  }

  // The answer itself: protobuf, which the official schema's decoder reads to the text format's
  // families, in its order.
  const accept = PROMETHEUS_ACCEPT['prometheus-3.5 protobuf first']
  const answer = await httpGet(`${app.baseUrl}/metrics`, { headers: { accept } })
  assert.equal(answer.headers['content-type'], PROTOBUF)
  const text = (await httpGet(`${app.baseUrl}/metrics`)).body
  assert.deepEqual(
    (await decoder.decode(answer.rawBody)).map((family) => family.name),
    [...text.matchAll(/^# TYPE (\S+) /gm)].map(([, name]) => name),
  )

  const relay = await startRelay(app.port)
  t.after(() => relay.close())
  const jobs = { proto: 'PrometheusProto', text: 'PrometheusText0.0.4' }
  const config = [
    'global:',
    '  scrape_interval: 1s',
    '  scrape_timeout: 1s',
    'scrape_configs:',
    ...Object.entries(jobs).flatMap(([job, protocol]) => [
      `  - job_name: ${job}`,
      `    params: { job: ['${job}'] }`,
      `    scrape_protocols: [${protocol}]`,
      `    static_configs: [{ targets: ['127.0.0.1:${relay.port}'] }]`,
    ]),
    '',
  ].join('\n')
  const start = Math.floor(Date.now() / 1000) - 1
  const prometheus = await startPrometheus(config)
  t.after(() => prometheus.stop())
  await waitFor(
    'both jobs scraped and up',
    async () => {
      const up = await prometheus.query('up')
      return up.length === 2 && up.every((s) => s.value?.[1] === '1')
    },
    { timeoutMs: 60_000, intervalMs: 250 },
  )
  assert.equal(relay.last.get('proto')?.contentType, PROTOBUF)
  assert.equal(relay.last.get('text')?.contentType, 'text/plain; version=0.0.4; charset=utf-8')

  // Every series one job stored, the other stored too, under the same name and labels. A series
  // a worker starts mid-run (a first GC of a new kind) reaches both within a scrape or two.
  let proto: string[] = []
  let fromText: string[] = []
  await waitFor(
    'the same series stored from both jobs',
    async () => {
      proto = await storedSeries(prometheus.url, 'proto', start)
      fromText = await storedSeries(prometheus.url, 'text', start)
      return proto.length > 0 && proto.join('\n') === fromText.join('\n')
    },
    { timeoutMs: 30_000, intervalMs: 500 },
  ).catch(() => undefined)
  assert.deepEqual(proto, fromText)
  const names = new Set(proto.map((key) => (JSON.parse(key) as string[][])[0][1]))
  for (const name of [
    'http_requests_total',
    'http_request_duration_seconds_bucket',
    'http_request_duration_seconds_sum',
    'http_request_duration_seconds_count',
    'cluster_metrics_worker_up',
    'process_cpu_seconds_total',
    'nodejs_gc_duration_seconds_bucket',
  ]) {
    assert.ok(names.has(name), name)
  }
  // The request counts hold still now: both jobs stored the same values.
  for (const metric of ['http_requests_total', 'http_request_duration_seconds_bucket']) {
    const fromProto = byKey(await prometheus.query(`${metric}{job="proto"}`))
    const textValues = byKey(await prometheus.query(`${metric}{job="text"}`))
    assert.ok(fromProto.size > 0, metric)
    assert.deepEqual(fromProto, textValues, metric)
  }
  // The 60 requests above, every worker's counted once (the harness' own /health checks apart).
  const requests = await prometheus.query('sum(http_requests_total{job="proto",route!="/health"})')
  assert.equal(Number(requests[0]?.value?.[1]), 60)
})
