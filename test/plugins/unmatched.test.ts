// Requests that reach no route: router rejections (414, 400, a failing async constraint) are
// counted through Fastify's `frameworkErrors` option under the unmatched route, like a 404, and
// junk methods on unmatched paths share one `method` label. Through inject and, where inject
// takes another path than a socket (the router's rejections, methods Node alone accepts), a
// real server on 127.0.0.1.
import assert from 'node:assert/strict'
import { METHODS } from 'node:http'
import { test } from 'node:test'
import Fastify, {
  type FastifyInstance,
  type FastifyServerOptions,
  type onRequestHookHandler,
} from 'fastify'
import { Registry } from 'prom-client'
import { httpGet } from '../../harness/net'
import metricsPlugin, {
  COMMON_METHODS,
  countFrameworkErrors,
  OTHER_METHOD,
  UNMATCHED_ROUTE,
} from '../../packages/plugin/src/plugin'

/** The router rejects a parameter longer than this (Fastify's default). */
const MAX_PARAM_LENGTH = 100
const LONG_PARAM_URL = `/items/${'x'.repeat(MAX_PARAM_LENGTH + 1)}`

type Samples = Map<string, number>

const DURATION = 'http_request_duration_seconds'

/** Samples of one family (`sample`: e.g. its `_count`), keyed by their labels. */
async function samplesOf(
  registry: Registry,
  family: string,
  sample: string = family,
): Promise<Samples> {
  const metric = (await registry.getMetricsAsJSON()).find((m) => m.name === family)
  const samples: Samples = new Map()
  for (const value of metric?.values ?? []) {
    if (((value as { metricName?: string }).metricName ?? family) !== sample) continue
    const { method, route, status_code, worker_id } = value.labels
    samples.set(`${method} ${route} ${status_code} ${worker_id}`, value.value)
  }
  return samples
}

/** Every sample that changed between two snapshots, with its increase. */
function increases(before: Samples, after: Samples): Record<string, number> {
  const moved: Record<string, number> = {}
  for (const [key, value] of after) {
    const delta = value - (before.get(key) ?? 0)
    if (delta !== 0) moved[key] = delta
  }
  return moved
}

async function build(
  t: { after: (fn: () => unknown) => void },
  fastifyOptions: FastifyServerOptions = { frameworkErrors: countFrameworkErrors },
) {
  const registry = new Registry()
  const app = Fastify(fastifyOptions)
  await app.register(metricsPlugin, { registry, workerId: '2', buckets: [0.1, 1] })
  app.get('/items/:id', async (request) => ({ id: (request.params as { id: string }).id }))
  t.after(() => app.close())
  return { app, registry }
}

/** Sends one request by `send`; returns its status and what moved in the counter and histogram. */
async function countedOnce(registry: Registry, send: () => Promise<number>) {
  const counterBefore = await samplesOf(registry, 'http_requests_total')
  const countBefore = await samplesOf(registry, DURATION, `${DURATION}_count`)
  const status = await send()
  return {
    status,
    counter: increases(counterBefore, await samplesOf(registry, 'http_requests_total')),
    histogram: increases(countBefore, await samplesOf(registry, DURATION, `${DURATION}_count`)),
  }
}

const REJECTIONS = [
  {
    what: 'a parameter longer than maxParamLength',
    url: LONG_PARAM_URL,
    status: 414,
    code: 'FST_ERR_MAX_PARAM_LENGTH',
  },
  { what: 'a malformed escape', url: '/nope%', status: 400, code: 'FST_ERR_BAD_URL' },
  {
    what: 'a malformed escape in a parameter',
    url: '/items/%zz',
    status: 400,
    code: 'FST_ERR_BAD_URL',
  },
] as const

