// fastify-plugin that times every request into `http_requests_total` and
// `http_request_duration_seconds`, labelled method / route / status_code / worker_id, and
// serves GET /metrics. Register it before the routes it should measure. A request with a W3C
// `traceparent` header leaves its trace id as an exemplar on both metrics.
import type { FastifyInstance, onRequestAbortHookHandler, onResponseHookHandler } from 'fastify'
import fp from 'fastify-plugin'
import type { Registry } from 'prom-client'
import { renderRegistry } from '../exposition/exposition'
import type { NativeHistogramSnapshot } from '../lib/native-histogram'
import { resolveWorkerIdentity } from '../lib/worker-identity'
import { type ClusterOptions, clusterCollector } from './cluster'
import { setUnmatchedRecorder } from './framework-errors'
import {
  bucketProblem,
  createHttpMetrics,
  createWorkerRegistry,
  DEFAULT_BUCKETS,
  REQUEST_DURATION,
  type RequestMetrics,
} from './http-metrics'
import { type MetricsCollector, metricsRoute } from './metrics-route'
import {
  type NativeHistogramsOption,
  nativeCarry,
  nativeHistogramOptions,
} from './native-histograms'
import { RouteRecorder, unmatchedMethodLabel } from './route-recorder'

export type { ClusterOptions } from './cluster'
export { countFrameworkErrors } from './framework-errors'
export {
  type MetricsCollector,
  type MetricsRouteOptions,
  metricsRoute,
  type Scrape,
} from './metrics-route'
export type { NativeHistogramsOption } from './native-histograms'
export { CLIENT_CLOSED_STATUS, COMMON_METHODS, OTHER_METHOD } from './route-recorder'

/** The `route` label of requests that matched no route: one series, however many junk paths. */
export const UNMATCHED_ROUTE = '__unmatched__'

export interface MetricsPluginOptions {
  /** Registry to record into; a fresh one (with `worker_id` default label) by default. */
  registry?: Registry
  /** `worker_id` label value; PM2's instance number by default. */
  workerId?: string
  /** Histogram buckets in seconds. */
  buckets?: readonly number[]
  /**
   * A request with a valid W3C `traceparent` header leaves its trace id as an exemplar on
   * `http_requests_total` and `http_request_duration_seconds` (OpenMetrics and protobuf).
   * Default true. `metrics.http`'s `inc` / `observe` take either call form either way.
   */
  exemplars?: boolean
  /**
   * Also record every `http_request_duration_seconds` series into a Prometheus native histogram
   * (sparse exponential buckets, schema 3 and at most 160 buckets by default), which only the
   * protobuf exposition carries; the classic buckets stay as they are. `true` for those
   * defaults, or `{ schema, maxBuckets, zeroThreshold }`. Default `false`.
   */
  nativeHistograms?: NativeHistogramsOption
  /** Collect prom-client's process metrics into a registry this plugin creates (default true). */
  defaultMetrics?: boolean
  /** Path of the exposition route; `false` to serve none. Default `/metrics`. */
  endpoint?: string | false
  /** Measure the exposition route itself (default false). */
  measureEndpoint?: boolean
  /**
   * The cluster view: /metrics answers with every PM2 worker of the app. On by default when PM2
   * runs the app in cluster mode; `false` to serve this process alone.
   */
  cluster?: boolean | ClusterOptions
  /** Replaces the exposition body entirely; default: this registry, or the cluster view. */
  collect?: MetricsCollector
  /** If set, GET /metrics requires `Authorization: Bearer <token>`. */
  token?: string
}

export interface MetricsDecorator {
  registry: Registry
  workerId: string
  /** The request counter and histogram, to write to from a route of your own. */
  http: RequestMetrics
  /** What GET /metrics answers with, for a route of your own (e.g. on another port). */
  collect: MetricsCollector
  /**
   * The native histogram of a rendered series, for the protobuf exposition: `labels` as
   * prom-client renders the series (default labels such as worker_id included, no `le`).
   * Matched on the metric's own label names only; `undefined` for another metric, a series
   * without one, or with native histograms off.
   */
  nativeFor(metricName: string, labels: Record<string, string>): NativeHistogramSnapshot | undefined
  /**
   * Call when a graceful stop begins (on SIGINT/SIGTERM, before draining): should the process
   * die before it hands its counts over, its worker id is then not expected back. A no-op
   * without the cluster view.
   */
  beginStop(): void
}

declare module 'fastify' {
  interface FastifyInstance {
    metrics: MetricsDecorator
  }
  interface FastifyContextConfig {
    /** Set to `true` on a route to leave it out of the request metrics. */
    disableMetrics?: boolean
  }
}

