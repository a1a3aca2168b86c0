// One prom-client registry rendered as the Prometheus protobuf exposition: one length-delimited
// io.prometheus.client.MetricFamily per metric, read from the same values the text render
// reads (renderedData), so carried and live series appear exactly as in the text formats.
import type { Registry, RegistryContentType } from 'prom-client'
import { Writer } from 'protobufjs/light'
import { type NativeHistogramFields, spansToSend } from '../../lib/native-histogram'
import {
  asRenderable,
  defaultLabelsOf,
  type Labels,
  type MetricData,
  type RenderedValue,
  renderedData,
  seriesLabelsOf,
} from '../../lib/prom-client-internals'
import { seriesKey } from '../../lib/series-key'
import { METRIC_TYPE, MetricFamilyType } from './metrics-schema'

/**
 * A native histogram's fields as the protobuf Histogram carries them (`packages/plugin/src/lib/native-histogram`),
 * with the observations its buckets hold: if given, the fields are sent only when that is the
 * classic series' count.
 */
export type NativeFields = NativeHistogramFields & { count?: number }

/**
 * Native-histogram fields for a histogram series, or `undefined` for a classic one alone.
 * `metricName` is the family's name; `labels` are the series' labels as exposed (the registry's
 * default labels included, `le` not), values as text.
 */
export type NativeFor = (
  metricName: string,
  labels: Record<string, string>,
) => NativeFields | undefined

export interface ProtobufRenderOptions {
  /** Adds native-histogram fields to histogram series; classic buckets are kept as well. */
  nativeFor?: NativeFor
  /**
   * Labels added to every series that lacks a label of that name, under the registry's own
   * default labels (prom-client's default-label semantics): a worker's `worker_id`, whatever
   * registry its series come from.
   */
  defaultLabels?: Readonly<Labels>
  /**
   * Native histograms that keep changing (live ones), in place of `nativeFor`: called once per
   * render, in the tick the registry's values are read, for the fields of that moment.
   */
  nativeSnapshot?: () => NativeFor
}

/**
 * Renders `registry` as delimited MetricFamily messages, in registration order, without
 * touching it. Names are the registered ones, as the text format writes them: a counter's
 * family keeps its `_total` (Prometheus stores a protobuf counter under its family name).
 */
export async function renderProtobuf(
  registry: Registry<RegistryContentType>,
  options: ProtobufRenderOptions = {},
): Promise<Buffer> {
  const defaults = withDefaults(defaultLabelsOf(registry), options.defaultLabels ?? {})
  // All at once, as prom-client's own render collects them. A metric without a `collect` of
  // its own reads its values within this call; the carried base is added in the microtasks
  // that follow, before any other request or timer runs.
  const reading = registry.getMetricsAsArray().map((metric) => renderedData(asRenderable(metric)))
  // Native fields of the same moment: an async `collect` elsewhere lets requests finish
  // before the families are complete, and they must reach neither half of a histogram.
  const nativeFor = options.nativeSnapshot?.() ?? options.nativeFor
  const families = await Promise.all(reading)
  const writer = Writer.create()
  for (const data of families) {
    MetricFamilyType.encodeDelimited(familyMessage(data, defaults, nativeFor), writer)
  }
  // In Node protobufjs writes into a Buffer already: wrap, never copy.
  const bytes = writer.finish()
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length)
}

interface LabelPair {
  name: string
  value: string
}

interface ExemplarMessage {
  label: LabelPair[]
  value: number
  timestamp?: { seconds: number; nanos: number }
}

interface MetricMessage {
  label: LabelPair[]
  [kind: string]: unknown
}

function familyMessage(
  data: MetricData,
  defaults: Readonly<Labels>,
  nativeFor: NativeFor | undefined,
): object {
  const family = { name: data.name, help: data.help }
  switch (data.type) {
    case 'counter':
      return {
        ...family,
        type: METRIC_TYPE.COUNTER,
        metric: simpleMetrics(data, defaults, 'counter'),
      }
    case 'gauge':
      return { ...family, type: METRIC_TYPE.GAUGE, metric: simpleMetrics(data, defaults, 'gauge') }
    case 'histogram':
      return {
        ...family,
        type: METRIC_TYPE.HISTOGRAM,
        metric: histograms(data, defaults, nativeFor),
      }
    case 'summary':
      return { ...family, type: METRIC_TYPE.SUMMARY, metric: summaries(data, defaults) }
    default:
      return {
        ...family,
        type: METRIC_TYPE.UNTYPED,
        metric: simpleMetrics(data, defaults, 'untyped'),
      }
  }
}

