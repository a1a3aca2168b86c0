// One registry rendered in the format a scrape asked for: the text formats by prom-client,
// protobuf from the same values (protobuf/render.ts).
import type { Metric, Registry, RegistryContentType } from 'prom-client'
import { clientFor } from '../lib/metrics-client'
import {
  asRenderable,
  defaultLabelsOf,
  type Labels,
  type RenderableMetric,
  renderedData,
} from '../lib/prom-client-internals'
import {
  CONTENT_TYPES,
  type Exposition,
  type ExpositionFormat,
  type TextFormat,
} from './exposition-format'
import { type ProtobufRenderOptions, renderProtobuf } from './protobuf/render'

/** How to render: labels added where a series lacks them; native-histogram fields (protobuf). */
export type RenderOptions = ProtobufRenderOptions

/**
 * Renders `registry` in `format`, without touching the registry: text, or protobuf's bytes.
 */
export function renderRegistry(
  registry: Registry<RegistryContentType>,
  format: TextFormat,
  options?: RenderOptions,
): Promise<string>
export function renderRegistry(
  registry: Registry<RegistryContentType>,
  format: 'protobuf',
  options?: RenderOptions,
): Promise<Buffer>
export function renderRegistry(
  registry: Registry<RegistryContentType>,
  format: ExpositionFormat,
  options?: RenderOptions,
): Promise<Exposition>
export function renderRegistry(
  registry: Registry<RegistryContentType>,
  format: ExpositionFormat,
  options: RenderOptions = {},
): Promise<Exposition> {
  return format === 'protobuf'
    ? renderProtobuf(registry, options)
    : renderText(registry, format, options.defaultLabels)
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
async function renderText(
  registry: Registry<RegistryContentType>,
  format: TextFormat,
  defaultLabels: Readonly<Labels> = {},
): Promise<string> {
  const view = new (clientFor(registry).Registry)<RegistryContentType>()
  view.setContentType(CONTENT_TYPES[format])
  // The registry's own default labels win over the added ones, as a series' own labels win
  // over both when prom-client renders.
  view.setDefaultLabels({ ...defaultLabels, ...defaultLabelsOf(registry) })
  for (const metric of registry.getMetricsAsArray()) {
    view.registerMetric(standIn(asRenderable(metric)) as unknown as Metric)
  }
  const text = await view.metrics()
  // prom-client renders an empty registry's OpenMetrics as a blank line before `# EOF`, which
  // OpenMetrics forbids.
  return format === 'openmetrics' && text === '\n# EOF\n' ? '# EOF\n' : text
}

/** A metric prom-client may rename freely: it reports under its own (possibly renamed) name. */
function standIn(metric: RenderableMetric): RenderableMetric {
  const stand: RenderableMetric = {
    name: metric.name,
    help: metric.help,
    type: metric.type,
    aggregator: metric.aggregator,
    get: async () => ({ ...(await renderedData(metric)), name: stand.name }),
  }
  return stand
}
