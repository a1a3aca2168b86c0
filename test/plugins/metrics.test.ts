// The metrics plugin alone, through fastify.inject, with a fresh registry per test: exact
// exposition lines for route templates, unmatched routes, status codes, opt-out and labels.
import assert from 'node:assert/strict'
import { request } from 'node:http'
import { test } from 'node:test'
import Fastify from 'fastify'
import { Registry } from 'prom-client'
import * as entry from '../../packages/plugin/src'
import metricsPlugin, {
  type MetricsPluginOptions,
  UNMATCHED_ROUTE,
} from '../../packages/plugin/src/plugin'

async function build(
  t: { after: (fn: () => unknown) => void },
  options: MetricsPluginOptions = {},
) {
  const registry = new Registry()
  const app = Fastify()
  await app.register(metricsPlugin, { registry, workerId: '3', buckets: [0.1, 1], ...options })
  app.get('/items/:id', async (request) => ({ id: (request.params as { id: string }).id }))
  app.get('/boom', async () => {
    throw new Error('boom')
  })
  app.get('/quiet', { config: { disableMetrics: true } }, async () => ({ ok: true }))
  app.post('/echo', async (request) => request.body)
  t.after(() => app.close())
  await app.ready()
  return { app, registry }
}

const linesOf = (text: string, prefix: string) =>
  text.split('\n').filter((line) => line.startsWith(prefix))

test('counts requests by route template, never by raw URL', async (t) => {
  const { app, registry } = await build(t)
  for (const id of ['1', '2', '3']) await app.inject({ method: 'GET', url: `/items/${id}?x=${id}` })
  const text = await registry.metrics()
  assert.deepEqual(linesOf(text, 'http_requests_total{'), [
    'http_requests_total{method="GET",route="/items/:id",status_code="200",worker_id="3"} 3',
  ])
  assert.deepEqual(linesOf(text, 'http_request_duration_seconds_count{'), [
    'http_request_duration_seconds_count{method="GET",route="/items/:id",status_code="200",worker_id="3"} 3',
  ])
  assert.equal(linesOf(text, 'http_request_duration_seconds_bucket{').length, 3) // 0.1, 1, +Inf
  assert.match(
    text,
    /http_request_duration_seconds_bucket\{le="\+Inf",method="GET",route="\/items\/:id",status_code="200",worker_id="3"\} 3/,
  )
})

test('records status codes separately, including 500s and 404s', async (t) => {
  const { app, registry } = await build(t)
  await app.inject({ method: 'GET', url: '/boom' })
  await app.inject({ method: 'GET', url: '/boom' })
  await app.inject({ method: 'GET', url: '/items/9' })
  const text = await registry.metrics()
  assert.deepEqual(linesOf(text, 'http_requests_total{'), [
    'http_requests_total{method="GET",route="/boom",status_code="500",worker_id="3"} 2',
    'http_requests_total{method="GET",route="/items/:id",status_code="200",worker_id="3"} 1',
  ])
})

test('requests that match no route share one series, however many paths', async (t) => {
  const { app, registry } = await build(t)
  for (let i = 0; i < 50; i++)
    await app.inject({ method: 'GET', url: `/junk/${i}/${Math.random()}` })
  await app.inject({ method: 'DELETE', url: '/nothing-here' })
  const text = await registry.metrics()
  assert.deepEqual(linesOf(text, 'http_requests_total{'), [
    `http_requests_total{method="GET",route="${UNMATCHED_ROUTE}",status_code="404",worker_id="3"} 50`,
    `http_requests_total{method="DELETE",route="${UNMATCHED_ROUTE}",status_code="404",worker_id="3"} 1`,
  ])
})

test('routes can opt out, and /metrics is not measured by default', async (t) => {
  const { app, registry } = await build(t)
  await app.inject({ method: 'GET', url: '/quiet' })
  const res = await app.inject({ method: 'GET', url: '/metrics' })
  assert.equal(res.statusCode, 200)
  await app.inject({ method: 'GET', url: '/metrics' })
  const text = await registry.metrics()
  assert.deepEqual(linesOf(text, 'http_requests_total{'), [])
})

test('/metrics can be measured when asked to', async (t) => {
  const { app, registry } = await build(t, { measureEndpoint: true })
  await app.inject({ method: 'GET', url: '/metrics' })
  assert.deepEqual(linesOf(await registry.metrics(), 'http_requests_total{'), [
    'http_requests_total{method="GET",route="/metrics",status_code="200",worker_id="3"} 1',
  ])
})

