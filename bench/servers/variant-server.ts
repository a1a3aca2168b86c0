// One real Fastify 5 server for the CPU-per-request bench, in the variant named by argv[2]
// (see ../lib/variants.ts), serving the service's demo routes on a free 127.0.0.1 port.
// The runner talks to it over the IPC channel only: the server reports its port, then its own
// CPU time when asked, so the measurement never travels through the HTTP server it measures.
import Fastify, { type FastifyInstance } from 'fastify'
import { Counter, Histogram, Registry } from 'prom-client'
import metricsPlugin from '../../packages/plugin/src/plugin'
import { DEFAULT_BUCKETS } from '../../packages/plugin/src/plugin/http-metrics'
import demoRoutes from '../../src/routes/demo'
import {
  isServerVariant,
  type RunnerMessage,
  type ServerMessage,
  type ServerVariant,
} from '../lib/variants'

/** What most hand-written Fastify metrics look like: one global hook, a labels object per request. */
function registerNaiveHook(app: FastifyInstance): void {
  const registry = new Registry()
  const labelNames = ['method', 'route', 'status_code', 'worker_id']
  const requests = new Counter({
    name: 'http_requests_total',
    help: 'requests',
    labelNames,
    registers: [registry],
  })
  const duration = new Histogram({
    name: 'http_request_duration_seconds',
    help: 'duration',
    labelNames,
    buckets: DEFAULT_BUCKETS,
    registers: [registry],
  })
  app.addHook('onResponse', (request, reply, done) => {
    const labels = {
      method: request.method,
      route: request.routeOptions.url ?? '__unmatched__',
      status_code: String(reply.statusCode),
      worker_id: '0',
    }
    requests.inc(labels)
    duration.observe(labels, reply.elapsedTime / 1000)
    done()
  })
  app.get('/metrics', async (_request, reply) =>
    reply.type(registry.contentType).send(await registry.metrics()),
  )
}

async function registerVariant(app: FastifyInstance, variant: ServerVariant): Promise<void> {
  switch (variant) {
    case 'bare':
      return
    case 'naive-hook':
      registerNaiveHook(app)
      return
    case 'plugin':
      // As the service registers it: its own registry, worker_id, process metrics, /metrics.
      await app.register(metricsPlugin, { workerId: '0' })
      return
    case 'plugin-native':
      // As the service runs it with METRICS_NATIVE_HISTOGRAMS=true.
      await app.register(metricsPlugin, { workerId: '0', nativeHistograms: {} })
      return
    case 'plugin-http-only':
      // Like for like with fastify-metrics' histogram-only setup: no process metrics.
      await app.register(metricsPlugin, { workerId: '0', defaultMetrics: false })
      return
    case 'fastify-metrics-histogram':
    case 'fastify-metrics-defaults': {
      // Loaded untyped: its `FastifyInstance.metrics` declaration differs from this project's.
      const fastifyMetrics = require('fastify-metrics').default
      await app.register(
        fastifyMetrics,
        variant === 'fastify-metrics-histogram'
          ? {
              endpoint: '/metrics',
              defaultMetrics: { enabled: false },
              routeMetrics: { enabled: { histogram: true, summary: false } },
            }
          : { endpoint: '/metrics' },
      )
      return
    }
  }
}

async function main(): Promise<void> {
  const variant = process.argv[2] ?? ''
  if (!isServerVariant(variant)) throw new Error(`unknown variant ${JSON.stringify(variant)}`)
  if (process.send === undefined) throw new Error('start me with an IPC channel (fork)')
  const send = (message: ServerMessage) => process.send?.(message)

  const app = Fastify({ logger: false })
  await registerVariant(app, variant)
  await app.register(demoRoutes, { workerId: '0', slowMaxMs: 1000 })
  await app.listen({ port: 0, host: '127.0.0.1' })

  const shutdown = async () => {
    await app.close()
    // A clean exit, so that --cpu-prof can write its profile.
    process.exit(0)
  }
  process.on('message', (message: RunnerMessage) => {
    if (message.type === 'usage') {
      const { user, system } = process.cpuUsage()
      send({ type: 'usage', cpuMicros: user + system, rssBytes: process.memoryUsage.rss() })
    } else if (message.type === 'gc') {
      // Under --expose-gc only (the instruction-count bench): every measurement then starts
      // from an empty young generation, so garbage collections fall at the same requests.
      // A minor collection only: a full one throws optimised code away.
      ;(globalThis.gc as ((options: { type: 'minor' }) => void) | undefined)?.({ type: 'minor' })
      send({ type: 'gc-done' })
    } else if (message.type === 'close') {
      void shutdown()
    }
  })
  // Never outlive the runner.
  process.on('disconnect', () => void shutdown())

  const address = app.server.address()
  send({ type: 'ready', port: typeof address === 'object' && address ? address.port : 0 })
}

main().catch((err: unknown) => {
  process.stderr.write(`${(err as Error).stack}\n`)
  process.exit(1)
})
