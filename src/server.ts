// Entry point, for PM2 (cluster mode) or plain `node dist/server.js`: validates the config,
// builds the app and the cluster view, listens, tells PM2 it is ready, and shuts down gracefully.
import closeWithGrace from 'close-with-grace'
import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify'
import { buildApp } from './app'
import { ClusterView } from './cluster/cluster-view'
import { createSocketPaths, socketDirFor } from './cluster/socket-paths'
import { ConfigError, loadConfig, parseBuckets, resolveMetricsToken } from './config'
import { ConnectionDrain } from './lib/connection-drain'
import { hardenedServerOptions, rejectJunk } from './lib/http-hardening'
import { resolveWorkerIdentity } from './lib/worker-identity'
import { type MetricsCollector, metricsHandler } from './plugins/metrics'
import { createWorkerRegistry } from './plugins/metrics/http-metrics'

/** How long in-flight requests get to finish on SIGINT/SIGTERM (below PM2's kill_timeout). */
const GRACE_MS = 4000
/** Longest wait for clients to leave before Fastify closes what is left (part of GRACE_MS). */
const DRAIN_MS = 2500

async function main(): Promise<void> {
  const config = loadConfig()
  const metricsToken = resolveMetricsToken(config)
  const identity = resolveWorkerIdentity()
  const registry = createWorkerRegistry(identity.workerId)

  const logger = {
    level: config.LOG_LEVEL,
    base: { pid: process.pid, worker_id: identity.workerId },
  }
  // A worker that missed a gather is logged by the worker that noticed.
  const log = { warn: (obj: object, msg: string) => app.log.warn(obj, msg) }

  const socketDir =
    config.METRICS_SOCKET_DIR ?? socketDirFor(identity.appName ?? 'app', config.PORT)
  const clusterView =
    config.METRICS_CLUSTER && identity.clusterMode
      ? new ClusterView({
          registry,
          workerId: identity.workerId,
          instances: identity.instances,
          gatherTimeoutMs: config.METRICS_GATHER_TIMEOUT_MS,
          paths: startupStep('METRICS_SOCKET_DIR', socketDir, () => createSocketPaths(socketDir)),
          onMissing: (workerIds, budgetMs) =>
            log.warn({ missing: workerIds, budgetMs }, 'workers missing from the metrics gather'),
          onError: (err) => log.warn({ err }, 'metrics snapshot server error'),
        })
      : undefined

  const collectMetrics: MetricsCollector | undefined = clusterView
    ? async (request) => {
        const header = request.headers['x-prometheus-scrape-timeout-seconds']
        return (await clusterView.gather(Array.isArray(header) ? header[0] : header)).text
      }
    : undefined
  const separateMetricsPort = config.METRICS_PORT !== undefined

  const app = await buildApp({
    workerId: identity.workerId,
    registry,
    buckets: parseBuckets(config.METRICS_BUCKETS),
    slowMaxMs: config.SLOW_MAX_MS,
    metricsToken,
    metricsEndpoint: separateMetricsPort ? false : '/metrics',
    collectMetrics,
    fastify: {
      logger,
      disableRequestLogging: !config.LOG_REQUESTS,
      ...hardenedServerOptions(config),
    },
  })
  rejectJunk(app)

  // /metrics on its own port: only the exposition route, never the public API.
  const metricsApp = separateMetricsPort
    ? buildMetricsApp(
        collectMetrics ?? (() => registry.metrics()),
        registry.contentType,
        metricsToken,
        { logger, disableRequestLogging: !config.LOG_REQUESTS, ...hardenedServerOptions(config) },
      )
    : undefined
  if (metricsApp) rejectJunk(metricsApp)

  if (clusterView) {
    await startupStep('METRICS_SOCKET_DIR', socketDir, () => clusterView.start())
    app.addHook('onClose', async () => clusterView.close())
  }

  const connections = new ConnectionDrain(app.server)
  closeWithGrace({ delay: GRACE_MS }, async ({ signal, err }) => {
    if (err) app.log.error({ err }, 'shutting down after an error')
    else app.log.info({ signal }, 'shutting down')
    await connections.drain(DRAIN_MS)
    await Promise.all([app.close(), metricsApp?.close()])
  })

  await startupStep('PORT', `${config.HOST}:${config.PORT}`, () =>
    app.listen({ port: config.PORT, host: config.HOST }),
  )
  if (metricsApp && config.METRICS_PORT !== undefined) {
    const host = config.METRICS_HOST ?? config.HOST
    await startupStep('METRICS_PORT', `${host}:${config.METRICS_PORT}`, () =>
      metricsApp.listen({ port: config.METRICS_PORT, host }),
    )
  }
  // PM2's wait_ready: the worker takes traffic only once it really listens.
  process.send?.('ready')
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

/** A server with GET /metrics only, for METRICS_PORT: the plugin's own handler, token included. */
function buildMetricsApp(
  collect: MetricsCollector,
  contentType: string,
  token: string | undefined,
  options: FastifyServerOptions,
): FastifyInstance {
  const metricsApp = Fastify(options)
  metricsApp.get('/metrics', { logLevel: 'warn' }, metricsHandler({ collect, contentType, token }))
  return metricsApp
}

main().catch((err: unknown) => {
  const message = err instanceof ConfigError ? err.message : (err as Error).stack
  process.stderr.write(`${message}\n`)
  process.exit(1)
})
