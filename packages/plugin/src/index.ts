// The public entry point: the metrics plugin, with the cluster view it turns on under PM2's
// cluster mode, and the pieces a service needs to configure it the way the plugin checks it.

import type { Registry } from 'prom-client'
import {
  createHttpMetrics as createHttpMetricsWithStore,
  type HttpMetricsOptions,
  type RequestMetrics,
} from './plugin/http-metrics'

export { ConfigError } from './lib/config-error'
export { usableCpus } from './lib/cpu-quota'
export type {
  BucketSpan,
  NativeExemplar,
  NativeHistogramFields,
  NativeHistogramOptions,
  NativeHistogramSnapshot,
} from './lib/native-histogram'
export {
  DEFAULT_MAX_BUCKETS,
  DEFAULT_SCHEMA,
  DEFAULT_ZERO_THRESHOLD,
  MAX_SCHEMA,
  MIN_SCHEMA,
} from './lib/native-histogram'
export {
  resolveWorkerIdentity,
  STANDALONE_WORKER_ID,
  type WorkerIdentity,
} from './lib/worker-identity'
export {
  CLIENT_CLOSED_STATUS,
  type ClusterOptions,
  COMMON_METHODS,
  countFrameworkErrors,
  default,
  type MetricsCollector,
  type MetricsDecorator,
  type MetricsPluginOptions,
  type MetricsRouteOptions,
  metricsPlugin,
  metricsRoute,
  type NativeHistogramsOption,
  OTHER_METHOD,
  type Scrape,
  UNMATCHED_ROUTE,
} from './plugin'
export {
  bucketProblem,
  createWorkerRegistry,
  DEFAULT_BUCKETS,
  type ExemplarLabels,
  HTTP_LABEL_NAMES,
  type HttpLabelName,
  type HttpLabels,
  type HttpMetricsOptions,
  type RequestCounter,
  type RequestHistogram,
  type RequestMetrics,
} from './plugin/http-metrics'
export { socketDirFor, WORKER_ID_PATTERN } from './run-dir/socket-paths'

/**
 * The request counter and histogram the plugin records into, registered in `registry`, for use
 * outside the plugin. Typed as `app.metrics.http` is: every write names all four labels.
 */
export function createHttpMetrics(
  registry: Registry,
  buckets?: readonly number[],
  options?: HttpMetricsOptions,
): RequestMetrics {
  const { requestsTotal, requestDuration } = createHttpMetricsWithStore(registry, buckets, options)
  return { requestsTotal, requestDuration }
}
