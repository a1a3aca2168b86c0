// Entry point, for PM2 (cluster mode) or plain `node dist/server.js`: validates the config,
// builds the app and the cluster view, listens, tells PM2 it is ready, and shuts down gracefully.
import type { IncomingMessage, Server, ServerResponse } from 'node:http'
import { Server as NetServer, type Socket } from 'node:net'
import closeWithGrace from 'close-with-grace'
import Fastify, {
  type FastifyHttpOptions,
  type FastifyInstance,
  type FastifyServerOptions,
} from 'fastify'
import { buildApp } from './app'
import { ClusterView } from './cluster/cluster-view'
import { createSocketPaths, socketDirFor } from './cluster/socket-paths'
import {
  type Config,
  ConfigError,
  loadConfig,
  parseBuckets,
  requestTimeoutMs,
  resolveMetricsToken,
} from './config'
import { resolveWorkerIdentity } from './lib/worker-identity'
import { bearerCheck, type MetricsCollector } from './plugins/metrics'
import { createWorkerRegistry } from './plugins/metrics/http-metrics'

/** How long in-flight requests get to finish on SIGINT/SIGTERM (below PM2's kill_timeout). */
const GRACE_MS = 4000
/** Longest wait for clients to leave before Fastify closes what is left (part of GRACE_MS). */
const DRAIN_MS = 2500
/** While draining, a connection closes once quiet (no request in flight, no bytes) this long. */
const DRAIN_IDLE_MS = 100
/** Request line plus headers (Node's default, made explicit): beyond it, 431. */
const MAX_HEADER_BYTES = 16 * 1024
/** Longest URL answered normally: beyond it, 414 (well under MAX_HEADER_BYTES). */
const MAX_URL_LENGTH = 8 * 1024
/** Largest request body: the demo API takes small JSON documents. */
const BODY_LIMIT_BYTES = 64 * 1024

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
    fastify: { logger, ...hardenedServerOptions(config) },
  })
  rejectJunk(app)

  // /metrics on its own port: only the exposition route, never the public API.
  const metricsApp = separateMetricsPort
    ? buildMetricsApp(
        collectMetrics ?? (() => registry.metrics()),
        registry.contentType,
        metricsToken,
        { logger, ...hardenedServerOptions(config) },
      )
    : undefined
  if (metricsApp) rejectJunk(metricsApp)

  if (clusterView) {
    await clusterView.start()
    app.addHook('onClose', async () => clusterView.close())
  }

  const connections = trackConnections(app.server)
  closeWithGrace({ delay: GRACE_MS }, async ({ signal, err }) => {
    if (err) app.log.error({ err }, 'shutting down after an error')
    else app.log.info({ signal }, 'shutting down')
    await drain(app.server, connections, DRAIN_MS)
    await Promise.all([app.close(), metricsApp?.close()])
  })

  await app.listen({ port: config.PORT, host: config.HOST })
  if (metricsApp && config.METRICS_PORT !== undefined) {
    await metricsApp.listen({ port: config.METRICS_PORT, host: config.METRICS_HOST ?? config.HOST })
  }
  // PM2's wait_ready: the worker takes traffic only once it really listens.
  process.send?.('ready')
}

/** Limits every listening server gets, so slow, idle or oversized clients cannot hold a worker. */
function hardenedServerOptions(config: Config): FastifyHttpOptions<Server> {
  return {
    // Whole request (headers and body), then 408; always longer than the slowest /slow.
    requestTimeout: requestTimeoutMs(config),
    // An idle keep-alive connection is closed after this (longer than common proxies' 60 s).
    keepAliveTimeout: config.HTTP_KEEP_ALIVE_TIMEOUT_MS,
    // Request bodies: the API takes small JSON documents only; larger ones get 413.
    bodyLimit: BODY_LIMIT_BYTES,
    // During `pm2 reload` a closing worker still answers requests that arrive on its open
    // keep-alive connections (with `Connection: close`) instead of refusing them with 503.
    return503OnClosing: false,
    http: {
      // Request line and headers together; beyond it Node answers 431 (JSON, from Fastify).
      maxHeaderSize: MAX_HEADER_BYTES,
      // Slow-header clients (slowloris) get 408 after this ...
      headersTimeout: config.HTTP_HEADERS_TIMEOUT_MS,
      // ... checked this often (Node's default, 30 s, would let them linger far longer).
      connectionsCheckingInterval: 1000,
      // A request without Host is answered by rejectJunk, with a JSON body, not by Node.
      requireHostHeader: false,
    },
  }
}

/**
 * JSON 4xx answers for requests Fastify would otherwise pass on or Node would answer without
 * a body: overlong URLs (414), HTTP/1.1 without Host (400), and CONNECT (405).
 */
function rejectJunk(app: FastifyInstance): void {
  app.addHook('onRequest', async (request, reply) => {
    if (request.raw.url !== undefined && request.raw.url.length > MAX_URL_LENGTH) {
      return reply.code(414).send({
        statusCode: 414,
        error: 'URI Too Long',
        message: `the URL is longer than ${MAX_URL_LENGTH} characters`,
      })
    }
    if (request.raw.httpVersion === '1.1' && request.headers.host === undefined) {
      return reply
        .code(400)
        .send({ statusCode: 400, error: 'Bad Request', message: 'the Host header is required' })
    }
  })
  // Node hands CONNECT to a 'connect' listener and, without one, drops the connection unanswered.
  app.server.on('connect', (_request: IncomingMessage, socket: Socket) => {
    const body = JSON.stringify({
      statusCode: 405,
      error: 'Method Not Allowed',
      message: 'CONNECT is not supported',
    })
    socket.on('error', () => socket.destroy())
    socket.end(
      `HTTP/1.1 405 Method Not Allowed\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
    )
  })
}

/** A server with GET /metrics only, for METRICS_PORT; same token check as the plugin's. */
function buildMetricsApp(
  collect: MetricsCollector,
  contentType: string,
  token: string | undefined,
  options: FastifyServerOptions,
): FastifyInstance {
  const metricsApp = Fastify(options)
  const authorize = token === undefined ? undefined : bearerCheck(token)
  metricsApp.get('/metrics', { logLevel: 'warn' }, async (request, reply) => {
    if (authorize !== undefined && !authorize(request.headers.authorization)) {
      reply.header('WWW-Authenticate', 'Bearer realm="metrics"')
      return reply.code(401).send({
        statusCode: 401,
        error: 'Unauthorized',
        message: 'a valid bearer token is required',
      })
    }
    return reply.type(contentType).send(await collect(request))
  })
  return metricsApp
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