async function plugin(fastify: FastifyInstance, options: MetricsPluginOptions) {
  const identity = resolveWorkerIdentity()
  const workerId = options.workerId ?? identity.workerId
  const registry =
    options.registry ?? createWorkerRegistry(workerId, options.defaultMetrics ?? true)
  const http = createHttpMetrics(registry, validateBuckets(options.buckets ?? DEFAULT_BUCKETS), {
    exemplars: options.exemplars ?? true,
    native: nativeHistogramOptions(options.nativeHistograms),
  })
  const nativeFor = (metricName: string, labels: Record<string, string>) =>
    metricName === REQUEST_DURATION ? http.native?.snapshotFor(labels) : undefined
  const endpoint = options.endpoint ?? '/metrics'
  if (endpoint !== false && !endpoint.startsWith('/')) {
    throw new TypeError(`metrics endpoint must start with "/", got ${JSON.stringify(endpoint)}`)
  }

  const cluster = options.cluster ?? identity.clusterMode
  const wiring =
    cluster === false || options.collect !== undefined
      ? undefined
      : clusterCollector(
          fastify,
          registry,
          workerId,
          identity.appName,
          cluster === true ? {} : cluster,
          http.native === undefined ? undefined : nativeCarry(REQUEST_DURATION, http.native),
        )
  const collect: MetricsCollector =
    wiring?.collect ?? options.collect ?? ((scrape) => renderRegistry(registry, scrape.format))
  const beginStop = () => wiring?.beginStop()
  fastify.decorate('metrics', { registry, workerId, http, collect, nativeFor, beginStop })

  // Every measured route gets its own recorder and onResponse hook, added at registration.
  const recordersByRoute = new Map<string, RouteRecorder>()
  const unmatched = new RouteRecorder(http, UNMATCHED_ROUTE, workerId, unmatchedMethodLabel)
  recordersByRoute.set(UNMATCHED_ROUTE, unmatched)
  setUnmatchedRecorder(fastify, unmatched)
  const recorderFor = (route: string) => {
    let recorder = recordersByRoute.get(route)
    if (recorder === undefined) {
      recorder = new RouteRecorder(http, route, workerId)
      recordersByRoute.set(route, recorder)
    }
    return recorder
  }

  fastify.addHook('onRoute', (routeOptions) => {
    if (routeOptions.config?.disableMetrics === true) return
    const recorder = recorderFor(routeOptions.url ?? routeOptions.path)
    const onResponse: onResponseHookHandler = (request, reply, done) => {
      // One header lookup: requests without a trace keep the fast path untouched.
      const traceparent = request.raw.headers.traceparent
      if (traceparent === undefined) {
        recorder.record(request.raw.method as string, reply.statusCode, reply.elapsedTime / 1000)
      } else {
        const seconds = reply.elapsedTime / 1000
        recorder.recordTraced(request.raw.method as string, reply.statusCode, seconds, traceparent)
      }
      done()
    }
    routeOptions.onResponse = appendHook(routeOptions.onResponse, onResponse)
  })

  // Requests that matched no route land on the 404 handler, which route hooks never see.
  fastify.addHook('onResponse', (request, reply, done) => {
    if (request.is404) {
      const method = request.raw.method as string
      const seconds = reply.elapsedTime / 1000
      const traceparent = request.raw.headers.traceparent
      if (traceparent === undefined) unmatched.record(method, reply.statusCode, seconds)
      else unmatched.recordTraced(method, reply.statusCode, seconds, traceparent)
    }
    done()
  })

  // A client that hangs up before its response is sent never fires onResponse. Count it in
  // http_requests_total as status 499 (as nginx does) so it does not vanish; it has no
  // response time, so the histogram holds answered requests only.
  const onRequestAbort: onRequestAbortHookHandler = (request, done) => {
    const { config } = request.routeOptions
    if (config.disableMetrics !== true) {
      const route = request.is404 ? UNMATCHED_ROUTE : (config.url ?? UNMATCHED_ROUTE)
      recorderFor(route).recordAborted(
        request.raw.method as string,
        request.raw.headers.traceparent,
      )
    }
    done()
  }
  fastify.addHook('onRequestAbort', onRequestAbort)

  if (endpoint !== false) {
    await fastify.register(metricsRoute, {
      path: endpoint,
      collect,
      token: options.token,
      measure: options.measureEndpoint,
    })
  }
}

function appendHook<T>(existing: T | T[] | undefined, hook: T): T[] {
  if (existing === undefined) return [hook]
  return Array.isArray(existing) ? [...existing, hook] : [existing, hook]
}

function validateBuckets(buckets: readonly number[]): readonly number[] {
  const problem = bucketProblem(buckets)
  if (problem !== undefined) throw new TypeError(`metrics buckets ${problem}, got [${buckets}]`)
  return buckets
}

// Exported by name as well: CommonJS and ES module users both see `metricsPlugin`, while Node's
// detection of a CommonJS module's exports misses a default re-exported under another name.
export const metricsPlugin = fp(plugin, { fastify: '5.x', name: 'fastify-pm2-cluster-metrics' })
export default metricsPlugin
