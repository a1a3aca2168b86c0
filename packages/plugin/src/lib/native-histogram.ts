// A Prometheus native histogram (sparse exponential buckets), kept as client_golang keeps it
// (prometheus/histogram.go, the reference implementation), so that an observation lands in the
// bucket a Go service would put it in, to the last bit at every boundary.
//
// Schema s (−4..8): bucket boundaries are the powers of base = 2^(2^−s); bucket i holds
// (base^(i−1), base^i], so 1 is always a boundary (the upper bound of bucket 0). Observations
// with |v| ≤ zeroThreshold count in the zero bucket; the others in positive or negative buckets
// by |v|. Past `maxBuckets` populated buckets the resolution is halved (schema − 1, buckets
// merged pairwise) until the histogram fits again or reaches schema −4.
//
// One deliberate difference from client_golang: it halves the resolution once per observation
// that finds the bound exceeded; here it halves until the bound holds. The schema then depends on
// the set of observations only, never on their order, so histograms of disjoint sets of
// observations (the workers') merge into exactly the histogram of all of them.
// (client_golang's other strategies, resetting or widening the zero bucket, are off unless
// configured there, and are not kept here.)
import { isPlainObject } from './plain-object'

/** Lowest and highest schema Prometheus accepts for exponential buckets. */
export const MIN_SCHEMA = -4
export const MAX_SCHEMA = 8

/** client_golang's DefNativeHistogramZeroThreshold, 2^−128: a bucket boundary at every schema. */
export const DEFAULT_ZERO_THRESHOLD = 2 ** -128

export interface BucketSpan {
  /** First span: the index of its first bucket; later spans: the gap after the previous one. */
  offset: number
  length: number
}

export interface NativeExemplar {
  labels: Record<string, string>
  value: number
  timestampMs: number
}

/** The native fields of a histogram as the protobuf exposition (io.prometheus.client) carries them. */
export interface NativeHistogramFields {
  schema: number
  zeroThreshold: number
  zeroCount: number
  positiveSpans: BucketSpan[]
  /** Each bucket's count minus the previous bucket's (the first: minus 0), span after span. */
  positiveDeltas: number[]
  negativeSpans: BucketSpan[]
  negativeDeltas: number[]
  exemplars?: NativeExemplar[]
}

/**
 * The native fields with the count and sum of the same observations: the protobuf Histogram's
 * sample_count and sample_sum must agree with its buckets (Prometheus refuses a sample whose
 * buckets hold more observations than its count).
 */
export interface NativeHistogramSnapshot extends NativeHistogramFields {
  count: number
  sum: number
}

export interface NativeHistogramOptions {
  /** Initial resolution, −4..8; default 3 (8 buckets per power of two, each ≈ 9 % wide). */
  schema?: number
  /** Most populated buckets (positive and negative together) before halving; default 160. */
  maxBuckets?: number
  /** Observations with |v| ≤ this go to the zero bucket; default 2^−128. */
  zeroThreshold?: number
}

/** A non-finite sum as plain JSON carries it. */
export type StateSum = number | 'NaN' | '+Inf' | '-Inf'

/** A histogram's contents as plain JSON, to carry it across processes. */
export interface NativeHistogramState {
  schema: number
  zeroThreshold: number
  zeroCount: number
  count: number
  sum: StateSum
  /** Bucket index (a decimal integer) → count; only populated buckets. */
  positive: Record<string, number>
  negative: Record<string, number>
}

export const DEFAULT_SCHEMA = 3
/**
 * At schema 3, 160 buckets cover 20 powers of two (a factor of about 10^6, e.g. 10 µs to 10 s)
 * before the resolution is halved. OpenTelemetry's exponential histograms default to the same
 * bound; client_golang's example uses 100.
 */
export const DEFAULT_MAX_BUCKETS = 160

