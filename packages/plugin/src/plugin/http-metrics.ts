// The two request metrics and the registry they live in. No Fastify here: the plugin feeds
// them, the cluster view reads the registry.
import {
  Counter,
  collectDefaultMetrics,
  Histogram,
  type HistogramConfiguration,
  Registry,
} from 'prom-client'
import type { NativeHistogramOptions } from '../lib/native-histogram'
import { NativeBackedHistogram, type NativeHistogramStore } from './native-histograms'

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

export interface HttpMetrics {
  requestsTotal: Counter<(typeof HTTP_LABEL_NAMES)[number]>
  requestDuration: Histogram<(typeof HTTP_LABEL_NAMES)[number]>
  /** The native histograms of `requestDuration`'s series, when asked for. */
  native?: NativeHistogramStore
}

export interface HttpMetricsOptions {
  /**
   * Keep exemplars (a traced request's trace id), which prom-client renders in OpenMetrics only.
   * With exemplars on, prom-client accepts only the object form of `inc` and `observe`
   * (`{ labels, value, exemplarLabels }`), so they are off unless asked for.
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
  const requestDuration =
    native === undefined
      ? new Histogram(durationConfiguration)
      : new NativeBackedHistogram(durationConfiguration, native)
  // prom-client refuses exemplars on a metric constructed into a registry of the text format,
  // the format it renders by default. Nothing here renders a registry by its default: each
  // scrape's format is chosen per render (cluster/exposition-render.ts), and exemplars appear
  // in OpenMetrics renders only. So the metrics are registered after construction.
  const metrics: HttpMetrics = {
    requestsTotal: new Counter({
      name: 'http_requests_total',
      help: 'HTTP requests answered, by method, route template and status code.',
      labelNames: HTTP_LABEL_NAMES,
      registers: [],
      enableExemplars: exemplars,
    }),
    requestDuration,
  }
  if (requestDuration instanceof NativeBackedHistogram) metrics.native = requestDuration.native
  registry.registerMetric(metrics.requestsTotal)
  registry.registerMetric(metrics.requestDuration)
  return metrics
}

/**
 * A registry whose every series carries `worker_id`, with prom-client's process metrics
 * (CPU, memory, event-loop lag, GC) so each worker's health shows on its own.
 */
export function createWorkerRegistry(workerId: string, withDefaultMetrics = true): Registry {
  const registry = new Registry()
  registry.setDefaultLabels({ worker_id: workerId })
  if (withDefaultMetrics) collectDefaultMetrics({ register: registry })
  return registry
}
