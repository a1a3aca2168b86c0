// The carried families of a handover, checked as input from outside: every value must be one
// prom-client could have produced for a counter or histogram, or it would be rendered to
// Prometheus as it stands. Names follow the exposition grammar; values are finite, counts are
// never negative; a series appears once; a histogram's buckets are cumulative and end at its
// count.

import { isPlainObject } from '../lib/plain-object'
import { seriesKey } from '../lib/series-key'
import type { CarriedFamily, CarriedValue } from './carried-family'

type Fail = (what: string) => never
type Labels = CarriedValue['labels']

/** prometheus.io/docs/concepts/data_model: metric and label names. */
const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/
const HISTOGRAM_SUFFIXES = ['_bucket', '_sum', '_count'] as const
type HistogramSuffix = (typeof HISTOGRAM_SUFFIXES)[number]

/** Longest excerpt of untrusted text quoted in a message. */
const QUOTE_CHARS = 80

/**
 * `raw` validated as carried families, holding at most `maxValues` values in all. Calls `fail`
 * with the first problem found.
 */
export function validateFamilies(raw: unknown, maxValues: number, fail: Fail): CarriedFamily[] {
  if (!Array.isArray(raw)) return fail('families is not an array')
  // Counted before anything is checked value by value, so a huge file costs no more than this.
  let total = 0
  for (const family of raw) {
    if (isPlainObject(family) && Array.isArray(family.values)) total += family.values.length
  }
  if (total > maxValues) return fail(`it holds ${total} values, above the limit of ${maxValues}`)
  const names = new Set<string>()
  return raw.map((family, i): CarriedFamily => {
    const checked = validateFamily(family, i, fail)
    if (names.has(checked.name)) fail(`${checked.name} appears twice`)
    names.add(checked.name)
    return checked
  })
}

function validateFamily(family: unknown, index: number, fail: Fail): CarriedFamily {
  if (!isPlainObject(family)) return fail(`family ${index} is not an object`)
  const { name, type } = family
  if (typeof name !== 'string' || !METRIC_NAME.test(name)) {
    return fail(`family ${index} has the name ${quote(name)}, not a metric name`)
  }
  if (type !== 'counter' && type !== 'histogram') return fail(`${name} has type ${quote(type)}`)
  if (!Array.isArray(family.values)) return fail(`${name} has no values`)
  const values = family.values.map((value) => validateValue(name, type, value, fail))
  refuseDuplicates(name, values, fail)
  if (type === 'histogram') checkHistogramSeries(name, values, fail)
  return { name, type, values }
}

function validateValue(
  family: string,
  type: CarriedFamily['type'],
  value: unknown,
  fail: Fail,
): CarriedValue {
  if (!isPlainObject(value)) return fail(`${family} has a value that is not an object`)
  const { metricName, labels } = value
  let suffix: HistogramSuffix | undefined
  if (type === 'counter') {
    // prom-client names no sample of a counter; the family name itself is as good.
    if (metricName !== undefined && metricName !== family) {
      return fail(`${family} has a sample named ${quote(metricName)}`)
    }
  } else {
    suffix = HISTOGRAM_SUFFIXES.find((s) => metricName === `${family}${s}`)
    if (suffix === undefined) return fail(`${family} has a sample named ${quote(metricName)}`)
  }
  const sample = (metricName as string | undefined) ?? family
  if (!isPlainObject(labels)) return fail(`${sample} has a value without labels`)
  checkLabels(sample, suffix, labels, fail)
  checkNumber(sample, suffix, value.value, fail)
  const carried: CarriedValue = { labels: labels as Labels, value: value.value as number }
  // A counter's sample keeps no name, as prom-client's own: it is matched to the live series.
  if (suffix !== undefined) carried.metricName = metricName as string
  return carried
}

/**
 * Label values are strings, or finite numbers: prom-client takes numbers too (its `LabelValues`
 * are `string | number`) and hands them back as given, so a counter incremented with
 * `{ code: 200 }` carries 200; and it labels a histogram's finite buckets with the bound itself.
 * A number renders as digits, with nothing to escape. In a histogram `le` is the buckets' alone:
 * a finite bound or "+Inf", as prom-client writes them (a counter may have a label named le).
 */
