// Builds the application: the metrics plugin first (it measures routes registered after it),
// then the routes. Tests build it and use inject; only server.ts listens.
import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify'
import type { Registry } from 'prom-client'
import metricsPlugin, { type MetricsCollector } from './plugins/metrics'
import demoRoutes from './routes/demo'

export interface AppOptions {
  workerId: string
  registry?: Registry
  buckets?: readonly number[]
  slowMaxMs?: number
  metricsToken?: string
  /** Path of /metrics on this app, or `false` when it is served on a separate port. */
  metricsEndpoint?: string | false
  /** The cluster view's collector; without it /metrics shows this process alone. */
  collectMetrics?: MetricsCollector
  fastify?: FastifyServerOptions
}

export async function buildApp(options: AppOptions): Promise<FastifyInstance> {
  const app = Fastify(options.fastify ?? { logger: false })
  await app.register(metricsPlugin, {
    workerId: options.workerId,
    registry: options.registry,
    buckets: options.buckets,
    token: options.metricsToken,
    endpoint: options.metricsEndpoint,
    collect: options.collectMetrics,
  })
  await app.register(demoRoutes, {
    workerId: options.workerId,
    slowMaxMs: options.slowMaxMs ?? 3000,
  })
  return app
}