test('GET /metrics serves the text format with its content type and exactly the four labels', async (t) => {
  const { app } = await build(t)
  await app.inject({ method: 'POST', url: '/echo', payload: { a: 1 } })
  const res = await app.inject({ method: 'GET', url: '/metrics' })
  assert.equal(res.statusCode, 200)
  assert.equal(res.headers['content-type'], 'text/plain; version=0.0.4; charset=utf-8')
  assert.match(res.body, /^# HELP http_requests_total /m)
  assert.match(res.body, /^# TYPE http_requests_total counter$/m)
  assert.match(res.body, /^# TYPE http_request_duration_seconds histogram$/m)
  const line = linesOf(res.body, 'http_requests_total{')[0]
  const labelNames = [...line.matchAll(/(\w+)="/g)].map((m) => m[1])
  assert.deepEqual(labelNames, ['method', 'route', 'status_code', 'worker_id'])
  assert.equal(
    line,
    'http_requests_total{method="POST",route="/echo",status_code="200",worker_id="3"} 1',
  )
})

test('HEAD requests get their own method label on the same route', async (t) => {
  const { app, registry } = await build(t)
  await app.inject({ method: 'HEAD', url: '/items/1' })
  assert.deepEqual(linesOf(await registry.metrics(), 'http_requests_total{'), [
    'http_requests_total{method="HEAD",route="/items/:id",status_code="200",worker_id="3"} 1',
  ])
})

test('the duration is the time to the end of the response, in seconds', async (t) => {
  const registry = new Registry()
  const app = Fastify()
  await app.register(metricsPlugin, { registry, workerId: '0', buckets: [0.05, 0.2, 1] })
  app.get('/wait', async () => {
    // At least 100 ms of real time (a timer alone may fire a little early).
    const until = performance.now() + 100
    while (performance.now() < until) await new Promise((resolve) => setTimeout(resolve, 5))
    return { ok: true }
  })
  t.after(() => app.close())
  await app.inject({ method: 'GET', url: '/wait' })
  // The handler waits 100 ms, so the response cannot end sooner: a lower bound only, which
  // no load on the machine can break.
  const text = await registry.metrics()
  const sample = (name: string) =>
    Number(
      text
        .split('\n')
        .find((line) => line.startsWith(name))
        ?.split(' ')[1],
    )
  assert.equal(sample('http_request_duration_seconds_bucket{le="0.05"'), 0)
  assert.equal(sample('http_request_duration_seconds_count{'), 1)
  assert.ok(sample('http_request_duration_seconds_sum{') >= 0.1)
})

test('the default registry carries worker_id on the process metrics', async (t) => {
  const app = Fastify()
  await app.register(metricsPlugin, { workerId: '7' })
  t.after(() => app.close())
  const res = await app.inject({ method: 'GET', url: '/metrics' })
  assert.match(res.body, /^process_cpu_user_seconds_total\{worker_id="7"\} /m)
  assert.match(res.body, /^nodejs_eventloop_lag_p99_seconds\{worker_id="7"\} /m)
  assert.match(res.body, /^process_start_time_seconds\{worker_id="7"\} /m)
  assert.ok(app.metrics.registry instanceof Registry)
  assert.equal(app.metrics.workerId, '7')
})

test('app.metrics.http takes both call forms with exemplars on or off, and writes the labelled series', async (t) => {
  const labels = { method: 'GET', route: '/jobs', status_code: '200', worker_id: '3' }
  const series = 'http_requests_total{method="GET",route="/jobs",status_code="200",worker_id="3"}'
  for (const exemplars of [true, false]) {
    const { app, registry } = await build(t, { exemplars })
    const { requestsTotal, requestDuration } = app.metrics.http
    requestsTotal.inc(labels, 2)
    requestsTotal.inc({ labels, value: 3 })
    requestDuration.observe(labels, 0.5)
    requestDuration.observe({ labels, value: 0.5 })
    requestDuration.startTimer(labels)()
    const text = await registry.metrics()
    assert.deepEqual(
      linesOf(text, 'http_requests_total'),
      [`${series} 5`],
      `exemplars ${exemplars}`,
    )
    assert.deepEqual(
      linesOf(text, 'http_request_duration_seconds_count'),
      [`http_request_duration_seconds_count{${series.slice(series.indexOf('{') + 1)} 3`],
      `exemplars ${exemplars}`,
    )
  }
})

test('the public entry exports the plugin and what configures it, not the cluster view’s internals', () => {
  for (const name of ['metricsPlugin', 'default', 'createHttpMetrics', 'socketDirFor']) {
    assert.ok(name in entry, name)
  }
  for (const name of ['createSocketPaths', 'NativeHistogramStore', 'ClusterView']) {
    assert.equal(name in entry, false, name)
  }
  const own = entry.createHttpMetrics(new Registry(), undefined, { native: {} })
  assert.deepEqual(Object.keys(own).sort(), ['requestDuration', 'requestsTotal'])
})

test('a custom collector replaces the exposition body', async (t) => {
  const { app } = await build(t, { collect: async () => '# cluster view\n' })
  const res = await app.inject({ method: 'GET', url: '/metrics' })
  assert.equal(res.body, '# cluster view\n')
})

test('bad options fail with a clear error', async () => {
  for (const [options, message] of [
    [{ buckets: [] }, /buckets must not be empty/],
    [{ buckets: [1, 0.5] }, /strictly increasing/],
    [{ endpoint: 'metrics' }, /must start with "\/"/],
  ] as const) {
    const app = Fastify()
    await assert.rejects(async () => {
      await app.register(metricsPlugin, { registry: new Registry(), ...options })
      await app.ready()
    }, message)
    await app.close()
  }
})

test('a request the client aborts is counted once, as 499, and not timed', async (t) => {
  const registry = new Registry()
  const app = Fastify()
  await app.register(metricsPlugin, { registry, workerId: '1' })
  let finished!: () => void
  const handlerDone = new Promise<void>((resolve) => {
    finished = resolve
  })
  app.get('/hang', async () => {
    await new Promise((resolve) => setTimeout(resolve, 300))
    finished()
    return { late: true }
  })
  t.after(() => app.close())
  const address = await app.listen({ port: 0, host: '127.0.0.1' })
  const req = request(`${address}/hang`)
  req.on('error', () => {})
  req.end()
  setTimeout(() => req.destroy(), 50)
  await handlerDone
  await new Promise((resolve) => setTimeout(resolve, 100))
  const text = await registry.metrics()
  assert.deepEqual(linesOf(text, 'http_requests_total{'), [
    'http_requests_total{method="GET",route="/hang",status_code="499",worker_id="1"} 1',
  ])
  assert.deepEqual(linesOf(text, 'http_request_duration_seconds_count{'), [])
})