test('router rejections reach no hook: only frameworkErrors can see them', async (t) => {
  const app = Fastify()
  const seen: string[] = []
  for (const name of ['onRequest', 'preHandler', 'onResponse'] as const) {
    const hook: onRequestHookHandler = (_request, _reply, done) => {
      seen.push(name)
      done()
    }
    app.addHook(name as 'onRequest', hook)
  }
  app.addHook('onRequestAbort', (_request, done) => {
    seen.push('onRequestAbort')
    done()
  })
  app.get('/items/:id', async () => ({ ok: true }))
  t.after(() => app.close())
  for (const { url, status } of REJECTIONS) {
    const res = await app.inject({ method: 'GET', url })
    assert.equal(res.statusCode, status, url)
  }
  assert.deepEqual(seen, [])
  // A plain 404 runs them, which is why 404s were always counted.
  await app.inject({ method: 'GET', url: '/nothing' })
  assert.deepEqual(seen, ['onRequest', 'preHandler', 'onResponse'])
})

for (const { what, url, status, code } of REJECTIONS) {
  test(`${what} (${status}) is counted once under the unmatched route, through inject`, async (t) => {
    const { app, registry } = await build(t)
    await app.ready()
    let body: Record<string, unknown> = {}
    const moved = await countedOnce(registry, async () => {
      const res = await app.inject({ method: 'GET', url })
      body = res.json()
      return res.statusCode
    })
    assert.equal(moved.status, status)
    assert.deepEqual(body.code, code)
    assert.equal(body.statusCode, status)
    const key = `GET ${UNMATCHED_ROUTE} ${status} 2`
    assert.deepEqual(moved.counter, { [key]: 1 })
    assert.deepEqual(moved.histogram, { [key]: 1 })
  })
}

test('router rejections are counted once over a real socket, with a keep-alive-safe answer', async (t) => {
  const { app, registry } = await build(t)
  const address = await app.listen({ port: 0, host: '127.0.0.1' })
  for (const { url, status, code } of REJECTIONS) {
    const moved = await countedOnce(registry, async () => {
      const res = await httpGet(`${address}${url}`)
      assert.equal(JSON.parse(res.body).code, code)
      return res.status
    })
    assert.equal(moved.status, status, url)
    const key = `GET ${UNMATCHED_ROUTE} ${status} 2`
    assert.deepEqual(moved.counter, { [key]: 1 }, url)
    assert.deepEqual(moved.histogram, { [key]: 1 }, url)
  }
})

// A constraint strategy whose derivation fails: the router answers 500 before any route.
const failingTenantConstraint = {
  name: 'tenant',
  storage: () => {
    const byTenant = new Map<string, unknown>()
    return {
      get: (tenant: string) => byTenant.get(tenant) ?? null,
      set: (tenant: string, store: unknown) => byTenant.set(tenant, store),
    }
  },
  deriveConstraint: (_req: unknown, _ctx: unknown, done: (err: Error | null) => void) =>
    done(new Error('no tenant store')),
  validate: () => true,
  mustMatchWhenDerived: true,
}

test('a failing async constraint (500) is counted under the unmatched route', async (t) => {
  const { app, registry } = await build(t, {
    frameworkErrors: countFrameworkErrors,
    constraints: {
      tenant: failingTenantConstraint,
    } as unknown as FastifyServerOptions['constraints'],
  })
  app.get('/tenant', { constraints: { tenant: 'a' } }, async () => ({ ok: true }))
  await app.ready()
  const moved = await countedOnce(registry, async () => (await app.inject('/tenant')).statusCode)
  assert.equal(moved.status, 500)
  assert.deepEqual(moved.counter, { [`GET ${UNMATCHED_ROUTE} 500 2`]: 1 })
})

test('without the metrics plugin, countFrameworkErrors still answers like Fastify', async (t) => {
  const app = Fastify({ frameworkErrors: countFrameworkErrors })
  const plain = Fastify()
  for (const instance of [app, plain]) instance.get('/items/:id', async () => ({ ok: true }))
  t.after(() => Promise.all([app.close(), plain.close()]))
  for (const { url } of REJECTIONS) {
    const [ours, fastify] = await Promise.all([app.inject(url), plain.inject(url)])
    assert.equal(ours.statusCode, fastify.statusCode, url)
    assert.equal(ours.json().code, fastify.json().code, url)
    assert.equal(ours.json().message, fastify.json().message, url)
    assert.match(ours.headers['content-type'] as string, /^application\/json/)
  }
})