function checkLabels(
  sample: string,
  suffix: HistogramSuffix | undefined,
  labels: Record<string, unknown>,
  fail: Fail,
) {
  for (const [name, value] of Object.entries(labels)) {
    if (!LABEL_NAME.test(name) || name.startsWith('__')) {
      fail(`${sample} has the label name ${quote(name)}`)
    }
    if (name === 'le' && suffix !== undefined) {
      if (suffix !== '_bucket') fail(`${sample} has a label le`)
      if (value !== '+Inf' && !isFiniteNumber(value)) fail(`${sample} has le = ${quote(value)}`)
    } else if (typeof value !== 'string' && !isFiniteNumber(value)) {
      fail(`${sample} has the label ${name} = ${quote(value)}`)
    }
  }
  if (suffix === '_bucket' && labels.le === undefined) fail(`${sample} has a bucket without le`)
}

/**
 * Every value is finite and not negative, but a histogram's `_sum`, which negative observations
 * lower. Bucket counts and `_count` grow by exactly one per observation, so a fraction there can
 * only be damage; a counter's `inc(n)` may add fractions, and `_sum` adds observed values.
 */
function checkNumber(sample: string, suffix: string | undefined, value: unknown, fail: Fail) {
  if (!isFiniteNumber(value)) return fail(`${sample} has the value ${quote(value)}, not finite`)
  if (value < 0 && suffix !== '_sum') return fail(`${sample} has the negative value ${value}`)
  if ((suffix === '_bucket' || suffix === '_count') && !Number.isSafeInteger(value)) {
    fail(`${sample} has the count ${value}, not a whole number`)
  }
}

/** Each series once: a second would be added to the first, and two large ones overflow. */
function refuseDuplicates(family: string, values: readonly CarriedValue[], fail: Fail) {
  const seen = new Set<string>()
  for (const value of values) {
    const key = seriesKey(value.metricName ?? family, value.labels)
    if (seen.has(key)) fail(`${family} has the series ${describe(value, family)} twice`)
    seen.add(key)
  }
}

interface HistogramSeries {
  labels: Labels
  buckets: Array<{ le: number; value: number }>
  sum?: number
  count?: number
}

/**
 * Each series (label set apart from `le`) has a `_sum`, a `_count` and a bucket for the same
 * bounds as every other series of the family, up to "+Inf"; bucket counts do not decrease as
 * `le` grows, and "+Inf" equals `_count`, as in anything prom-client renders.
 */
function checkHistogramSeries(family: string, values: readonly CarriedValue[], fail: Fail) {
  const bySeries = new Map<string, HistogramSeries>()
  for (const value of values) {
    const { le, ...labels } = value.labels
    const key = seriesKey('', labels)
    let series = bySeries.get(key)
    if (series === undefined) {
      series = { labels, buckets: [] }
      bySeries.set(key, series)
    }
    if (value.metricName === `${family}_sum`) series.sum = value.value
    else if (value.metricName === `${family}_count`) series.count = value.value
    else
      series.buckets.push({
        le: le === '+Inf' ? Number.POSITIVE_INFINITY : Number(le),
        value: value.value,
      })
  }
  let bounds: string | undefined
  for (const series of bySeries.values()) {
    const name = describeLabels(series.labels)
    if (series.sum === undefined) fail(`${family}${name} has no _sum`)
    if (series.count === undefined) fail(`${family}${name} has no _count`)
    const buckets = series.buckets.sort((a, b) => a.le - b.le)
    const last = buckets.at(-1)
    if (last?.le !== Number.POSITIVE_INFINITY) fail(`${family}${name} has no le="+Inf" bucket`)
    for (let i = 1; i < buckets.length; i++) {
      if (buckets[i].value < buckets[i - 1].value) {
        fail(`${family}${name} has a bucket le="${buckets[i].le}" below le="${buckets[i - 1].le}"`)
      }
    }
    if (last?.value !== series.count) {
      fail(`${family}${name} has le="+Inf" ${last?.value}, not its _count ${series.count}`)
    }
    const these = buckets.map((bucket) => bucket.le).join(',')
    bounds ??= these
    if (these !== bounds) fail(`${family}${name} has other buckets than the family's first series`)
  }
}

function describe(value: CarriedValue, family: string): string {
  return `${value.metricName ?? family}${describeLabels(value.labels)}`
}

function describeLabels(labels: Labels): string {
  const text = Object.entries(labels)
    .map(([name, value]) => `${name}=${JSON.stringify(String(value))}`)
    .join(',')
  return `{${cut(text)}}`
}

/** Untrusted text in a message: JSON-quoted, and cut short. */
function quote(value: unknown): string {
  return cut(typeof value === 'number' ? String(value) : (JSON.stringify(value) ?? String(value)))
}

function cut(text: string): string {
  return text.length > QUOTE_CHARS ? `${text.slice(0, QUOTE_CHARS)}…` : text
}

function isFiniteNumber(value: unknown): value is number {
  return typeof value === 'number' && Number.isFinite(value)
}