/** What is wrong with native histogram options, or `undefined`. */
export function nativeOptionsProblem(options: NativeHistogramOptions): string | undefined {
  const { schema, maxBuckets, zeroThreshold } = options
  if (
    schema !== undefined &&
    !(Number.isInteger(schema) && schema >= MIN_SCHEMA && schema <= MAX_SCHEMA)
  ) {
    return `schema must be an integer from ${MIN_SCHEMA} to ${MAX_SCHEMA}, got ${schema}`
  }
  if (maxBuckets !== undefined && !(Number.isSafeInteger(maxBuckets) && maxBuckets >= 1)) {
    return `maxBuckets must be a positive integer, got ${maxBuckets}`
  }
  if (zeroThreshold !== undefined && !(Number.isFinite(zeroThreshold) && zeroThreshold >= 0)) {
    return `zeroThreshold must be a finite number ≥ 0, got ${zeroThreshold}`
  }
  return undefined
}

// --- Bucket index, as client_golang computes it ---------------------------------------------

/**
 * math.Exp2(2^−s) as Go computes it, s = 1..8: the factor between neighbouring bounds. Go's
 * Exp2(0.5) is one ulp (2^−52) below √2 rounded; the others equal JavaScript's 2 ** 2 ** −s.
 */
const GO_FACTORS = [
  Math.SQRT2 - 2 ** -52,
  1.189207115002721,
  1.0905077326652577,
  1.0442737824274138,
  1.0218971486541166,
  1.0108892860517005,
  1.0054299011128027,
  1.0027112750502025,
]

/**
 * client_golang's nativeHistogramBounds: for each schema s, the 2^s bucket bounds within one
 * power of two, as fractions in [0.5, 1). Generated as its source documents (each bound the
 * previous one times the factor, every other bound taken from the schema below), which with
 * Go's factors reproduces its table bit for bit. The bounds are a few ulps off the exact powers
 * of the base; placement follows them, as Prometheus' Go clients do.
 */
const BOUNDS: readonly Float64Array[] = (() => {
  const tables: Float64Array[] = [Float64Array.of(0.5)]
  for (let s = 1; s <= MAX_SCHEMA; s++) {
    const bounds = new Float64Array(2 ** s)
    bounds[0] = 0.5
    for (let j = 1; j < bounds.length; j++) {
      bounds[j] = j % 2 === 0 ? tables[s - 1][j / 2] : bounds[j - 1] * GO_FACTORS[s - 1]
    }
    tables.push(bounds)
  }
  return tables
})()

/** The bucket bounds of schema `s` (1..8) within [0.5, 1), for tests and documentation. */
export function boundsTable(schema: number): readonly number[] {
  return Array.from(BOUNDS[schema])
}

// math.Frexp on the bits of a double: one shared buffer, nothing allocated per call.
const f64 = new Float64Array(1)
const u32 = new Uint32Array(f64.buffer)
const LITTLE_ENDIAN = new Uint8Array(Uint16Array.of(1).buffer)[0] === 1
const HI = LITTLE_ENDIAN ? 1 : 0
const LO = 1 - HI
const TWO_64 = 2 ** 64

/**
 * The index of the bucket holding `value` (non-zero; its sign is ignored) at `schema`, exactly
 * as client_golang's histogramCounts.observe computes its key: from math.Frexp, by table for
 * positive schemas. ±Inf is counted one bucket above ±MaxFloat64.
 */
export function bucketIndex(value: number, schema: number): number {
  let v = value < 0 ? -value : value
  let inf = 0
  if (v === Number.POSITIVE_INFINITY) {
    v = Number.MAX_VALUE
    inf = 1
  }
  f64[0] = v
  let hi = u32[HI]
  let exp: number
  if (hi >>> 20 === 0) {
    // Subnormal: scaled into the normal range first, as Frexp does.
    f64[0] = v * TWO_64
    hi = u32[HI]
    exp = (hi >>> 20) - 1022 - 64
  } else {
    exp = (hi >>> 20) - 1022
  }
  if (schema > 0) {
    // frac = v / 2^exp in [0.5, 1): the same mantissa under the exponent of 0.5.
    u32[HI] = (hi & 0x000fffff) | 0x3fe00000
    const frac = f64[0]
    const bounds = BOUNDS[schema]
    // sort.SearchFloat64s: the first bound ≥ frac.
    let lo = 0
    let up = bounds.length
    while (lo < up) {
      const mid = (lo + up) >>> 1
      if (bounds[mid] < frac) lo = mid + 1
      else up = mid
    }
    return lo + (exp - 1) * bounds.length + inf
  }
  // frac === 0.5: v is a power of two, the upper bound of its bucket.
  const key = (hi & 0x000fffff) === 0 && u32[LO] === 0 ? exp - 1 : exp
  return ((key + (1 << -schema) - 1) >> -schema) + inf
}

