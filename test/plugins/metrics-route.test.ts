// GET /metrics through inject: the format the scrape asks for, gzip only for clients that ask,
// the bearer token as HTTP defines it, and concurrent scrapes sharing one collection.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { gunzipSync } from 'node:zlib'
import Fastify from 'fastify'
import { Counter, Registry } from 'prom-client'
import {
  type PrometheusAcceptName,
  PROMETHEUS_ACCEPT as SENT,
} from '../../harness/prometheus-accept'
import { decodeFamilies } from '../../harness/protobuf'
import metricsPlugin, { type MetricsPluginOptions } from '../../packages/plugin/src/plugin'

const PROMETHEUS_ACCEPT = SENT['prometheus-2.42']
const TEXT_004 = 'text/plain; version=0.0.4; charset=utf-8'
const TEXT_100 = 'text/plain; version=1.0.0; charset=utf-8'
const OPENMETRICS = 'application/openmetrics-text; version=1.0.0; charset=utf-8'
const PROTOBUF =
  'application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited'

async function build(
  t: { after: (fn: () => unknown) => void },
  options: MetricsPluginOptions = {},
) {
  const registry = new Registry()
  const app = Fastify()
  await app.register(metricsPlugin, { registry, workerId: '3', defaultMetrics: false, ...options })
  new Counter({ name: 'jobs_total', help: 'jobs', registers: [registry] }).inc(4)
  t.after(() => app.close())
  await app.ready()
  return app
}

