// A real Prometheus 3.5 scrapes the built app in three of its scrape_protocols settings: its
// defaults, text 1.0.0 only, and protocol buffers first (native histograms' order). A loopback
// relay between them records what Prometheus asks for and what the app answers; each target is
// up, and Prometheus read the answer in the format the Content-Type named (OpenMetrics families
// drop a counter's `_total`, the text format's keep it).
import assert from 'node:assert/strict'
import { createServer, request } from 'node:http'
import type { AddressInfo } from 'node:net'
import { test } from 'node:test'
import { httpGet, waitFor } from '../../harness/net'
import { prometheusBin, startPrometheus } from '../../harness/prometheus'
import { PROMETHEUS_ACCEPT } from '../../harness/prometheus-accept'
import { runCommand } from '../../harness/stack'
import { build, listenOnLoopback } from '../helper'

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
    contentType: 'text/plain; version=0.0.4; charset=utf-8',
    counterFamily: 'process_cpu_seconds_total',
  },
} as const

test('Prometheus 3.5 scrapes the app in the format it prefers, under every setting', {
  timeout: 90_000,
}, async (t) => {
  const version = runCommand(prometheusBin(), ['--version'])
  assert.match(
    version.stdout + version.stderr,
    /^prometheus, version 3\.5\./,
    `${prometheusBin()} is not Prometheus 3.5: run scripts/fetch-prometheus3.sh`,
  )
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