/**
 * The upper bound of bucket `index` at `schema`, as client_golang's getLe: the last bucket of
 * finite values ends at MaxFloat64, the bucket above it (±Inf) at +Inf.
 */
export function bucketUpperBound(index: number, schema: number): number {
  if (schema < 0) {
    const exp = index * 2 ** -schema
    return exp === 1024 ? Number.MAX_VALUE : 2 ** exp
  }
  const perPower = 2 ** schema
  const fracIndex = ((index % perPower) + perPower) % perPower
  const frac = BOUNDS[schema][fracIndex]
  const exp = (index - fracIndex) / perPower + 1
  if (frac === 0.5 && exp === 1025) return Number.MAX_VALUE
  return ldexp(frac, exp)
}

/** frac · 2^exp, with the scaling split so that no intermediate power over- or underflows. */
function ldexp(frac: number, exp: number): number {
  if (exp > 1023) return frac * 2 ** 1023 * 2 ** (exp - 1023)
  if (exp < -1022) return frac * 2 ** (exp + 64) * 2 ** -64
  return frac * 2 ** exp
}

/** The index at `schema − shift` of bucket `index`: buckets merge pairwise, 1 stays a bound. */
function downscaleIndex(index: number, shift: number): number {
  return (index + (1 << shift) - 1) >> shift
}

// --- Spans and deltas -----------------------------------------------------------------------

/**
 * The positive spans to send. metrics.proto (as client_golang writes it): a native histogram with
 * no observations yet and a zero threshold of 0 would read as a classic one to a scraper, unless
 * it has a no-op span, which is then its only positive span.
 */
export function spansToSend(
  fields: Pick<
    NativeHistogramFields,
    'zeroThreshold' | 'zeroCount' | 'positiveSpans' | 'negativeSpans'
  >,
): BucketSpan[] {
  const empty =
    fields.zeroThreshold === 0 &&
    fields.zeroCount === 0 &&
    fields.positiveSpans.length === 0 &&
    fields.negativeSpans.length === 0
  return empty ? [{ offset: 0, length: 0 }] : fields.positiveSpans
}

/**
 * Populated buckets as metrics.proto's spans and deltas, as client_golang's makeBuckets writes
 * them: a gap of one or two empty buckets is filled with empty buckets rather than opening a
 * new span.
 */
export function toSpans(buckets: ReadonlyMap<number, number>): {
  spans: BucketSpan[]
  deltas: number[]
} {
  const spans: BucketSpan[] = []
  const deltas: number[] = []
  const indexes = [...buckets.keys()].sort((a, b) => a - b)
  let previousCount = 0
  let nextIndex = 0
  for (let n = 0; n < indexes.length; n++) {
    const index = indexes[n]
    const gap = index - nextIndex
    const newSpan = n === 0 || gap > 2
    if (newSpan) spans.push({ offset: gap, length: 0 })
    const span = spans[spans.length - 1]
    if (!newSpan) {
      for (let j = 0; j < gap; j++) {
        deltas.push(0 - previousCount) // not -previousCount: -0 is not 0 to a deep equal
        previousCount = 0
        span.length += 1
      }
    }
    const count = buckets.get(index) as number
    deltas.push(count - previousCount)
    span.length += 1
    previousCount = count
    nextIndex = index + 1
  }
  return { spans, deltas }
}

/** The populated buckets that spans and deltas describe (empty buckets left out). */
export function fromSpans(spans: readonly BucketSpan[], deltas: readonly number[]) {
  const buckets = new Map<number, number>()
  let index = 0
  let count = 0
  let d = 0
  for (let n = 0; n < spans.length; n++) {
    index += spans[n].offset
    for (let j = 0; j < spans[n].length; j++) {
      count += deltas[d++]
      if (count !== 0) buckets.set(index, count)
      index += 1
    }
  }
  if (d !== deltas.length) throw new RangeError('spans and deltas disagree in length')
  return buckets
}

