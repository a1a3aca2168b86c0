// One registry rendered by prom-client in the format a scrape asked for.
import { type Metric, Registry, type RegistryContentType } from 'prom-client'
import { CONTENT_TYPES, type ExpositionFormat } from './exposition-format'

/** What prom-client's renderer reads from a metric; histograms also offer getForPromString. */
interface RenderableMetric {
  name: string
  help: string
  type: string
  aggregator: string
  get(): Promise<{ name: string } & Record<string, unknown>>
  getForPromString?(): Promise<{ name: string } & Record<string, unknown>>
}

/**
 * Renders `registry` with prom-client in `format`, without touching the registry.
 *
 * Two things make the obvious `setContentType(); await metrics()` unsafe in prom-client 15:
 * the content type is read again after each metric's async `get()`, so a concurrent render in
 * the other format can flip it half-way; and an OpenMetrics render renames every counter in
 * place (`http_requests_total` becomes `http_requests`), so every later text-format render
 * loses `_total`. Instead each call renders through its own throwaway registry of the wanted
 * content type, holding one stand-in per metric that delegates `get()` to the real one.
 */
export async function renderRegistry(
  registry: Registry<RegistryContentType>,
  format: ExpositionFormat,
): Promise<string> {
  const view = new Registry<RegistryContentType>()
  view.setContentType(CONTENT_TYPES[format])
  view.setDefaultLabels(defaultLabelsOf(registry))
  for (const metric of registry.getMetricsAsArray()) {
    view.registerMetric(standIn(metric as unknown as RenderableMetric) as unknown as Metric)
  }
  const text = await view.metrics()
  // prom-client renders an empty registry's OpenMetrics as a blank line before `# EOF`, which
  // OpenMetrics forbids.
  return format === 'openmetrics' && text === '\n# EOF\n' ? '# EOF\n' : text
}

/** A metric prom-client may rename freely: it reports under its own (possibly renamed) name. */
function standIn(metric: RenderableMetric): RenderableMetric {
  const source =
    typeof metric.getForPromString === 'function'
      ? () => (metric.getForPromString as () => ReturnType<RenderableMetric['get']>).call(metric)
      : () => metric.get()
  const stand: RenderableMetric = {
    name: metric.name,
    help: metric.help,
    type: metric.type,
    aggregator: metric.aggregator,
    get: async () => ({ ...(await source()), name: stand.name }),
  }
  return stand
}

/**
 * The registry's default labels (e.g. `worker_id`). prom-client applies them at render time and
 * has no getter for them, so this reads its field; the render tests fail if it moves.
 */
function defaultLabelsOf(registry: Registry<RegistryContentType>): Record<string, string> {
  return (registry as unknown as { _defaultLabels?: Record<string, string> })._defaultLabels ?? {}
}
