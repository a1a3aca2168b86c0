// Everything this project reads from prom-client beyond its typed API, in one place. Each
// accessor states one assumption, read from prom-client 15.1.3 (lib/counter.js,
// lib/histogram.js, lib/metric.js, lib/registry.js); test/cluster/prom-client-internals.test.ts
// checks each one and names it when an update breaks it. package.json pins prom-client to
// ~15.1.3 so that only patch releases arrive unreviewed.
import type { Counter, Histogram, Registry, RegistryContentType } from 'prom-client'

export type LabelValue = string | number
export type Labels = Record<string, LabelValue>

/** A counter's stored series (lib/counter.js `setValue`). */
export interface CounterEntry {
  value: number
  labels: Labels
}

/**
 * A histogram's stored series (lib/histogram.js `createBaseValues`): `bucketValues` holds the
 * observations per bucket, not cumulative, keyed by `String(bound)`; nothing is kept for +Inf
 * (its count is `count`).
 */
export interface HistogramEntry {
  labels: Labels
  sum: number
  count: number
  bucketValues: Record<string, number>
}

type Entries<Entry> = Record<string, Entry>

/**
 * A counter's series by label hash (`hashMap`). `reset()` and `registry.resetMetrics()` replace
 * the object, `remove()` deletes from it; `undefined` if it is not an object.
 */
export function counterEntries(counter: Counter<string>): Entries<CounterEntry> | undefined {
  return objectOrUndefined((counter as unknown as { hashMap?: unknown }).hashMap) as
    | Entries<CounterEntry>
    | undefined
}

/** A histogram's series by label hash (`hashMap`), as `counterEntries`. */
export function histogramEntries(
  histogram: Histogram<string>,
): Entries<HistogramEntry> | undefined {
  return objectOrUndefined((histogram as unknown as { hashMap?: unknown }).hashMap) as
    | Entries<HistogramEntry>
    | undefined
}

/** A histogram's bucket bounds (`upperBounds`): the configured buckets, without +Inf. */
export function upperBoundsOf(histogram: object): readonly number[] {
  const bounds = (histogram as { upperBounds?: unknown }).upperBounds
  return Array.isArray(bounds) ? (bounds as number[]) : []
}

/** A metric's label names as configured (`labelNames`, copied from the configuration). */
export function labelNamesOf(metric: object): readonly string[] {
  const names = (metric as { labelNames?: unknown }).labelNames
  return Array.isArray(names) ? (names as string[]) : []
}

/** Whether a metric keeps exemplars (`enableExemplars`, copied from the configuration). */
export function exemplarsEnabled(metric: object): boolean {
  return (metric as { enableExemplars?: unknown }).enableExemplars === true
}

/**
 * A registry's default labels (`_defaultLabels`): what `setDefaultLabels` set. prom-client adds
 * them to every series when it renders, unless the series has a label of that name itself.
 */
export function defaultLabelsOf(registry: Registry<RegistryContentType>): Readonly<Labels> {
  return (
    (objectOrUndefined((registry as unknown as { _defaultLabels?: unknown })._defaultLabels) as
      | Labels
      | undefined) ?? {}
  )
}

/** One value of a rendered metric. */
export interface RenderedValue {
  /** `_bucket`, `_sum` or `_count` for histograms; absent for counters. */
  metricName?: string
  labels: Labels
  /** A histogram's series labels in `getForPromString()`, apart from `le` (see seriesLabelsOf). */
  sharedLabels?: Labels
  value: number
  [extra: string]: unknown
}

export interface MetricData {
  name: string
  help: string
  type: string
  aggregator: string
  values: RenderedValue[]
}

/**
 * What a registry reads from each registered metric (lib/registry.js `metrics()`,
 * `getMetricsAsString`): these fields, and `getForPromString()` in preference to `get()` when
 * the metric has one (histograms do). The registry renames an OpenMetrics counter in place
 * through `name`. prom-client's types declare none of the fields on its metric classes.
 */
export interface RenderableMetric {
  name: string
  help: string
  type: string
  aggregator: string
  get(): Promise<MetricData>
  getForPromString?(): Promise<MetricData>
}

export function asRenderable(metric: unknown): RenderableMetric {
  return metric as RenderableMetric
}

/** The values a registry renders for `metric`: `getForPromString()` if it has one, else `get()`. */
export function renderedData(metric: RenderableMetric): Promise<MetricData> {
  return typeof metric.getForPromString === 'function' ? metric.getForPromString() : metric.get()
}

/**
 * A rendered value's full label set. A histogram's `getForPromString()` keeps the series labels
 * in `sharedLabels` and only `le` in `labels`; `get()` merges them into `labels`.
 */
export function seriesLabelsOf(value: RenderedValue): Labels {
  return value.sharedLabels === undefined
    ? value.labels
    : { ...value.sharedLabels, ...value.labels }
}

function objectOrUndefined(value: unknown): object | undefined {
  return typeof value === 'object' && value !== null ? value : undefined
}