// --- The histogram --------------------------------------------------------------------------

export class NativeHistogram {
  schema: number
  zeroThreshold: number
  zeroCount = 0
  /** Every observation, NaN included (as client_golang counts it). */
  count = 0
  sum = 0
  /** Populated buckets: index → count. */
  positive = new Map<number, number>()
  negative = new Map<number, number>()
  /** The newest observation that came with exemplar labels. */
  exemplar: NativeExemplar | undefined
  readonly maxBuckets: number
  private readonly initialSchema: number
  private readonly initialZeroThreshold: number

  constructor(options: NativeHistogramOptions = {}) {
    const problem = nativeOptionsProblem(options)
    if (problem !== undefined) throw new RangeError(`native histogram ${problem}`)
    this.initialSchema = options.schema ?? DEFAULT_SCHEMA
    this.initialZeroThreshold = options.zeroThreshold ?? DEFAULT_ZERO_THRESHOLD
    this.maxBuckets = options.maxBuckets ?? DEFAULT_MAX_BUCKETS
    this.schema = this.initialSchema
    this.zeroThreshold = this.initialZeroThreshold
  }

  observe(value: number): void {
    this.count += 1
    this.sum += value
    // NaN is counted (and makes the sum NaN) but has no bucket, as in client_golang.
    if (Number.isNaN(value)) return
    // ±Inf is compared as ±MaxFloat64, as client_golang does.
    const v = Math.max(-Number.MAX_VALUE, Math.min(value, Number.MAX_VALUE))
    let buckets: Map<number, number>
    if (v > this.zeroThreshold) buckets = this.positive
    else if (v < -this.zeroThreshold) buckets = this.negative
    else {
      this.zeroCount += 1
      return
    }
    this.addToBucket(buckets, bucketIndex(value, this.schema), 1)
  }

  private addToBucket(buckets: Map<number, number>, index: number, times: number): void {
    const count = buckets.get(index)
    if (count !== undefined) {
      buckets.set(index, count + times)
      return
    }
    buckets.set(index, times)
    if (this.positive.size + this.negative.size > this.maxBuckets) this.limitBuckets()
  }

  /**
   * A histogram configured by `options` approximating a classic histogram's observations, for
   * a series whose earlier observations were recorded in classic buckets alone. Count and sum
   * are the classic ones exactly; each classic bucket's observations are placed in the native
   * bucket holding its upper bound (the zero bucket for a bound within the zero threshold),
   * and those above the largest finite bound in the native bucket just above it (the zero
   * bucket if that bound is not positive): as classic quantiles, which never go past the
   * largest finite bound. `buckets` are cumulative, as a classic histogram exposes them;
   * observations above the last bound given count as above the largest finite bound.
   */
  static fromClassic(
    buckets: ReadonlyArray<{ upperBound: number; cumulative: number }>,
    count: number,
    sum: number,
    options: NativeHistogramOptions = {},
  ): NativeHistogram {
    const histogram = new NativeHistogram(options)
    const finite = buckets
      .filter((bucket) => Number.isFinite(bucket.upperBound))
      .sort((a, b) => a.upperBound - b.upperBound)
    let below = 0
    for (const { upperBound, cumulative } of finite) {
      const times = cumulative - below
      if (times <= 0) continue
      below = cumulative
      histogram.placeAt(upperBound, times)
    }
    const above = count - below
    if (above > 0) {
      const largest = finite.length === 0 ? 0 : finite[finite.length - 1].upperBound
      if (largest > histogram.zeroThreshold) {
        // Indexed after the finite buckets: a halving on the way has set the schema.
        const index = bucketIndex(largest, histogram.schema) + 1
        histogram.addToBucket(histogram.positive, index, above)
      } else histogram.zeroCount += above
    }
    histogram.count = count
    histogram.sum = sum
    return histogram
  }

  /** `times` observations of `value` in its bucket, count and sum untouched. */
  private placeAt(value: number, times: number): void {
    if (value > this.zeroThreshold) {
      this.addToBucket(this.positive, bucketIndex(value, this.schema), times)
    } else if (value < -this.zeroThreshold) {
      this.addToBucket(this.negative, bucketIndex(value, this.schema), times)
    } else this.zeroCount += times
  }

