// Reading protobuf expositions in tests: decoding delimited MetricFamily messages with
// protobufjs, and flattening them into the samples the text formats write (`_bucket` with
// `le`, `_sum`, `_count`, `quantile`), so an answer in one format can be compared with another.
import { Reader } from 'protobufjs'
import { MetricFamilyType } from '../packages/plugin/src/exposition/protobuf/metrics-schema'

export interface DecodedLabel {
  name: string
  value: string
}

export interface DecodedExemplar {
  label?: DecodedLabel[]
  value?: number
  timestamp?: { seconds?: number; nanos?: number }
}

export interface DecodedMetric {
  label?: DecodedLabel[]
  gauge?: { value?: number }
  counter?: { value?: number; exemplar?: DecodedExemplar }
  untyped?: { value?: number }
  summary?: {
    sample_count?: number
    sample_sum?: number
    quantile?: Array<{ quantile?: number; value?: number }>
  }
  histogram?: {
    sample_count?: number
    sample_count_float?: number
    sample_sum?: number
    bucket?: Array<{
      cumulative_count?: number
      cumulative_count_float?: number
      upper_bound?: number
      exemplar?: DecodedExemplar
    }>
    schema?: number
    zero_threshold?: number
    zero_count?: number
    positive_span?: Array<{ offset?: number; length?: number }>
    positive_delta?: number[]
    negative_span?: Array<{ offset?: number; length?: number }>
    negative_delta?: number[]
    exemplars?: DecodedExemplar[]
  }
}

export interface DecodedFamily {
  name?: string
  help?: string
  /** MetricType's number; absent means 0, COUNTER. */
  type?: number
  metric?: DecodedMetric[]
  unit?: string
}

/** Every message of a delimited exposition, as plain objects (64-bit integers as numbers). */
export function decodeFamilies(bytes: Uint8Array): DecodedFamily[] {
  const reader = Reader.create(bytes)
  const families: DecodedFamily[] = []
  while (reader.pos < reader.len) {
    const message = MetricFamilyType.decodeDelimited(reader)
    families.push(MetricFamilyType.toObject(message, { longs: Number }) as DecodedFamily)
  }
  return families
}

export interface SampleExemplar {
  labels: Record<string, string>
  value: number
  timestampMs?: number
}

/** One sample as the text formats write it. */
export interface Sample {
  name: string
  labels: Record<string, string>
  value: number
  exemplar?: SampleExemplar
}

const TYPE_NAMES = ['counter', 'gauge', 'summary', 'untyped', 'histogram', 'gaugehistogram']

/** A family's type as the text formats name it. */
export function typeName(family: DecodedFamily): string {
  return TYPE_NAMES[family.type ?? 0] ?? `type ${family.type}`
}

/**
 * The samples Prometheus reads from decoded families, as the text format would write them: a
 * histogram's buckets (+Inf from the sample count when absent), `_sum` and `_count`; a
 * summary's quantiles, `_sum` and `_count`. Bounds and quantiles are written as JavaScript
 * writes the number, as prom-client does.
 */
export function protobufSamples(families: readonly DecodedFamily[]): Sample[] {
  const samples: Sample[] = []
  for (const family of families) {
    const name = family.name ?? ''
    for (const metric of family.metric ?? []) {
      const labels = labelsOf(metric.label)
      const add = (sample: string, value: number, extra = {}, exemplar?: DecodedExemplar) => {
        const one: Sample = { name: sample, labels: { ...labels, ...extra }, value }
        if (exemplar !== undefined) one.exemplar = exemplarOf(exemplar)
        samples.push(one)
      }
      if (metric.counter) add(name, metric.counter.value ?? 0, {}, metric.counter.exemplar)
      if (metric.gauge) add(name, metric.gauge.value ?? 0)
      if (metric.untyped) add(name, metric.untyped.value ?? 0)
      if (metric.summary) {
        for (const q of metric.summary.quantile ?? []) {
          add(name, q.value ?? 0, { quantile: String(q.quantile ?? 0) })
        }
        add(`${name}_sum`, metric.summary.sample_sum ?? 0)
        add(`${name}_count`, metric.summary.sample_count ?? 0)
      }
      if (metric.histogram) {
        const h = metric.histogram
        const count = h.sample_count_float || (h.sample_count ?? 0)
        let sawInf = false
        for (const b of h.bucket ?? []) {
          const bound = b.upper_bound ?? 0
          sawInf ||= bound === Number.POSITIVE_INFINITY
          add(
            `${name}_bucket`,
            b.cumulative_count_float || (b.cumulative_count ?? 0),
            { le: bound === Number.POSITIVE_INFINITY ? '+Inf' : String(bound) },
            b.exemplar,
          )
        }
        if (!sawInf) add(`${name}_bucket`, count, { le: '+Inf' })
        add(`${name}_sum`, h.sample_sum ?? 0)
        add(`${name}_count`, count)
      }
    }
  }
  return samples
}

