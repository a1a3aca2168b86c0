// Everything this project reads from its metrics client beyond the typed API, in one place, for
// each client it supports: prom-client 15.1.3 and @prometheus-io/client 0.16.1 (lib/counter.js,
// lib/histogram.js, lib/metric.js, lib/registry.js, and lib/util.js's LabelMap of the latter).
// Where the two differ (how a metric stores its series) each has its own ClientInternals; the
// other reads hold for both. test/cluster/prom-client-internals.test.ts checks each one against
// both clients and names it when an update breaks it; internalsProblems checks the installed
// client once at registration. The peer ranges admit only releases read here.
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

/**
 * A series as the client stores it, written in place by the request hot path, and whether it is
 * still the stored one (`reset()`, `remove()` and `registry.resetMetrics()` replace or drop it).
 */
export interface StoredSeries<Entry> {
  entry: Entry
  stillStored(): boolean
}

/**
 * How one client stores a metric's series: the only reads that differ between the clients.
 * Every other read in this module holds for both, and the tests check each against both.
 */
export interface ClientInternals {
  /** The counter's stored series with exactly `labels`, once it exists. */
  counterSeries(counter: object, labels: Labels): StoredSeries<CounterEntry> | undefined
  /** The histogram's stored series with exactly `labels`, once it exists. */
  histogramSeries(histogram: object, labels: Labels): StoredSeries<HistogramEntry> | undefined
}

/**
 * prom-client 15.1: a metric's series by label hash in a plain object (`hashMap`). `reset()`
 * and `registry.resetMetrics()` replace the object, `remove()` deletes from it.
 */
export const promClientInternals: ClientInternals = {
  counterSeries: (counter, labels) => hashMapSeries<CounterEntry>(counter, labels),
  histogramSeries: (histogram, labels) => hashMapSeries<HistogramEntry>(histogram, labels),
}

function hashMapOf(metric: object): Record<string, { labels?: Labels }> | undefined {
  return objectOrUndefined((metric as { hashMap?: unknown }).hashMap) as
    | Record<string, { labels?: Labels }>
    | undefined
}

function hashMapSeries<Entry>(metric: object, labels: Labels): StoredSeries<Entry> | undefined {
  const entries = hashMapOf(metric)
  if (entries === undefined) return undefined
  // Found by its labels rather than by prom-client's hash, which this module does not repeat.
  for (const key of Object.keys(entries)) {
    const entry = entries[key]
    if (entry !== undefined && sameLabels(entry.labels, labels)) {
      return { entry: entry as Entry, stillStored: () => hashMapOf(metric)?.[key] === entry }
    }
  }
  return undefined
}

/**
 * @prometheus-io/client 0.16: a metric's series in a `LabelMap` (`store`), whose map is private:
 * `entry(labels)` is the stored `{ labels, ... }` record of a label set. `reset()` replaces the
 * store, `remove()` deletes from it.
 */
export const prometheusIoInternals: ClientInternals = {
  counterSeries: (counter, labels) => labelMapSeries<CounterEntry>(counter, labels),
  histogramSeries: (histogram, labels) => labelMapSeries<HistogramEntry>(histogram, labels),
}

interface LabelMapLike {
  entry(labels: Labels): { labels?: Labels } | undefined
}

function labelMapOf(metric: object): LabelMapLike | undefined {
  const store = objectOrUndefined((metric as { store?: unknown }).store) as
    | Partial<LabelMapLike>
    | undefined
  return typeof store?.entry === 'function' ? (store as LabelMapLike) : undefined
}

function labelMapSeries<Entry>(metric: object, labels: Labels): StoredSeries<Entry> | undefined {
  const entry = labelMapOf(metric)?.entry(labels)
  // The map keys by label values alone: the entry must have exactly these labels.
  if (entry === undefined || !sameLabels(entry.labels, labels)) return undefined
  return { entry: entry as Entry, stillStored: () => labelMapOf(metric)?.entry(labels) === entry }
}

function sameLabels(stored: Labels | undefined, labels: Labels): boolean {
  if (typeof stored !== 'object' || stored === null) return false
  const names = Object.keys(labels)
  return (
    Object.keys(stored).length === names.length &&
    names.every((name) => stored[name] === labels[name])
  )
}

/**
 * What of `client`'s internals does not read as this module expects, checked on a throwaway
 * counter and histogram of its own; empty when everything does.
 */
export function internalsProblems(client: {
  Registry: new () => Registry<RegistryContentType>
  Counter: new (config: {
    name: string
    help: string
    labelNames: string[]
    registers: Registry<RegistryContentType>[]
  }) => Counter<string>
  Histogram: new (config: {
    name: string
    help: string
    labelNames: string[]
    buckets: number[]
    registers: Registry<RegistryContentType>[]
  }) => Histogram<string>
  internals: ClientInternals
}): string[] {
  const problems: string[] = []
  const registry = new client.Registry()
  registry.setDefaultLabels({ worker_id: 'probe' })
  if (defaultLabelsOf(registry).worker_id !== 'probe') {
    problems.push("a registry's default labels are not in _defaultLabels")
  }
  const labels = { kind: 'probe' }
  const counter = new client.Counter({
    name: 'probe_total',
    help: 'probe',
    labelNames: ['kind'],
    registers: [],
  })
  counter.inc(labels, 2)
  const counted = client.internals.counterSeries(counter, labels)
  counter.inc(labels, 3)
  if (counted?.entry.value !== 5 || !counted.stillStored()) {
    problems.push("a counter's stored series is not where it was found")
  }
  if (labelNamesOf(counter)[0] !== 'kind') problems.push("a metric's labelNames are missing")
  if (exemplarsEnabled(counter)) problems.push("a metric's enableExemplars is not false")
  const histogram = new client.Histogram({
    name: 'probe_seconds',
    help: 'probe',
    labelNames: ['kind'],
    buckets: [1],
    registers: [],
  })
  histogram.observe(labels, 0.5)
  const observed = client.internals.histogramSeries(histogram, labels)
  if (
    observed?.entry.count !== 1 ||
    observed.entry.sum !== 0.5 ||
    observed.entry.bucketValues['1'] !== 1
  ) {
    problems.push("a histogram's stored series is not { labels, sum, count, bucketValues }")
  }
  if (upperBoundsOf(histogram)[0] !== 1) problems.push("a histogram's upperBounds are missing")
  if (typeof asRenderable(histogram).getForPromString !== 'function') {
    problems.push('a histogram has no getForPromString')
  }
  return problems
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
 * @prometheus-io/client's summary leaves `labels` out of the `_sum` and `_count` of a series
 * without labels (its registry reads the absence as none).
 */
export function seriesLabelsOf(value: RenderedValue): Labels {
  const labels = (value.labels as Labels | undefined) ?? {}
  return value.sharedLabels === undefined ? labels : { ...value.sharedLabels, ...labels }
}

function objectOrUndefined(value: unknown): object | undefined {
  return typeof value === 'object' && value !== null ? value : undefined
}

/** prom-client's reading of `labels(...)` / `remove(...)` arguments: an object, or values in order. */
export function labelsOfArguments(labelNames: readonly string[], args: readonly unknown[]): Labels {
  if (typeof args[0] === 'object' && args[0] !== null) return args[0] as Labels
  const labels: Labels = {}
  labelNames.forEach((name, i) => {
    if (args[i] !== undefined) labels[name] = args[i] as string
  })
  return labels
}