  /** An observation of a traced request: also kept as the histogram's newest exemplar. */
  observeWithExemplar(value: number, labels: Record<string, string>, timestampMs: number): void {
    this.observe(value)
    this.exemplar = { labels, value, timestampMs }
  }

  /**
   * Adds `other`'s observations: both at the lower of the two schemas, the zero bucket as wide
   * as the wider one (and wider still if a bucket straddles it, as Prometheus merges), then
   * bounded by this histogram's `maxBuckets`. The newer exemplar stays.
   */
  add(other: NativeHistogram): void {
    const schema = Math.min(this.schema, other.schema)
    this.downscaleTo(schema)
    const shift = other.schema - schema
    addBuckets(this.positive, other.positive, shift)
    addBuckets(this.negative, other.negative, shift)
    this.zeroCount += other.zeroCount
    this.count += other.count
    this.sum += other.sum
    if (other.zeroThreshold !== this.zeroThreshold) {
      this.widenZeroBucket(Math.max(this.zeroThreshold, other.zeroThreshold))
    }
    if (
      other.exemplar !== undefined &&
      (this.exemplar === undefined || other.exemplar.timestampMs > this.exemplar.timestampMs)
    ) {
      this.exemplar = other.exemplar
    }
    this.limitBuckets()
  }

  /** Back to no observations, at the configured schema and zero threshold. */
  reset(): void {
    this.schema = this.initialSchema
    this.zeroThreshold = this.initialZeroThreshold
    this.zeroCount = 0
    this.count = 0
    this.sum = 0
    this.positive = new Map()
    this.negative = new Map()
    this.exemplar = undefined
  }

  snapshot(): NativeHistogramSnapshot {
    const positive = toSpans(this.positive)
    const negative = toSpans(this.negative)
    const snapshot: NativeHistogramSnapshot = {
      schema: this.schema,
      zeroThreshold: this.zeroThreshold,
      zeroCount: this.zeroCount,
      positiveSpans: positive.spans,
      positiveDeltas: positive.deltas,
      negativeSpans: negative.spans,
      negativeDeltas: negative.deltas,
      count: this.count,
      sum: this.sum,
    }
    snapshot.positiveSpans = spansToSend(snapshot)
    if (this.exemplar !== undefined) snapshot.exemplars = [{ ...this.exemplar }]
    return snapshot
  }

  toState(): NativeHistogramState {
    return {
      schema: this.schema,
      zeroThreshold: this.zeroThreshold,
      zeroCount: this.zeroCount,
      count: this.count,
      sum: stateSum(this.sum),
      positive: stateBuckets(this.positive),
      negative: stateBuckets(this.negative),
    }
  }

  /**
   * A histogram configured by `options` holding what `state` holds (added as `add` does, so a
   * state of a higher schema is brought down to the configured one). The state is checked as
   * input from outside; a bad one throws a TypeError naming the problem.
   */
  static fromState(state: unknown, options: NativeHistogramOptions = {}): NativeHistogram {
    const problem = stateProblem(state)
    if (problem !== undefined) throw new TypeError(`native histogram state ${problem}`)
    const s = state as NativeHistogramState
    const restored = new NativeHistogram({ schema: s.schema, zeroThreshold: s.zeroThreshold })
    restored.zeroCount = s.zeroCount
    restored.count = s.count
    restored.sum = typeof s.sum === 'number' ? s.sum : SUM_VALUES[s.sum]
    for (const [key, count] of Object.entries(s.positive)) restored.positive.set(Number(key), count)
    for (const [key, count] of Object.entries(s.negative)) restored.negative.set(Number(key), count)
    const histogram = new NativeHistogram(options)
    histogram.add(restored)
    return histogram
  }

  private limitBuckets(): void {
    while (this.positive.size + this.negative.size > this.maxBuckets && this.schema > MIN_SCHEMA) {
      this.downscaleTo(this.schema - 1)
    }
  }

  private downscaleTo(schema: number): void {
    if (schema >= this.schema) return
    const shift = this.schema - schema
    const positive = new Map<number, number>()
    const negative = new Map<number, number>()
    addBuckets(positive, this.positive, shift)
    addBuckets(negative, this.negative, shift)
    this.positive = positive
    this.negative = negative
    this.schema = schema
  }