function labelsOf(pairs: readonly DecodedLabel[] | undefined): Record<string, string> {
  const labels: Record<string, string> = {}
  for (const pair of pairs ?? []) labels[pair.name] = pair.value
  return labels
}

function exemplarOf(exemplar: DecodedExemplar): SampleExemplar {
  const one: SampleExemplar = { labels: labelsOf(exemplar.label), value: exemplar.value ?? 0 }
  if (exemplar.timestamp !== undefined) {
    const { seconds = 0, nanos = 0 } = exemplar.timestamp
    one.timestampMs = seconds * 1000 + Math.round(nanos / 1e6)
  }
  return one
}

/**
 * The samples of a text-format or OpenMetrics exposition as prom-client writes it: one
 * `name{labels} value` a line, an OpenMetrics exemplar after ` # `. Comments are skipped.
 */
export function textSamples(text: string): Sample[] {
  const samples: Sample[] = []
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue
    samples.push(parseSampleLine(line))
  }
  return samples
}

function parseSampleLine(line: string): Sample {
  let at = 0
  while (at < line.length && line[at] !== '{' && line[at] !== ' ') at++
  const name = line.slice(0, at)
  const labels: Record<string, string> = {}
  if (line[at] === '{') at = parseLabels(line, at + 1, labels)
  const rest = line.slice(at).trim()
  const [value, exemplar] = rest.split(' # ')
  const sample: Sample = { name, labels, value: parseValue(value) }
  if (exemplar !== undefined) {
    const exemplarLabels: Record<string, string> = {}
    const end = parseLabels(exemplar, 1, exemplarLabels)
    const [exemplarValue, timestamp] = exemplar.slice(end).trim().split(' ')
    sample.exemplar = { labels: exemplarLabels, value: parseValue(exemplarValue) }
    if (timestamp !== undefined) sample.exemplar.timestampMs = Math.round(Number(timestamp) * 1000)
  }
  return sample
}

/** Reads `a="x",b="y"}` from `at` into `labels`; returns the offset after the `}`. */
function parseLabels(line: string, from: number, labels: Record<string, string>): number {
  let at = from
  while (line[at] !== '}') {
    if (line[at] === ',') at++
    const eq = line.indexOf('=', at)
    const name = line.slice(at, eq)
    at = eq + 2 // past `="`
    let value = ''
    while (line[at] !== '"') {
      if (line[at] === '\\') {
        at++
        value += line[at] === 'n' ? '\n' : line[at]
      } else value += line[at]
      at++
    }
    labels[name] = value
    at++ // past the closing quote
  }
  return at + 1
}

function parseValue(text: string): number {
  if (text === '+Inf') return Number.POSITIVE_INFINITY
  if (text === '-Inf') return Number.NEGATIVE_INFINITY
  return Number(text)
}

/** A sample's identity: its name and sorted labels. */
export function sampleKey(sample: Pick<Sample, 'name' | 'labels'>): string {
  const pairs = Object.keys(sample.labels)
    .sort()
    .map((name) => `${name}=${JSON.stringify(sample.labels[name])}`)
  return `${sample.name}{${pairs.join(',')}}`
}

/**
 * Samples by key, sorted by key; a key seen twice throws (one scrape holds each series once).
 * A value of -0 becomes 0: the text formats write it as `0` (prom-client formats with String),
 * protobuf's double keeps the sign, and Prometheus compares the two as equal.
 */
export function samplesByKey(samples: readonly Sample[]): Map<string, Sample> {
  const byKey = new Map<string, Sample>()
  for (const sample of samples) {
    const key = sampleKey(sample)
    if (byKey.has(key)) throw new Error(`${key} appears twice`)
    byKey.set(key, Object.is(sample.value, -0) ? { ...sample, value: 0 } : sample)
  }
  return new Map([...byKey.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
}