/** Counters, gauges and untyped metrics: one value per series; a counter's exemplar kept. */
function simpleMetrics(
  data: MetricData,
  defaults: Readonly<Labels>,
  kind: 'counter' | 'gauge' | 'untyped',
): MetricMessage[] {
  return data.values.map((value) => {
    const body: { value: number; exemplar?: ExemplarMessage } = { value: value.value }
    if (kind === 'counter') {
      const exemplar = exemplarOf(value)
      if (exemplar !== undefined) body.exemplar = exemplar
    }
    return { label: labelPairs(withDefaults(seriesLabelsOf(value), defaults)), [kind]: body }
  })
}

interface HistogramSeries {
  labels: Labels
  buckets: Array<{ upper_bound: number; cumulative: number; exemplar?: ExemplarMessage }>
  sum: number
  count: number
}

/** Histogram values grouped by series (all labels but `le`): buckets, `_sum`, `_count`. */
function histograms(
  data: MetricData,
  defaults: Readonly<Labels>,
  nativeFor: NativeFor | undefined,
): MetricMessage[] {
  const series = groupSeries(
    data,
    'le',
    defaults,
    (labels): HistogramSeries => ({ labels, buckets: [], sum: 0, count: 0 }),
    (one, value) => {
      const le = value.labels.le
      const bucket: HistogramSeries['buckets'][number] = {
        upper_bound: le === '+Inf' ? Number.POSITIVE_INFINITY : Number(le),
        cumulative: value.value,
      }
      const exemplar = exemplarOf(value)
      if (exemplar !== undefined) bucket.exemplar = exemplar
      one.buckets.push(bucket)
    },
  )
  return series.map((one) => {
    const histogram: Record<string, unknown> = {
      ...countField('sample_count', one.count),
      sample_sum: one.sum,
      bucket: bucketMessages(one.buckets),
    }
    const native = nativeFor?.(data.name, textLabels(one.labels))
    // One count serves both kinds of buckets, and Prometheus refuses a native sample whose
    // buckets disagree with it: a native histogram that does not hold exactly the classic
    // series' observations (a handover carried one and not the other) is left out.
    if (native !== undefined && (native.count === undefined || native.count === one.count)) {
      Object.assign(histogram, nativeFields(native))
    }
    return { label: labelPairs(one.labels), histogram }
  })
}

/**
 * Buckets in increasing order of upper bound. The +Inf bucket is left out unless it holds an
 * exemplar, as client_golang does: its count is the sample count, which Prometheus uses.
 */
function bucketMessages(buckets: HistogramSeries['buckets']): object[] {
  const ordered = buckets.every((b, i) => i === 0 || buckets[i - 1].upper_bound <= b.upper_bound)
    ? buckets
    : [...buckets].sort((a, b) => a.upper_bound - b.upper_bound)
  const messages: object[] = []
  for (const bucket of ordered) {
    if (bucket.upper_bound === Number.POSITIVE_INFINITY && bucket.exemplar === undefined) continue
    messages.push({
      ...countField('cumulative_count', bucket.cumulative),
      upper_bound: bucket.upper_bound,
      ...(bucket.exemplar === undefined ? {} : { exemplar: bucket.exemplar }),
    })
  }
  return messages
}

/**
 * A count as the integer field, or as its `_float` twin when it is not a whole number that a
 * uint64 holds exactly (a float count "overrides" the integer one when above zero).
 */
function countField(name: 'sample_count' | 'cumulative_count', count: number) {
  return Number.isSafeInteger(count) && count >= 0
    ? { [name]: count }
    : { [`${name}_float`]: count }
}

function nativeFields(native: NativeFields): Record<string, unknown> {
  const fields: Record<string, unknown> = {
    schema: native.schema,
    zero_threshold: native.zeroThreshold,
    zero_count: native.zeroCount,
    negative_span: native.negativeSpans,
    negative_delta: native.negativeDeltas,
    positive_span: spansToSend(native),
    positive_delta: native.positiveDeltas,
  }
  if (native.exemplars !== undefined && native.exemplars.length > 0) {
    fields.exemplars = native.exemplars.map((exemplar) => ({
      label: labelPairs(exemplar.labels),
      value: exemplar.value,
      timestamp: timestampOfMs(exemplar.timestampMs),
    }))
  }
  return fields
}

