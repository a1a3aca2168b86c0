// The whole application, built from the validated configuration: hardened HTTP options, junk
// rejection, the metrics plugin (registered first: it measures the routes after it), the demo
// routes, the cluster view's collector under PM2, and /metrics on its own port when asked.
// Tests build it and use inject; only server.ts listens.
import Fastify, { type FastifyInstance, type FastifyServerOptions, LogController } from 'fastify'
import metricsPlugin, {
  countFrameworkErrors,
  createWorkerRegistry,
  metricsRoute,
  resolveWorkerIdentity,
  socketDirFor,
  type WorkerIdentity,
} from 'fastify-pm2-cluster-metrics'
import type { Registry } from 'prom-client'
import {
  type Config,
  ConfigError,
  nativeHistogramsOf,
  parseBuckets,
  resolveMetricsToken,
  workerIdOf,
} from './config'
import { hardenedServerOptions, rejectJunk } from './lib/http-hardening'
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
  const workerId = workerIdOf(config, identity)
  const logger = options.logger ?? {
    level: config.LOG_LEVEL,
    base: { pid: process.pid, worker_id: workerId },
  }
  const serverOptions = {
    logger,
    // Fastify's two lines per request only when asked: the metrics count the traffic.
    logController: new LogController({ disableRequestLogging: !config.LOG_REQUESTS }),
    ...hardenedServerOptions(config),
  }
  const registry = options.registry ?? createWorkerRegistry(workerId)
  const token = resolveMetricsToken(config)

  // Requests the router rejects before any hook runs (a bad escape, an overlong parameter)
  // are counted there, under the unmatched route.
  const app = Fastify({ ...serverOptions, frameworkErrors: countFrameworkErrors })
  rejectJunk(app)

  const clusterKey = `${identity.appName ?? 'app'}-${config.PORT}`
  const socketDir = config.METRICS_SOCKET_DIR ?? socketDirFor(clusterKey)
  const cluster = config.METRICS_CLUSTER && identity.clusterMode

  const separatePort = config.METRICS_PORT !== undefined
  const metricsOptions = {
    workerId,
    registry,
    buckets: parseBuckets(config.METRICS_BUCKETS),
    nativeHistograms: nativeHistogramsOf(config),
    endpoint: separatePort ? (false as const) : '/metrics',
    token,
    cluster: cluster && {
      key: clusterKey,
      socketDir,
      gatherTimeoutMs: config.METRICS_GATHER_TIMEOUT_MS,
      reuseMs: config.METRICS_GATHER_REUSE_MS,
    },
  }
  // The plugin takes the socket directory at registration, and every other option is checked
  // above: a failure to register names the variable to fix.
  const registerMetrics = async () => {
    await app.register(metricsPlugin, metricsOptions)
  }
  if (cluster) await startupStep('METRICS_SOCKET_DIR', socketDir, registerMetrics)
  else await registerMetrics()
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

/**
 * Starts the app (the cluster view's socket included) and listens on PORT, and on METRICS_PORT
 * when /metrics has its own server. A failure names the variable that decides it.
 */
export async function listen(app: FastifyInstance, config: Config): Promise<void> {
  await startupStep('METRICS_SOCKET_DIR', config.METRICS_SOCKET_DIR ?? 'default', () => app.ready())
  await startupStep('PORT', `${config.HOST}:${config.PORT}`, () =>
    app.listen({ port: config.PORT, host: config.HOST }),
  )
  const { metricsServer } = app
  if (metricsServer !== null && config.METRICS_PORT !== undefined) {
    const host = config.METRICS_HOST ?? config.HOST
    const port = config.METRICS_PORT
    await startupStep('METRICS_PORT', `${host}:${port}`, () => metricsServer.listen({ port, host }))
  }
}

/**
 * Runs a start-up step that depends on one setting; its failure (port taken, socket directory
 * unusable) becomes a ConfigError naming that variable, so PM2's error log says what to fix.
 */
function startupStep<T>(variable: string, value: string, step: () => T): T {
  const fail = (err: unknown): never => {
    throw new ConfigError(`cannot start: ${variable} (${value}): ${(err as Error).message}`)
  }
  try {
    const result = step()
    return (result instanceof Promise ? result.catch(fail) : result) as T
  } catch (err) {
    return fail(err)
  }
}
