// The two request metrics and the registry they live in. No Fastify here: the plugin feeds
// them, the cluster view reads the registry.
import type { Counter, Histogram, HistogramConfiguration, Registry } from 'prom-client'
import { clientFor, type MetricsClient } from '../lib/metrics-client'
import type { NativeHistogramOptions } from '../lib/native-histogram'
import { type NativeHistogramStore, nativeBackedHistogram } from './native-histograms'

export const HTTP_LABEL_NAMES = ['method', 'route', 'status_code', 'worker_id'] as const

/** The duration histogram's name, which native histograms are looked up by. */
export const REQUEST_DURATION = 'http_request_duration_seconds'

/** Seconds; from 1 ms to 10 s, fine enough around typical API latencies. */
export const DEFAULT_BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]

/** What is wrong with histogram buckets, or `undefined`: positive, strictly increasing. */
export function bucketProblem(buckets: readonly number[]): string | undefined {
  if (buckets.length === 0) return 'must not be empty'
  for (let i = 0; i < buckets.length; i++) {
    if (!Number.isFinite(buckets[i]) || buckets[i] <= 0) return 'must be positive numbers'
    if (i > 0 && buckets[i] <= buckets[i - 1]) return 'must be strictly increasing'
  }
  return undefined
}

export type HttpLabelName = (typeof HTTP_LABEL_NAMES)[number]

/** Every label of a request series: a write that left one out would make a series without it. */
export type HttpLabels = Record<HttpLabelName, string | number>

/** The labels of one write's exemplar, e.g. `{ trace_id }`. */
export type ExemplarLabels = Record<string, string | number>

/**
 * `http_requests_total` as an app writes to it: every call names all four labels, in either
 * form (`inc(labels, value)` or `inc({ labels, value, exemplarLabels })`), exemplars on or off.
 * prom-client's forms without labels (`inc()`, `inc(value)`) are not offered.
 */
export interface RequestCounter extends Omit<Counter<HttpLabelName>, 'inc' | 'labels'> {
  inc(labels: HttpLabels, value?: number): void
  inc(data: { labels: HttpLabels; value?: number; exemplarLabels?: ExemplarLabels }): void
  labels(labels: HttpLabels): Counter.Internal
  labels(method: string, route: string, statusCode: string, workerId: string): Counter.Internal
}

/** `http_request_duration_seconds` as an app writes to it: all four labels in every call. */
export interface RequestHistogram
  extends Omit<Histogram<HttpLabelName>, 'observe' | 'labels' | 'zero' | 'startTimer'> {
  observe(labels: HttpLabels, value: number): void
  observe(data: { labels: HttpLabels; value: number; exemplarLabels?: ExemplarLabels }): void
  labels(labels: HttpLabels): Histogram.Internal<HttpLabelName>
  labels(
    method: string,
    route: string,
    statusCode: string,
    workerId: string,
  ): Histogram.Internal<HttpLabelName>
  zero(labels: HttpLabels): void
  /** Starts a timer for one series; its end observes the seconds elapsed. */
  startTimer(labels: HttpLabels): () => number
}

/** The request metrics as `app.metrics.http` offers them. */
export interface RequestMetrics {
  requestsTotal: RequestCounter
  requestDuration: RequestHistogram
}

export interface HttpMetrics {
  requestsTotal: Counter<HttpLabelName>
  requestDuration: Histogram<HttpLabelName>
  /** The native histograms of `requestDuration`'s series, when asked for. */
  native?: NativeHistogramStore
}

export interface HttpMetricsOptions {
  /**
   * Keep exemplars (a traced request's trace id), which prom-client renders in OpenMetrics only.
   * Off unless asked for; `inc` and `observe` take either call form either way.
   */
  exemplars?: boolean
  /** Also record each duration series into a native histogram with these settings. */
  native?: NativeHistogramOptions
}

export function createHttpMetrics(
  registry: Registry,
  buckets: readonly number[] = DEFAULT_BUCKETS,
  { exemplars = false, native }: HttpMetricsOptions = {},
): HttpMetrics {
  const durationConfiguration: HistogramConfiguration<(typeof HTTP_LABEL_NAMES)[number]> = {
    name: REQUEST_DURATION,
    help: 'Time from the start of an HTTP request to the end of its response, in seconds.',
    labelNames: HTTP_LABEL_NAMES,
    buckets: [...buckets],
    registers: [],
    enableExemplars: exemplars,
  }
  // The classes of the client that made the registry: another client's metrics would not render.
  const client = clientFor(registry)
  const backed =
    native === undefined
      ? undefined
      : nativeBackedHistogram(client.Histogram, durationConfiguration, native)
  const requestDuration = backed ?? new client.Histogram(durationConfiguration)
  // prom-client refuses exemplars on a metric constructed into a registry of the text format,
  // the format it renders by default. Nothing here renders a registry by its default: each
  // scrape's format is chosen per render (cluster/exposition-render.ts), and exemplars appear
  // in OpenMetrics renders only. So the metrics are registered after construction.
  const metrics: HttpMetrics = {
    requestsTotal: new client.Counter({
      name: 'http_requests_total',
      help: 'HTTP requests answered, by method, route template and status code.',
      labelNames: HTTP_LABEL_NAMES,
      registers: [],
      enableExemplars: exemplars,
    }),
    requestDuration,
  }
  if (backed !== undefined) metrics.native = backed.native
  acceptBothForms(metrics.requestsTotal, 'inc', exemplars)
  acceptBothForms(metrics.requestDuration, 'observe', exemplars)
  registry.registerMetric(metrics.requestsTotal)
  registry.registerMetric(metrics.requestDuration)
  return metrics
}

/**
 * prom-client takes one call form per metric: with exemplars the object form alone, reading
 * `inc(labels)` as an object without `labels` and so writing a series with no labels; without
 * exemplars it refuses the object form. The metric's own method is wrapped to take either form
 * and pass on the one its mode expects (one `in` check on the way).
 */
function acceptBothForms(metric: object, method: 'inc' | 'observe', exemplars: boolean): void {
  const target = metric as Record<typeof method, (...args: unknown[]) => void>
  const write = target[method]
  target[method] = exemplars
    ? function (this: unknown, first?: unknown, value?: unknown) {
        write.call(this, isObjectForm(first) ? first : { labels: first, value })
      }
    : function (this: unknown, first?: unknown, value?: unknown) {
        if (isObjectForm(first)) write.call(this, first.labels, first.value)
        else write.call(this, first, value)
      }
}

function isObjectForm(arg: unknown): arg is { labels?: unknown; value?: unknown } {
  return typeof arg === 'object' && arg !== null && 'labels' in arg
}

/**
 * A registry whose every series carries `worker_id`, with the client's process metrics
 * (CPU, memory, event-loop lag, GC) so each worker's health shows on its own. The client is the
 * one the app has installed (prom-client if it has both).
 */
export function createWorkerRegistry(
  workerId: string,
  withDefaultMetrics = true,
  client: MetricsClient = clientFor(),
): Registry {
  const registry = new client.Registry()
  registry.setDefaultLabels({ worker_id: workerId })
  if (withDefaultMetrics) client.collectDefaultMetrics({ register: registry })
  return registry
}
