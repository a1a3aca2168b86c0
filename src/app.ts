// The whole application, built from the validated configuration: hardened HTTP options, junk
// rejection, the metrics plugin (registered first: it measures the routes after it), the demo
// routes, the cluster view's collector under PM2, and /metrics on its own port when asked.
// Tests build it and use inject; only server.ts listens.
import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify'
import type { Registry } from 'prom-client'
import { type Config, parseBuckets, resolveMetricsToken } from './config'
import { hardenedServerOptions, rejectJunk } from './lib/http-hardening'
import { resolveWorkerIdentity, type WorkerIdentity } from './lib/worker-identity'
import metricsPlugin, { metricsRoute } from './plugins/metrics'
import { createWorkerRegistry } from './plugins/metrics/http-metrics'
import demoRoutes from './routes/demo'

export interface BuildOptions {
  /** Who this process is; from PM2's environment by default. */
  identity?: WorkerIdentity
  /** Fastify's logger option; JSON lines at `LOG_LEVEL`, tagged with pid and worker id, by default. */
  logger?: FastifyServerOptions['logger']
  /** Registry to record into; a fresh one by default. */
  registry?: Registry
}

declare module 'fastify' {
  interface FastifyInstance {
    /** The server for `/metrics` alone when `METRICS_PORT` is set (listened by server.ts). */
    metricsServer: FastifyInstance | null
  }
}

export async function buildApp(
  config: Config,
  options: BuildOptions = {},
): Promise<FastifyInstance> {
  const identity = options.identity ?? resolveWorkerIdentity()
  const { workerId } = identity
  const logger = options.logger ?? {
    level: config.LOG_LEVEL,
    base: { pid: process.pid, worker_id: workerId },
  }
  const serverOptions = { logger, ...hardenedServerOptions(config) }
  const registry = options.registry ?? createWorkerRegistry(workerId)
  const token = resolveMetricsToken(config)

  const app = Fastify(serverOptions)
  rejectJunk(app)

  const separatePort = config.METRICS_PORT !== undefined
  await app.register(metricsPlugin, {
    workerId,
    registry,
    buckets: parseBuckets(config.METRICS_BUCKETS),
    endpoint: separatePort ? false : '/metrics',
    token,
    cluster: config.METRICS_CLUSTER &&
      identity.clusterMode && {
        key: `${identity.appName ?? 'app'}-${config.PORT}`,
        socketDir: config.METRICS_SOCKET_DIR,
        gatherTimeoutMs: config.METRICS_GATHER_TIMEOUT_MS,
      },
  })
  await app.register(demoRoutes, { workerId, slowMaxMs: config.SLOW_MAX_MS })

  // /metrics on its own port: only the exposition route, never the public API.
  let metricsServer: FastifyInstance | null = null
  if (separatePort) {
    metricsServer = Fastify(serverOptions)
    rejectJunk(metricsServer)
    await metricsServer.register(metricsRoute, {
      path: '/metrics',
      collect: app.metrics.collect,
      token,
    })
    const server = metricsServer
    app.addHook('onClose', async () => server.close())
  }
  app.decorate('metricsServer', metricsServer)
  return app
}

/** Listens on PORT, and on METRICS_PORT when /metrics has its own server. */
export async function listen(app: FastifyInstance, config: Config): Promise<void> {
  await app.listen({ port: config.PORT, host: config.HOST })
  if (app.metricsServer !== null && config.METRICS_PORT !== undefined) {
    await app.metricsServer.listen({
      port: config.METRICS_PORT,
      host: config.METRICS_HOST ?? config.HOST,
    })
  }
}