interface SummarySeries {
  labels: Labels
  quantiles: Array<{ quantile: number; value: number }>
  sum: number
  count: number
}

/** Summary values grouped by series (all labels but `quantile`): quantiles, `_sum`, `_count`. */
function summaries(data: MetricData, defaults: Readonly<Labels>): MetricMessage[] {
  const series = groupSeries(
    data,
    'quantile',
    defaults,
    (labels): SummarySeries => ({ labels, quantiles: [], sum: 0, count: 0 }),
    (one, value) =>
      one.quantiles.push({ quantile: Number(value.labels.quantile), value: value.value }),
  )
  return series.map((one) => ({
    label: labelPairs(one.labels),
    summary: {
      ...countField('sample_count', one.count),
      sample_sum: one.sum,
      quantile: one.quantiles,
    },
  }))
}

/**
 * Groups a histogram's or summary's values into series by their labels without `magic` (`le`,
 * `quantile`), the registry's default labels added, in first-seen order: each series' `_sum`
 * and `_count` set, every other value handed to `add`. prom-client gives a histogram series'
 * values one shared label object (`sharedLabels`), so its key is worked out once per series.
 */
function groupSeries<Series extends { sum: number; count: number }>(
  data: MetricData,
  magic: string,
  defaults: Readonly<Labels>,
  create: (labels: Labels) => Series,
  add: (one: Series, value: RenderedValue) => void,
): Series[] {
  const byKey = new Map<string, Series>()
  const byShared = new Map<object, Series>()
  const suffixAt = data.name.length
  for (const value of data.values) {
    const shared = value.sharedLabels
    let one =
      shared !== undefined && onlyMagic(value.labels, magic) ? byShared.get(shared) : undefined
    if (one === undefined) {
      const { [magic]: _magic, ...labels } = seriesLabelsOf(value)
      const full = withDefaults(labels, defaults)
      const key = seriesKey('', full)
      one = byKey.get(key)
      if (one === undefined) {
        one = create(full)
        byKey.set(key, one)
      }
      if (shared !== undefined && onlyMagic(value.labels, magic)) byShared.set(shared, one)
    }
    const suffix = value.metricName?.slice(suffixAt)
    if (suffix === '_sum') one.sum = value.value
    else if (suffix === '_count') one.count = value.value
    else add(one, value)
  }
  return [...byKey.values()]
}

function onlyMagic(labels: Readonly<Labels>, magic: string): boolean {
  for (const name in labels) if (name !== magic) return false
  return true
}

/** A series' labels over the registry's defaults: the series' own win, as prom-client renders. */
function withDefaults(labels: Readonly<Labels>, defaults: Readonly<Labels>): Labels {
  for (const _ in defaults) return { ...defaults, ...labels }
  return labels as Labels
}

function textLabels(labels: Readonly<Labels>): Record<string, string> {
  const text: Record<string, string> = {}
  for (const [name, value] of Object.entries(labels)) text[name] = String(value)
  return text
}

/** Label pairs sorted by name, as client_golang writes them; values as text renders them. */
function labelPairs(labels: Readonly<Record<string, string | number>>): LabelPair[] {
  return Object.keys(labels)
    .sort()
    .map((name) => ({ name, value: String(labels[name]) }))
}

/** prom-client's exemplar on a value (`{ labelSet, value, timestamp }`, seconds), if any. */
function exemplarOf(value: RenderedValue): ExemplarMessage | undefined {
  const exemplar = value.exemplar as
    | { labelSet?: Record<string, string | number>; value?: unknown; timestamp?: unknown }
    | null
    | undefined
  if (exemplar === null || exemplar === undefined || typeof exemplar.value !== 'number') {
    return undefined
  }
  const message: ExemplarMessage = {
    label: labelPairs(exemplar.labelSet ?? {}),
    value: exemplar.value,
  }
  if (typeof exemplar.timestamp === 'number') {
    message.timestamp = timestampOfMs(Math.round(exemplar.timestamp * 1000))
  }
  return message
}

/** google.protobuf.Timestamp of a time in milliseconds since the epoch. */
function timestampOfMs(ms: number) {
  const seconds = Math.floor(ms / 1000)
  return { seconds, nanos: Math.round((ms - seconds * 1000) * 1e6) }
}
