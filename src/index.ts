// The public entry point: the metrics plugin, with the cluster view it turns on under PM2's
// cluster mode, for use in your own Fastify app.

export type {
  BucketSpan,
  NativeExemplar,
  NativeHistogramFields,
  NativeHistogramOptions,
  NativeHistogramSnapshot,
  NativeHistogramState,
} from './lib/native-histogram'
export {
  CLIENT_CLOSED_STATUS,
  type ClusterOptions,
  COMMON_METHODS,
  countFrameworkErrors,
  default,
  default as metricsPlugin,
  type MetricsCollector,
  type MetricsDecorator,
  type MetricsPluginOptions,
  metricsRoute,
  type NativeHistogramsOption,
  OTHER_METHOD,
  type Scrape,
  UNMATCHED_ROUTE,
} from './plugins/metrics'
export {
  createHttpMetrics,
  createWorkerRegistry,
  DEFAULT_BUCKETS,
  HTTP_LABEL_NAMES,
} from './plugins/metrics/http-metrics'
