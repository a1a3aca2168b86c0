// Entry point, for PM2 (cluster mode) or plain `node dist/server.js`: validates the config,
// builds the app and the cluster view, listens, tells PM2 it is ready, and shuts down gracefully.
import type { IncomingMessage, Server, ServerResponse } from 'node:http'
import { Server as NetServer, type Socket } from 'node:net'
import closeWithGrace from 'close-with-grace'
import { buildApp } from './app'
import { ClusterView } from './cluster/cluster-view'
import { createSocketPaths, socketDirFor } from './cluster/socket-paths'
import { ConfigError, loadConfig, parseBuckets, resolveMetricsToken } from './config'
import { resolveWorkerIdentity } from './lib/worker-identity'
import { createWorkerRegistry } from './plugins/metrics/http-metrics'

/** How long in-flight requests get to finish on SIGINT/SIGTERM (below PM2's kill_timeout). */
const GRACE_MS = 4000
/** Longest wait for clients to leave before Fastify closes what is left (part of GRACE_MS). */
const DRAIN_MS = 2500
/** While draining, a connection closes once quiet (no request in flight, no bytes) this long. */
const DRAIN_IDLE_MS = 100

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

  const clusterView =
    config.METRICS_CLUSTER && identity.clusterMode
      ? new ClusterView({
          registry,
          workerId: identity.workerId,
          instances: identity.instances,
          gatherTimeoutMs: config.METRICS_GATHER_TIMEOUT_MS,
          paths: createSocketPaths(
            config.METRICS_SOCKET_DIR ?? socketDirFor(identity.appName ?? 'app', config.PORT),
          ),
          onMissing: (workerIds, budgetMs) =>
            log.warn({ missing: workerIds, budgetMs }, 'workers missing from the metrics gather'),
          onError: (err) => log.warn({ err }, 'metrics snapshot server error'),
        })
      : undefined

  const app = await buildApp({
    workerId: identity.workerId,
    registry,
    buckets: parseBuckets(config.METRICS_BUCKETS),
    slowMaxMs: config.SLOW_MAX_MS,
    metricsToken,
    collectMetrics: clusterView
      ? async (request) => {
          const header = request.headers['x-prometheus-scrape-timeout-seconds']
          return (await clusterView.gather(Array.isArray(header) ? header[0] : header)).text
        }
      : undefined,
    fastify: {
      logger,
      // Bounded timeouts so slow or idle clients cannot hold a worker's sockets forever.
      requestTimeout: Math.max(30_000, config.SLOW_MAX_MS + 5_000),
      keepAliveTimeout: 72_000,
      // During `pm2 reload` a closing worker still answers requests that arrive on its open
      // keep-alive connections (with `Connection: close`) instead of refusing them with 503.
      return503OnClosing: false,
    },
  })
  if (clusterView) {
    await clusterView.start()
    app.addHook('onClose', async () => clusterView.close())
  }

  const connections = trackConnections(app.server)
  closeWithGrace({ delay: GRACE_MS }, async ({ signal, err }) => {
    if (err) app.log.error({ err }, 'shutting down after an error')
    else app.log.info({ signal }, 'shutting down')
    await drain(app.server, connections, DRAIN_MS)
    await app.close()
  })

  await app.listen({ port: config.PORT, host: config.HOST })
  // PM2's wait_ready: the worker takes traffic only once it really listens.
  process.send?.('ready')
}

main().catch((err: unknown) => {
  const message = err instanceof ConfigError ? err.message : (err as Error).stack
  process.stderr.write(`${message}\n`)
  process.exit(1)
})

/** Open connections of a server, each with its number of requests in flight. */
function trackConnections(server: Server): Map<Socket, number> {
  const inFlight = new Map<Socket, number>()
  server.on('connection', (socket: Socket) => {
    inFlight.set(socket, 0)
    socket.once('close', () => inFlight.delete(socket))
  })
  server.on('request', (request: IncomingMessage, response: ServerResponse) => {
    const socket = request.socket
    inFlight.set(socket, (inFlight.get(socket) ?? 0) + 1)
    response.once('close', () => {
      const count = inFlight.get(socket)
      if (count !== undefined) inFlight.set(socket, count - 1)
    })
  })
  return inFlight
}

/**
 * Stops taking connections (in cluster mode the primary then hands them to the other workers)
 * and closes each open connection once it has had no request in flight and no traffic for
 * DRAIN_IDLE_MS, so none is closed under a request the client is sending. Resolves when all
 * are gone, or at the deadline (Fastify's close deals with the rest).
 *
 * Why not just `app.close()`: `http.Server#close` closes every idle connection at once, racing
 * requests the client has already written, and Fastify answers requests on busy connections
 * with `Connection: close`, which some clients (autocannon among them) ignore and write again;
 * Node's own keep-alive timer adds 1 s to `keepAliveTimeout`, longer than a steady client's gap.
 */
function drain(server: Server, inFlight: Map<Socket, number>, timeoutMs: number): Promise<void> {
  const lastSeen = new Map<Socket, number>()
  const closeQuietConnections = () => {
    for (const [socket, requests] of inFlight) {
      const traffic = socket.bytesRead + socket.bytesWritten
      if (requests === 0 && lastSeen.get(socket) === traffic) socket.destroy()
      else lastSeen.set(socket, traffic)
    }
  }
  const interval = setInterval(closeQuietConnections, DRAIN_IDLE_MS)
  return new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, timeoutMs)
    // The plain net.Server close: stop listening, keep the open connections for now.
    NetServer.prototype.close.call(server, () => {
      clearTimeout(timer)
      resolve()
    })
  }).finally(() => clearInterval(interval))
}
