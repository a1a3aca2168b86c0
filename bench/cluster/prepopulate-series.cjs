// BENCH AID ONLY, never loaded by the service itself: preloaded into PM2 workers by
// bench/cluster/ecosystem.config.js when BENCH_SERIES_ROUTES is set. The demo service has six
// routes; the scrape-cost bench needs registries the size of real services' (20 routes x 3
// status codes, and about 5,000 series). When the service registers `http_requests_total` and
// `http_request_duration_seconds`, this creates BENCH_SERIES_ROUTES x BENCH_SERIES_STATUS_CODES
// label sets (`route="/bench/route-N"`) in each, so the gather carries and merges them exactly
// as it would carry series made by traffic.
const { Registry } = require('prom-client')

const routes = Number(process.env.BENCH_SERIES_ROUTES)
const statusCodes = ['200', '404', '500', '201', '400', '503'].slice(
  0,
  Number(process.env.BENCH_SERIES_STATUS_CODES ?? 3),
)
const POPULATED = new Set(['http_requests_total', 'http_request_duration_seconds'])

if (Number.isInteger(routes) && routes > 0) {
  const registerMetric = Registry.prototype.registerMetric
  Registry.prototype.registerMetric = function prepopulate(metric) {
    registerMetric.call(this, metric)
    // Only the worker's own metrics, created first, at start; the cluster view's merged
    // registries register plain metric objects of the same names later, left alone.
    if (!POPULATED.delete(metric.name)) return
    // Called from the metric's base constructor: label it once the subclass is complete.
    queueMicrotask(() => populate(metric))
  }
}

function populate(metric) {
  // Read now, not at preload: PM2 sets the instance variable after preloads have run.
  const workerId = process.env.NODE_APP_INSTANCE ?? '0'
  for (let r = 0; r < routes; r++) {
    for (const statusCode of statusCodes) {
      const child = metric.labels({
        method: 'GET',
        route: `/bench/route-${r}`,
        status_code: statusCode,
        worker_id: workerId,
      })
      if (typeof child.observe === 'function') child.observe(0.002 + (r % 7) * 0.01)
      else child.inc()
    }
  }
}