  /**
   * Widens the zero bucket to `threshold`: buckets reaching below it join the zero bucket, and
   * one that straddles it widens it further to its upper bound.
   */
  private widenZeroBucket(threshold: number): void {
    let widened = threshold
    let changed = true
    while (changed) {
      changed = false
      for (const buckets of [this.positive, this.negative]) {
        for (const [index, count] of buckets) {
          if (bucketUpperBound(index - 1, this.schema) >= widened) continue
          this.zeroCount += count
          buckets.delete(index)
          const upper = bucketUpperBound(index, this.schema)
          if (upper > widened) {
            widened = upper
            changed = true
          }
        }
      }
    }
    this.zeroThreshold = widened
  }
}

function addBuckets(
  into: Map<number, number>,
  from: ReadonlyMap<number, number>,
  shift: number,
): void {
  for (const [index, count] of from) {
    const target = shift === 0 ? index : downscaleIndex(index, shift)
    into.set(target, (into.get(target) ?? 0) + count)
  }
}

// --- State as plain JSON --------------------------------------------------------------------

const SUM_VALUES = {
  NaN: Number.NaN,
  '+Inf': Number.POSITIVE_INFINITY,
  '-Inf': Number.NEGATIVE_INFINITY,
} as const

function stateSum(sum: number): StateSum {
  if (Number.isFinite(sum)) return sum
  if (Number.isNaN(sum)) return 'NaN'
  return sum > 0 ? '+Inf' : '-Inf'
}

function stateBuckets(buckets: ReadonlyMap<number, number>): Record<string, number> {
  const out: Record<string, number> = {}
  for (const index of [...buckets.keys()].sort((a, b) => a - b)) {
    out[String(index)] = buckets.get(index) as number
  }
  return out
}

const INDEX_PATTERN = /^(0|-?[1-9][0-9]{0,6})$/

const isCount = (value: unknown): value is number =>
  typeof value === 'number' && Number.isSafeInteger(value) && value >= 0

/** What is wrong with a state read from outside, or `undefined`. */
function stateProblem(state: unknown): string | undefined {
  if (!isPlainObject(state)) return 'must be an object'
  const { schema, zeroThreshold, zeroCount, count, sum, positive, negative } = state
  if (
    typeof schema !== 'number' ||
    !Number.isInteger(schema) ||
    schema < MIN_SCHEMA ||
    schema > MAX_SCHEMA
  ) {
    return `schema must be an integer from ${MIN_SCHEMA} to ${MAX_SCHEMA}`
  }
  if (
    typeof zeroThreshold !== 'number' ||
    !(Number.isFinite(zeroThreshold) && zeroThreshold >= 0)
  ) {
    return 'zeroThreshold must be a finite number ≥ 0'
  }
  if (!isCount(zeroCount)) return 'zeroCount must be a whole number ≥ 0'
  if (!isCount(count)) return 'count must be a whole number ≥ 0'
  if (!(typeof sum === 'number' ? Number.isFinite(sum) : Object.hasOwn(SUM_VALUES, String(sum)))) {
    return 'sum must be a finite number, "NaN", "+Inf" or "-Inf"'
  }
  // The lowest index is that of the smallest subnormal, the highest that of ±Inf.
  const lowest = bucketIndex(Number.MIN_VALUE, schema)
  const highest = bucketIndex(Number.POSITIVE_INFINITY, schema)
  let inBuckets = zeroCount
  for (const [name, buckets] of [
    ['positive', positive],
    ['negative', negative],
  ] as const) {
    if (!isPlainObject(buckets)) return `${name} must be an object of index → count`
    for (const [key, value] of Object.entries(buckets)) {
      const index = Number(key)
      if (!INDEX_PATTERN.test(key) || index < lowest || index > highest) {
        return `${name} bucket index ${JSON.stringify(key)} is not one of schema ${schema}`
      }
      if (!isCount(value) || value === 0) {
        return `${name} bucket ${key} must hold a whole number ≥ 1`
      }
      inBuckets += value
    }
  }
  if (inBuckets > count) return `buckets hold ${inBuckets} observations, more than count ${count}`
  return undefined
}