/** Every method Node's parser accepts but CONNECT, which Node hands to a 'connect' listener. */
const SENDABLE_METHODS = METHODS.filter((method) => method !== 'CONNECT')

async function methodLabels(registry: Registry, route: string): Promise<Map<string, number>> {
  const byMethod = new Map<string, number>()
  for (const [key, value] of await samplesOf(registry, 'http_requests_total')) {
    const [method, keyRoute] = key.split(' ')
    if (keyRoute === route) byMethod.set(method, (byMethod.get(method) ?? 0) + value)
  }
  return byMethod
}

test('every method Node accepts, on an unmatched path, yields at most 8 method labels', async (t) => {
  const { app, registry } = await build(t)
  const address = await app.listen({ port: 0, host: '127.0.0.1' })
  for (const method of SENDABLE_METHODS) {
    // 404, or 400 for QUERY without a Content-Type: answered before any route either way.
    const { status } = await httpGet(`${address}/nowhere/${method}`, { method })
    assert.ok(status === 404 || status === 400, `${method}: ${status}`)
  }
  assert.ok(SENDABLE_METHODS.length > 30, `${SENDABLE_METHODS.length} methods sent`)
  const byMethod = await methodLabels(registry, UNMATCHED_ROUTE)
  assert.deepEqual([...byMethod.keys()].sort(), [...COMMON_METHODS, OTHER_METHOD].sort())
  const junk = SENDABLE_METHODS.filter((method) => !COMMON_METHODS.has(method))
  assert.equal(byMethod.get(OTHER_METHOD), junk.length)
  for (const method of COMMON_METHODS) assert.equal(byMethod.get(method), 1, method)
})

test('a route registered for an unusual method keeps its method label', async (t) => {
  const registry = new Registry()
  const app: FastifyInstance = Fastify()
  app.addHttpMethod('PROPFIND')
  await app.register(metricsPlugin, { registry, workerId: '2' })
  app.route({ method: 'PROPFIND', url: '/dav', handler: async () => ({ dav: true }) })
  t.after(() => app.close())
  const address = await app.listen({ port: 0, host: '127.0.0.1' })
  assert.equal((await httpGet(`${address}/dav`, { method: 'PROPFIND' })).status, 200)
  assert.equal((await httpGet(`${address}/elsewhere`, { method: 'PROPFIND' })).status, 404)
  assert.deepEqual(Object.fromEntries(await methodLabels(registry, '/dav')), { PROPFIND: 1 })
  assert.deepEqual(Object.fromEntries(await methodLabels(registry, UNMATCHED_ROUTE)), {
    [OTHER_METHOD]: 1,
  })
})

test('an unmatched request the client aborts is counted as 499 under a bounded method', async (t) => {
  const { app, registry } = await build(t)
  let started!: () => void
  const hookStarted = new Promise<void>((resolve) => {
    started = resolve
  })
  // Holds unmatched requests long enough for the client to hang up.
  app.addHook('onRequest', (request, _reply, done) => {
    if (!request.url.startsWith('/gone')) return done()
    started()
    setTimeout(done, 300)
  })
  const address = await app.listen({ port: 0, host: '127.0.0.1' })
  const aborted = httpGet(`${address}/gone`, { method: 'MKCOL', timeoutMs: 50 })
  await hookStarted
  await assert.rejects(aborted)
  await new Promise((resolve) => setTimeout(resolve, 400))
  assert.deepEqual(Object.fromEntries(await methodLabels(registry, UNMATCHED_ROUTE)), {
    [OTHER_METHOD]: 1,
  })
  const keys = [...(await samplesOf(registry, 'http_requests_total')).keys()]
  assert.deepEqual(keys, [`${OTHER_METHOD} ${UNMATCHED_ROUTE} 499 2`])
})