test('OpenMetrics when the scrape prefers it, the text format otherwise', async (t) => {
  const app = await build(t)
  const om = await app.inject({ url: '/metrics', headers: { accept: PROMETHEUS_ACCEPT } })
  assert.equal(om.headers['content-type'], OPENMETRICS)
  assert.match(om.body, /^# TYPE jobs counter\njobs_total 4$/m)
  assert.ok(om.body.endsWith('\n# EOF\n'))
  for (const accept of [undefined, '*/*', 'text/plain', 'application/json']) {
    const res = await app.inject({ url: '/metrics', headers: accept ? { accept } : {} })
    assert.equal(res.headers['content-type'], TEXT_004, accept)
    assert.match(res.body, /^# TYPE jobs_total counter\njobs_total 4$/m)
    assert.doesNotMatch(res.body, /# EOF/)
  }
})

test('an Accept header that refuses every format with q=0 gets 406, not text', async (t) => {
  const app = await build(t)
  for (const accept of [
    '*/*;q=0',
    'text/*;q=0',
    'text/plain;q=0, application/openmetrics-text;q=0',
  ]) {
    const res = await app.inject({ url: '/metrics', headers: { accept } })
    assert.equal(res.statusCode, 406, accept)
    assert.match(res.headers['content-type'] as string, /^text\/plain/, accept)
    assert.match(res.body, /^Not Acceptable: \/metrics answers in text\/plain/, accept)
    assert.doesNotMatch(res.body, /jobs_total/, accept)
    assert.equal(res.headers.vary, 'Accept, Accept-Encoding', accept)
  }
  // Refusing the text formats leaves OpenMetrics, when the header names it.
  const openmetrics = await app.inject({
    url: '/metrics',
    headers: { accept: 'text/*;q=0, application/openmetrics-text' },
  })
  assert.equal(openmetrics.statusCode, 200)
  assert.equal(openmetrics.headers['content-type'], OPENMETRICS)
  assert.match(openmetrics.body, /^jobs_total 4$/m)
})

test("each Prometheus' Accept header: its preferred format, and a Content-Type naming it", async (t) => {
  const app = await build(t)
  const answers: Record<PrometheusAcceptName, string> = {
    'prometheus-2.42': OPENMETRICS,
    'prometheus-3.5': `${OPENMETRICS}; escaping=allow-utf-8`,
    'prometheus-3.5 protobuf first': PROTOBUF,
    'prometheus-3.5 protobuf, text 0.0.4': PROTOBUF,
    'prometheus-3.5 text 1.0.0': `${TEXT_100}; escaping=allow-utf-8`,
    'prometheus-3.5 text 0.0.4': TEXT_004,
    'prometheus-3.5 OpenMetrics 0.0.1': OPENMETRICS,
    'prometheus-3.5 escaping underscores': `${OPENMETRICS}; escaping=underscores`,
  }
  const text004 = (
    await app.inject({ url: '/metrics', headers: { accept: SENT['prometheus-3.5 text 0.0.4'] } })
  ).body
  const openMetrics = (
    await app.inject({ url: '/metrics', headers: { accept: PROMETHEUS_ACCEPT } })
  ).body
  assert.notEqual(text004, openMetrics)
  for (const [name, accept] of Object.entries(SENT)) {
    const res = await app.inject({ url: '/metrics', headers: { accept } })
    assert.equal(res.statusCode, 200, name)
    const contentType = answers[name as PrometheusAcceptName]
    assert.equal(res.headers['content-type'], contentType, name)
    if (contentType === PROTOBUF) {
      const families = decodeFamilies(res.rawPayload)
      assert.deepEqual(
        families.map((family) => family.name),
        [...text004.matchAll(/^# TYPE (\S+) /gm)].map(([, family]) => family),
        name,
      )
      assert.deepEqual(
        families.find((family) => family.name === 'jobs_total'),
        { name: 'jobs_total', help: 'jobs', type: 0, metric: [{ counter: { value: 4 } }] },
        name,
      )
      continue
    }
    // The bytes are those of the format named: text 1.0.0 writes legacy names as 0.0.4 does.
    assert.equal(
      res.body,
      contentType.startsWith('application/openmetrics-text') ? openMetrics : text004,
      name,
    )
  }
  assert.match(text004, /^# TYPE jobs_total counter\njobs_total 4$/m)
  assert.match(openMetrics, /^# TYPE jobs counter\njobs_total 4$/m)
})

test('gzip only for clients that accept it', async (t) => {
  const app = await build(t)
  const plain = await app.inject({ url: '/metrics' })
  assert.equal(plain.headers['content-encoding'], undefined)
  const refused = await app.inject({ url: '/metrics', headers: { 'accept-encoding': 'gzip;q=0' } })
  assert.equal(refused.headers['content-encoding'], undefined)
  const zipped = await app.inject({ url: '/metrics', headers: { 'accept-encoding': 'gzip' } })
  assert.equal(zipped.headers['content-encoding'], 'gzip')
  assert.equal(zipped.headers.vary, 'Accept, Accept-Encoding')
  assert.equal(gunzipSync(zipped.rawPayload).toString('utf8'), plain.body)
  // Protobuf's bytes, gzipped or not, are the same bytes.
  const accept = SENT['prometheus-3.5 protobuf first']
  const proto = await app.inject({ url: '/metrics', headers: { accept } })
  const protoZipped = await app.inject({
    url: '/metrics',
    headers: { accept, 'accept-encoding': 'gzip' },
  })
  assert.equal(protoZipped.headers['content-encoding'], 'gzip')
  assert.equal(protoZipped.headers['content-type'], PROTOBUF)
  assert.deepEqual(gunzipSync(protoZipped.rawPayload), proto.rawPayload)
  assert.ok(decodeFamilies(proto.rawPayload).some((family) => family.name === 'jobs_total'))
})

test('concurrent scrapes in one format and encoding share one collection', async (t) => {
  let collections = 0
  const app = await build(t, {
    collect: async (scrape) => {
      collections++
      await new Promise((resolve) => setTimeout(resolve, 20))
      return `# ${scrape.format}\n`
    },
  })
  const scrapes = await Promise.all([
    ...Array.from({ length: 5 }, () => app.inject({ url: '/metrics' })),
    ...Array.from({ length: 5 }, () =>
      app.inject({ url: '/metrics', headers: { accept: PROMETHEUS_ACCEPT } }),
    ),
  ])
  assert.equal(collections, 2)
  assert.deepEqual(
    scrapes.map((res) => res.body),
    [...Array(5).fill('# prometheus\n'), ...Array(5).fill('# openmetrics\n')],
  )
  await app.inject({ url: '/metrics' })
  assert.equal(collections, 3)
})

test('a scrape is never handed a collection made for another scrape timeout', async (t) => {
  const asked: Array<string | undefined> = []
  const app = await build(t, {
    collect: async (scrape) => {
      asked.push(scrape.scrapeTimeoutSeconds)
      await new Promise((resolve) => setTimeout(resolve, 20))
      return `# deadline ${scrape.scrapeTimeoutSeconds ?? 'none'}\n`
    },
  })
  const timeout = 'x-prometheus-scrape-timeout-seconds'
  const [short, normal, none] = await Promise.all([
    app.inject({ url: '/metrics', headers: { [timeout]: '0.001' } }),
    app.inject({ url: '/metrics', headers: { [timeout]: '10' } }),
    app.inject({ url: '/metrics' }),
  ])
  assert.deepEqual(asked, ['0.001', '10', undefined])
  assert.equal(short.body, '# deadline 0.001\n')
  assert.equal(normal.body, '# deadline 10\n')
  assert.equal(none.body, '# deadline none\n')
})

test('a bearer token protects /metrics; the scheme is case-insensitive', async (t) => {
  const token = 'a-very-secret-token-0123'
  const app = await build(t, { token })
  const none = await app.inject({ url: '/metrics' })
  assert.equal(none.statusCode, 401)
  assert.equal(none.headers['www-authenticate'], 'Bearer realm="metrics"')
  assert.equal(JSON.parse(none.body).error, 'Unauthorized')
  for (const authorization of [
    `Bearer ${token}x`,
    `Basic ${token}`,
    token,
    `Bearer ${token.slice(1)}`,
  ]) {
    const res = await app.inject({ url: '/metrics', headers: { authorization } })
    assert.equal(res.statusCode, 401, authorization)
  }
  for (const scheme of ['Bearer', 'bearer', 'BEARER']) {
    const res = await app.inject({
      url: '/metrics',
      headers: { authorization: `${scheme} ${token}` },
    })
    assert.equal(res.statusCode, 200, scheme)
  }
})
