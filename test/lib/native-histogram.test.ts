// The native histogram against an exact oracle and against client_golang. The oracle never uses
// the code's method (Frexp and a table of bounds): a double v is an exact rational m·2^e, and
// its bucket at schema s ≥ 0 is the least i with v^(2^s) ≤ 2^i, decided on BigInts; at s < 0 it
// is the least i with v ≤ 2^(i·2^−s). client_golang's table of bounds is a few ulps off those
// exact boundaries, and placement must follow the table (as Prometheus' Go clients do), so the
// oracle is asked only about values at least five ulps from a boundary that is not a power of
// two; the values closer are pinned with bounds from client_golang's own source and tests.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import fc from 'fast-check'
import {
  type BucketSpan,
  boundsTable,
  bucketIndex,
  bucketUpperBound,
  DEFAULT_ZERO_THRESHOLD,
  fromSpans,
  MAX_SCHEMA,
  MIN_SCHEMA,
  NativeHistogram,
  type NativeHistogramOptions,
  toSpans,
} from '../../packages/plugin/src/lib/native-histogram'

// --- The oracle ------------------------------------------------------------------------------

/** v (positive, finite) as m·2^e with m a whole number. */
function exactParts(v: number): { m: bigint; e: number } {
  if (!(Number.isFinite(v) && v > 0)) throw new RangeError(`not a positive finite double: ${v}`)
  let m = v
  let e = 0
  while (!Number.isInteger(m)) {
    m *= 2 // exact: a double times 2 is a double until it overflows, and this one never does
    e -= 1
  }
  // Whole multiples of 2 move into the exponent: m stays below 2^53.
  let whole = BigInt(m)
  while (whole > 1n && (whole & 1n) === 0n) {
    whole >>= 1n
    e += 1
  }
  return { m: whole, e }
}

function bitLength(n: bigint): number {
  return n.toString(2).length
}

/** The least i with v ≤ base^i at `schema`, for a positive finite v, computed exactly. */
function exactIndex(v: number, schema: number): number {
  const { m, e } = exactParts(v)
  if (schema < 0) {
    // The least n with v ≤ 2^n, then the least i with n ≤ i·2^−schema.
    return Math.ceil(exactIndex(v, 0) / 2 ** -schema) + 0 // + 0: no −0 from ceil
  }
  // v^(2^s) = m^(2^s) · 2^(e·2^s) ≤ 2^i  ⇔  m^(2^s) ≤ 2^(i − e·2^s).
  const power = m ** (1n << BigInt(schema))
  const length = bitLength(power)
  const isPowerOfTwo = (power & (power - 1n)) === 0n
  return (isPowerOfTwo ? length - 1 : length) + e * 2 ** schema
}

const view = new DataView(new ArrayBuffer(8))

/** The next double above v; +Inf stays. */
function nextUp(v: number): number {
  if (v === 0) return Number.MIN_VALUE
  if (v === Number.POSITIVE_INFINITY) return v
  view.setFloat64(0, v)
  const bits = view.getBigUint64(0)
  view.setBigUint64(0, v > 0 ? bits + 1n : bits - 1n)
  return view.getFloat64(0)
}

const nextDown = (v: number) => -nextUp(-v)

function step(v: number, ulps: number): number {
  let out = v
  for (let i = 0; i < Math.abs(ulps); i++) out = ulps > 0 ? nextUp(out) : nextDown(out)
  return out
}

/**
 * Whether |v| is within five ulps of a bucket boundary of `schema` that is not a power of two:
 * there the table's rounding decides, not exact arithmetic.
 */
function nearIrrationalBound(v: number, schema: number): boolean {
  const a = Math.abs(v)
  if (schema <= 0 || !Number.isFinite(a) || a === 0) return false
  const below = exactIndex(Math.max(step(a, -5), Number.MIN_VALUE), schema)
  const above = exactIndex(Math.min(step(a, 5), Number.MAX_VALUE), schema)
  for (let i = below; i < above; i++) if (i % 2 ** schema !== 0) return true
  return false
}

interface Expected {
  zeroCount: number
  positive: Map<number, number>
  negative: Map<number, number>
}

/**
 * The buckets of `observations` at `schema`, from the oracle. NaN has no bucket; ±Inf counts one
 * bucket above ±MaxFloat64 (client_golang's convention, tested on its own below).
 */
function expectedBuckets(observations: number[], schema: number, zeroThreshold: number): Expected {
  const out: Expected = { zeroCount: 0, positive: new Map(), negative: new Map() }
  for (const v of observations) {
    if (Number.isNaN(v)) continue
    if (Math.abs(v) <= zeroThreshold) {
      out.zeroCount += 1
      continue
    }
    const a = Math.abs(v)
    const index =
      a === Number.POSITIVE_INFINITY
        ? exactIndex(Number.MAX_VALUE, schema) + 1
        : exactIndex(a, schema)
    const buckets = v > 0 ? out.positive : out.negative
    buckets.set(index, (buckets.get(index) ?? 0) + 1)
  }
  return out
}

/** The schema a bounded histogram must settle at: the highest whose buckets fit, or −4. */
function expectedSchema(observations: number[], options: Required<NativeHistogramOptions>) {
  for (let schema = options.schema; schema > MIN_SCHEMA; schema--) {
    const { positive, negative } = expectedBuckets(observations, schema, options.zeroThreshold)
    if (positive.size + negative.size <= options.maxBuckets) return schema
  }
  return MIN_SCHEMA
}

const sorted = (buckets: ReadonlyMap<number, number>) =>
  [...buckets.entries()].sort((a, b) => a[0] - b[0])

function histogramOf(observations: number[], options: NativeHistogramOptions) {
  const histogram = new NativeHistogram(options)
  for (const v of observations) histogram.observe(v)
  return histogram
}

/** A decoder written from metrics.proto's description alone. */
function decodeSpans(spans: BucketSpan[], deltas: number[]): Array<[number, number]> {
  const out: Array<[number, number]> = []
  let index = 0
  let count = 0
  let d = 0
  spans.forEach((span, n) => {
    // "Gap to previous span, or starting point for 1st span (which can be negative)."
    index = n === 0 ? span.offset : index + span.offset
    for (let j = 0; j < span.length; j++) {
      count += deltas[d] // "Count delta of each bucket compared to previous one."
      d += 1
      if (count !== 0) out.push([index, count])
      index += 1
    }
  })
  assert.equal(d, deltas.length)
  return out
}

// --- Observations ----------------------------------------------------------------------------

const powerOfTwo = fc.integer({ min: -1074, max: 1023 }).map((k) => 2 ** k)
const anyObservation = fc.oneof(
  { weight: 6, arbitrary: fc.double({ min: 1e-6, max: 100, noNaN: true }) },
  { weight: 2, arbitrary: fc.double() },
  { weight: 2, arbitrary: powerOfTwo },
  { weight: 2, arbitrary: powerOfTwo.map((v) => nextUp(v)) },
  { weight: 1, arbitrary: powerOfTwo.map((v) => -nextDown(v)) },
  {
    weight: 1,
    arbitrary: fc.constantFrom(
      0,
      -0,
      Number.MIN_VALUE,
      Number.MAX_VALUE,
      -Number.MAX_VALUE,
      Number.POSITIVE_INFINITY,
      Number.NEGATIVE_INFINITY,
      Number.NaN,
      DEFAULT_ZERO_THRESHOLD,
      nextUp(DEFAULT_ZERO_THRESHOLD),
    ),
  },
)
const schemaArb = fc.integer({ min: MIN_SCHEMA, max: MAX_SCHEMA })
const zeroThresholdArb = fc.constantFrom(0, DEFAULT_ZERO_THRESHOLD, 0.001, 1)

// --- Placement ------------------------------------------------------------------------------

test('the bounds table is client_golang nativeHistogramBounds, bit for bit', () => {
  // Values from client_golang's prometheus/histogram.go.
  assert.deepEqual(boundsTable(1), [0.5, 0.7071067811865475])
  assert.deepEqual(
    boundsTable(2),
    [0.5, 0.5946035575013605, 0.7071067811865475, 0.8408964152537144],
  )
  assert.deepEqual(
    boundsTable(3),
    [
      0.5, 0.5452538663326288, 0.5946035575013605, 0.6484197773255048, 0.7071067811865475,
      0.7711054127039704, 0.8408964152537144, 0.9170040432046711,
    ],
  )
  assert.deepEqual(
    boundsTable(4).slice(12),
    [0.8408964152537144, 0.8781260801866495, 0.9170040432046711, 0.9576032806985735],
  )
  assert.deepEqual(
    boundsTable(5).slice(0, 4),
    [0.5, 0.5109485743270583, 0.5221368912137069, 0.5335702003384117],
  )
  const eight = boundsTable(8)
  assert.equal(eight.length, 256)
  assert.deepEqual(
    [eight[1], eight[2], eight[127], eight[252], eight[255]],
    [
      0.5013556375251013, 0.5027149505564014, 0.7051948041086352, 0.9892280131939752,
      0.9972960560854698,
    ],
  )
})

test('every bound lies within four ulps of the exact boundary 2^(j/2^s − 1)', () => {
  for (let schema = 1; schema <= MAX_SCHEMA; schema++) {
    const bounds = boundsTable(schema)
    for (let j = 0; j < bounds.length; j++) {
      // Nine ulps wide, centred on the bound, the window holds exactly one boundary: the j-th.
      const low = exactIndex(step(bounds[j], -4), schema)
      const high = exactIndex(step(bounds[j], 5), schema)
      assert.equal(low, j - 2 ** schema, `schema ${schema}, bound ${j}, below`)
      assert.equal(high, j - 2 ** schema + 1, `schema ${schema}, bound ${j}, above`)
    }
  }
})

test('a power of two is the upper bound of its bucket at every schema, down to subnormals', () => {
  const exponents = [-1074, -1073, -1060, -1023, -1022, -1021, -129, -128, -127, -20, -9, -1]
  exponents.push(0, 1, 2, 3, 7, 8, 9, 100, 1000, 1022, 1023)
  for (let schema = MIN_SCHEMA; schema <= MAX_SCHEMA; schema++) {
    for (const k of exponents) {
      const v = 2 ** k
      const name = `2^${k} at schema ${schema}`
      assert.equal(bucketIndex(v, schema), exactIndex(v, schema), name)
      assert.equal(bucketIndex(-v, schema), exactIndex(v, schema), `-${name}`)
      assert.equal(bucketIndex(nextUp(v), schema), exactIndex(nextUp(v), schema), `above ${name}`)
      if (v > Number.MIN_VALUE) {
        assert.equal(bucketIndex(nextDown(v), schema), exactIndex(nextDown(v), schema), name)
      }
      // 2^k sits exactly on a boundary at schema ≥ 0: the next double is in a higher bucket
      // (the next one, or one further up among the widely spaced subnormals).
      if (schema >= 0) assert.ok(exactIndex(nextUp(v), schema) > exactIndex(v, schema))
    }
  }
  // 1 is the upper bound of bucket 0 everywhere.
  for (let schema = MIN_SCHEMA; schema <= MAX_SCHEMA; schema++) {
    assert.equal(bucketIndex(1, schema), 0)
    assert.equal(bucketIndex(nextUp(1), schema), 1)
  }
})

test('around every bound that is not a power of two, placement follows the table', () => {
  for (let schema = 1; schema <= MAX_SCHEMA; schema++) {
    const bounds = boundsTable(schema)
    for (const power of [-1000, -40, -3, 0, 1, 5, 30, 1000]) {
      for (let j = 1; j < bounds.length; j++) {
        const bound = bounds[j] * 2 ** power // exact: a power-of-two scale of a normal double
        // Five ulps away on each side, the exact oracle decides: the two buckets this bound
        // separates.
        const lower = exactIndex(step(bound, -5), schema)
        assert.equal(exactIndex(step(bound, 5), schema), lower + 1)
        assert.equal(bucketIndex(step(bound, -5), schema), lower)
        assert.equal(bucketIndex(step(bound, 5), schema), lower + 1)
        // The bound itself closes the lower bucket, the next double opens the upper one.
        const at = `bound ${j} of schema ${schema} × 2^${power}`
        assert.equal(bucketIndex(bound, schema), lower, at)
        assert.equal(bucketIndex(nextUp(bound), schema), lower + 1, at)
      }
    }
  }
})

test('where the table is below the exact boundary, the doubles between go above, as in Go', () => {
  // client_golang's bound 0.8408964152537144 (schema 2) is two ulps below 2^−0.25. The double
  // just above it is, exactly, still below 2^−0.25, yet a Go client counts it in bucket 0.
  const bound = 0.8408964152537144
  assert.equal(exactIndex(nextUp(bound), 2), -1)
  assert.equal(bucketIndex(nextUp(bound), 2), 0)
  assert.equal(bucketIndex(bound, 2), -1)
  // 2^−0.5 rounded to the nearest double is above the exact boundary: bucket 0 at schema 1.
  assert.equal(bucketIndex(Math.SQRT1_2, 1), 0)
  assert.equal(bucketIndex(0.7071067811865475, 1), -1)
})

test('±Inf counts one bucket above ±MaxFloat64; the upper bounds are as getLe gives them', () => {
  for (let schema = MIN_SCHEMA; schema <= MAX_SCHEMA; schema++) {
    const last = exactIndex(Number.MAX_VALUE, schema)
    assert.equal(bucketIndex(Number.POSITIVE_INFINITY, schema), last + 1)
    assert.equal(bucketIndex(Number.NEGATIVE_INFINITY, schema), last + 1)
    assert.equal(bucketUpperBound(last, schema), Number.MAX_VALUE)
    assert.equal(bucketUpperBound(last + 1, schema), Number.POSITIVE_INFINITY)
  }
  // client_golang's TestGetLe.
  const cases: Array<[number, number, number]> = [
    [-1, -1, 0.25],
    [0, -1, 1],
    [1, -1, 4],
    [512, -1, Number.MAX_VALUE],
    [513, -1, Number.POSITIVE_INFINITY],
    [-1, 0, 0.5],
    [0, 0, 1],
    [1, 0, 2],
    [1024, 0, Number.MAX_VALUE],
    [1025, 0, Number.POSITIVE_INFINITY],
    [-1, 2, 0.8408964152537144],
    [0, 2, 1],
    [1, 2, 1.189207115002721],
    [4096, 2, Number.MAX_VALUE],
    [4097, 2, Number.POSITIVE_INFINITY],
  ]
  for (const [index, schema, want] of cases) {
    assert.equal(bucketUpperBound(index, schema), want, `index ${index}, schema ${schema}`)
  }
})

// --- client_golang's TestNativeHistogram, scenario by scenario -------------------------------

test("client_golang's native histogram scenarios give its spans, deltas, counts and sums", () => {
  const goDefault = DEFAULT_ZERO_THRESHOLD
  assert.equal(goDefault, 2.938735877055719e-39)
  const minusSixth = [0, -1, -1.2, -1.4, -1.8, -2]
  const plusSixth = [0, 1, 1.2, 1.4, 1.8, 2]
  const scenarios: Array<{
    name: string
    observations: number[]
    options: NativeHistogramOptions
    want: Record<string, unknown>
  }> = [
    {
      name: 'factor 1.1 results in schema 3',
      observations: [0, 1, 2, 3],
      options: { schema: 3 },
      want: {
        count: 4,
        sum: 6,
        schema: 3,
        zeroCount: 1,
        positiveSpans: [
          { offset: 0, length: 1 },
          { offset: 7, length: 1 },
          { offset: 4, length: 1 },
        ],
        positiveDeltas: [1, 0, 0],
      },
    },
    {
      name: 'factor 1.2 results in schema 2',
      observations: plusSixth,
      options: { schema: 2 },
      want: {
        count: 6,
        sum: 7.4,
        schema: 2,
        zeroCount: 1,
        positiveSpans: [{ offset: 0, length: 5 }],
        positiveDeltas: [1, -1, 2, -2, 2],
      },
    },
    {
      name: 'factor 4 results in schema -1',
      observations: [0.0156251, 0.0625, 0.1, 0.25, 0.5, 1, 1.5, 2, 3, 3.5, 5, 6, 7, 33.33],
      options: { schema: -1 },
      want: {
        count: 14,
        sum: 63.2581251,
        schema: -1,
        zeroCount: 0,
        positiveSpans: [{ offset: -2, length: 6 }],
        positiveDeltas: [2, 0, 0, 2, -1, -2],
      },
    },
    {
      name: 'factor 17 results in schema -2',
      observations: [0.0156251, 0.0625, 0.1, 0.25, 0.5, 1, 1.5, 2, 3, 3.5, 5, 6, 7, 33.33],
      options: { schema: -2 },
      want: {
        count: 14,
        sum: 63.2581251,
        schema: -2,
        zeroCount: 0,
        positiveSpans: [{ offset: -1, length: 4 }],
        positiveDeltas: [2, 2, 3, -6],
      },
    },
    {
      name: 'negative and positive buckets',
      observations: [...minusSixth, ...plusSixth.slice(1)],
      options: { schema: 2 },
      want: {
        count: 11,
        sum: 0,
        zeroCount: 1,
        negativeSpans: [{ offset: 0, length: 5 }],
        negativeDeltas: [1, -1, 2, -2, 2],
        positiveSpans: [{ offset: 0, length: 5 }],
        positiveDeltas: [1, -1, 2, -2, 2],
      },
    },
    {
      name: 'wide zero bucket',
      observations: [...minusSixth, ...plusSixth.slice(1)],
      options: { schema: 2, zeroThreshold: 1.4 },
      want: {
        count: 11,
        zeroThreshold: 1.4,
        zeroCount: 7,
        negativeSpans: [{ offset: 4, length: 1 }],
        negativeDeltas: [2],
        positiveSpans: [{ offset: 4, length: 1 }],
        positiveDeltas: [2],
      },
    },
    {
      name: 'NaN observation',
      observations: [...plusSixth, Number.NaN],
      options: { schema: 2 },
      want: {
        count: 7,
        sum: Number.NaN,
        zeroCount: 1,
        positiveSpans: [{ offset: 0, length: 5 }],
        positiveDeltas: [1, -1, 2, -2, 2],
      },
    },
    {
      name: '+Inf observation',
      observations: [...plusSixth, Number.POSITIVE_INFINITY],
      options: { schema: 2 },
      want: {
        count: 7,
        sum: Number.POSITIVE_INFINITY,
        positiveSpans: [
          { offset: 0, length: 5 },
          { offset: 4092, length: 1 },
        ],
        positiveDeltas: [1, -1, 2, -2, 2, -1],
      },
    },
    {
      name: '-Inf observation',
      observations: [...plusSixth, Number.NEGATIVE_INFINITY],
      options: { schema: 2 },
      want: {
        count: 7,
        sum: Number.NEGATIVE_INFINITY,
        negativeSpans: [{ offset: 4097, length: 1 }],
        negativeDeltas: [1],
        positiveSpans: [{ offset: 0, length: 5 }],
      },
    },
    {
      name: 'limited buckets but nothing triggered',
      observations: plusSixth,
      options: { schema: 2, maxBuckets: 4 },
      want: { schema: 2, positiveSpans: [{ offset: 0, length: 5 }] },
    },
    {
      name: 'buckets limited by halving resolution',
      observations: [0, 1, 1.1, 1.2, 1.4, 1.8, 2, 3],
      options: { schema: 2, maxBuckets: 4 },
      want: {
        count: 8,
        sum: 11.5,
        schema: 1,
        zeroCount: 1,
        positiveSpans: [{ offset: 0, length: 5 }],
        positiveDeltas: [1, 2, -1, -2, 1],
      },
    },
    {
      name: 'buckets limited by halving resolution, negative observations',
      observations: [0, -1, -1.1, -1.2, -1.4, -1.8, -2, -3],
      options: { schema: 2, maxBuckets: 4 },
      want: {
        sum: -11.5,
        schema: 1,
        negativeSpans: [{ offset: 0, length: 5 }],
        negativeDeltas: [1, 2, -1, -2, 1],
      },
    },
    {
      name: 'no observations and zero threshold of zero resulting in no-op span',
      observations: [],
      options: { schema: 3, zeroThreshold: 0 },
      want: { count: 0, zeroThreshold: 0, positiveSpans: [{ offset: 0, length: 0 }] },
    },
    {
      name: 'no observations',
      observations: [],
      options: { schema: 3 },
      want: { count: 0, zeroThreshold: goDefault, positiveSpans: [], negativeSpans: [] },
    },
  ]
  for (const { name, observations, options, want } of scenarios) {
    const snapshot = histogramOf(observations, options).snapshot() as unknown as Record<
      string,
      unknown
    >
    for (const [field, value] of Object.entries(want)) {
      assert.deepEqual(snapshot[field], value, `${name}: ${field}`)
    }
  }
})

// --- Properties -----------------------------------------------------------------------------

test('(a) the buckets hold exactly the observations the oracle places there', () => {
  fc.assert(
    fc.property(
      fc.array(anyObservation, { maxLength: 150, size: 'large' }),
      schemaArb,
      zeroThresholdArb,
      (observations, schema, zeroThreshold) => {
        fc.pre(!observations.some((v) => nearIrrationalBound(v, schema)))
        const histogram = histogramOf(observations, { schema, zeroThreshold, maxBuckets: 1e6 })
        const want = expectedBuckets(observations, schema, zeroThreshold)
        assert.equal(histogram.schema, schema)
        assert.deepEqual(sorted(histogram.positive), sorted(want.positive))
        assert.deepEqual(sorted(histogram.negative), sorted(want.negative))
        assert.equal(histogram.zeroCount, want.zeroCount)
        assert.equal(histogram.count, observations.length)
      },
    ),
    { numRuns: 150 },
  )
})

test('past maxBuckets the schema drops to the highest that fits; count and sum stay', () => {
  fc.assert(
    fc.property(
      fc.array(anyObservation, { minLength: 1, maxLength: 120, size: 'large' }),
      schemaArb,
      fc.integer({ min: 1, max: 30 }),
      (observations, schema, maxBuckets) => {
        const options = { schema, maxBuckets, zeroThreshold: DEFAULT_ZERO_THRESHOLD }
        const settled = expectedSchema(observations, options)
        fc.pre(!observations.some((v) => nearIrrationalBound(v, settled)))
        const histogram = histogramOf(observations, options)
        // Each observation sits in the bucket the oracle gives it at the lower schema.
        const want = expectedBuckets(observations, settled, DEFAULT_ZERO_THRESHOLD)
        assert.equal(histogram.schema, settled)
        assert.deepEqual(sorted(histogram.positive), sorted(want.positive))
        assert.deepEqual(sorted(histogram.negative), sorted(want.negative))
        assert.equal(histogram.zeroCount, want.zeroCount)
        assert.equal(histogram.count, observations.length)
        assert.ok(
          Object.is(
            histogram.sum,
            observations.reduce((a, v) => a + v, 0),
          ),
        )
        if (settled > MIN_SCHEMA) {
          assert.ok(histogram.positive.size + histogram.negative.size <= maxBuckets)
        }
      },
    ),
    { numRuns: 150 },
  )
})

test('one halving merges bucket pairs: 2i−1 and 2i into i, so 1 stays a boundary', () => {
  const histogram = new NativeHistogram({ schema: 0, maxBuckets: 4 })
  // Buckets −1 (0.25, 0.5], 0 (0.5, 1], 1 (1, 2], 2 (2, 4] at schema 0.
  for (const v of [0.3, 0.5, 0.6, 1, 1.5, 2, 3, 4]) histogram.observe(v)
  assert.equal(histogram.schema, 0)
  histogram.observe(5) // bucket 3 (4, 8]: five buckets, one too many
  assert.equal(histogram.schema, -1)
  // Schema −1: bucket 0 (0.25, 1], 1 (1, 4], 2 (4, 16].
  assert.deepEqual(sorted(histogram.positive), [
    [0, 4],
    [1, 4],
    [2, 1],
  ])
})

/** Splits `items` into `groups` random groups by the given assignment. */
function split<T>(items: T[], assignment: number[], groups: number): T[][] {
  const out: T[][] = Array.from({ length: groups }, () => [])
  for (let i = 0; i < items.length; i++) {
    out[assignment[i % assignment.length] % groups].push(items[i])
  }
  return out
}

test('(b) histograms of the workers, merged, equal the histogram of all observations', () => {
  // Finite values stay below 1e300 so that no order of summation overflows.
  const observation = fc.oneof(
    fc.double({ min: -1e300, max: 1e300, noNaN: true }),
    fc.double({ min: 1e-6, max: 100, noNaN: true }),
    powerOfTwo.filter((v) => v < 1e300),
    fc.constantFrom(0, Number.MIN_VALUE, Number.POSITIVE_INFINITY, Number.NaN),
  )
  fc.assert(
    fc.property(
      fc.array(observation, { maxLength: 200, size: 'large' }),
      fc.array(fc.nat(), { minLength: 1, maxLength: 50 }),
      fc.integer({ min: 1, max: 8 }),
      schemaArb,
      fc.integer({ min: 1, max: 60 }),
      (observations, assignment, workers, schema, maxBuckets) => {
        const options = { schema, maxBuckets }
        const all = histogramOf(observations, options)
        const merged = new NativeHistogram(options)
        for (const group of split(observations, assignment, workers)) {
          merged.add(histogramOf(group, options))
        }
        const { sum: mergedSum, ...mergedState } = merged.toState()
        const { sum: allSum, ...allState } = all.toState()
        assert.deepEqual(mergedState, allState)
        // The sums differ only by the order of additions: at most 2nε·Σ|v| apart.
        const magnitude = observations.reduce(
          (a, v) => a + (Number.isFinite(v) ? Math.abs(v) : 0),
          0,
        )
        if (typeof mergedSum === 'number' && typeof allSum === 'number') {
          assert.ok(Math.abs(mergedSum - allSum) <= 2 * observations.length * 2 ** -53 * magnitude)
        } else assert.equal(mergedSum, allSum)
      },
    ),
    { numRuns: 200 },
  )
})

test('merging histograms of different schemas brings both to the lower one', () => {
  const fine = [0.001, 0.0123, 0.2, 0.21, 1, 1.0001, 7, 300]
  const coarse = [0.0011, 0.05, 0.5, 2, 2.5, 64]
  const merged = histogramOf(fine, { schema: 6 })
  merged.add(histogramOf(coarse, { schema: 1 }))
  assert.equal(merged.schema, 1)
  const want = expectedBuckets([...fine, ...coarse], 1, DEFAULT_ZERO_THRESHOLD)
  assert.deepEqual(sorted(merged.positive), sorted(want.positive))
  assert.equal(merged.count, fine.length + coarse.length)
  // The other way round gives the same.
  const other = histogramOf(coarse, { schema: 1 })
  other.add(histogramOf(fine, { schema: 6 }))
  assert.deepEqual(other.toState(), merged.toState())
})

test('merging with a wider zero bucket moves the buckets below it, and one across it widens it', () => {
  const narrow = histogramOf([0.1, 0.3, 0.5, 0.75, 3], { schema: 0 })
  const wide = histogramOf([0.2, 2], { schema: 0, zeroThreshold: 0.5 })
  narrow.add(wide)
  // At schema 0: 0.1 in (1/16, 1/8], 0.3 in (1/4, 1/2], 0.5 closes (1/4, 1/2]: all ≤ 0.5.
  assert.equal(narrow.zeroThreshold, 0.5)
  assert.equal(narrow.zeroCount, 4)
  assert.deepEqual(sorted(narrow.positive), [
    [0, 1],
    [1, 1],
    [2, 1],
  ])
  // A threshold inside bucket (0.5, 1] takes that bucket whole and widens to 1.
  const across = histogramOf([0.75, 3], { schema: 0 })
  across.add(histogramOf([], { schema: 0, zeroThreshold: 0.6 }))
  assert.equal(across.zeroThreshold, 1)
  assert.equal(across.zeroCount, 1)
  assert.deepEqual(sorted(across.positive), [[2, 1]])
})

// --- Spans, deltas, state -------------------------------------------------------------------

test('spans and deltas encode the buckets as metrics.proto describes, and decode back', () => {
  fc.assert(
    fc.property(
      fc.uniqueArray(fc.integer({ min: -300, max: 300 }), { maxLength: 40 }),
      fc.array(fc.integer({ min: 1, max: 1000 }), { minLength: 40, maxLength: 40 }),
      (indexes, counts) => {
        const buckets = new Map(indexes.map((index, i) => [index, counts[i]]))
        const { spans, deltas } = toSpans(buckets)
        assert.deepEqual(decodeSpans(spans, deltas), sorted(buckets))
        assert.deepEqual(sorted(fromSpans(spans, deltas)), sorted(buckets))
        // client_golang's layout: a new span only after a gap of three or more empty buckets.
        for (const span of spans.slice(1)) assert.ok(span.offset >= 3)
        for (const span of spans) assert.ok(span.length >= 1)
        if (indexes.length > 0) assert.equal(spans[0].offset, Math.min(...indexes))
      },
    ),
  )
  // A gap of one or two empty buckets is filled, three open a new span.
  const { spans, deltas } = toSpans(
    new Map([
      [-2, 5],
      [0, 1],
      [3, 4],
      [7, 2],
    ]),
  )
  assert.deepEqual(spans, [
    { offset: -2, length: 6 },
    { offset: 3, length: 1 },
  ])
  assert.deepEqual(deltas, [5, -5, 1, -1, 0, 4, -2])
})

test('the state is plain JSON, and restoring it continues the same histogram', () => {
  fc.assert(
    fc.property(
      fc.array(anyObservation, { maxLength: 100, size: 'large' }),
      fc.array(anyObservation, { maxLength: 30 }),
      schemaArb,
      fc.integer({ min: 1, max: 40 }),
      (before, after, schema, maxBuckets) => {
        const options = { schema, maxBuckets }
        const original = histogramOf(before, options)
        const state = JSON.parse(JSON.stringify(original.toState()))
        const restored = NativeHistogram.fromState(state, options)
        assert.deepEqual(restored.toState(), original.toState())
        for (const v of after) {
          original.observe(v)
          restored.observe(v)
        }
        assert.deepEqual(restored.toState(), original.toState())
      },
    ),
  )
  const nan = histogramOf([1, Number.NaN, Number.NEGATIVE_INFINITY], {}).toState()
  assert.equal(nan.sum, 'NaN')
  assert.ok(Number.isNaN(NativeHistogram.fromState(nan).sum))
  assert.equal(histogramOf([Number.NEGATIVE_INFINITY], {}).toState().sum, '-Inf')
})

test('a state restored at a lower configured schema is brought down to it', () => {
  const observations = [0.003, 0.004, 0.02, 0.25, 0.26, 1.7]
  const state = histogramOf(observations, { schema: 5 }).toState()
  const restored = NativeHistogram.fromState(state, { schema: 2 })
  assert.equal(restored.schema, 2)
  const want = expectedBuckets(observations, 2, DEFAULT_ZERO_THRESHOLD)
  assert.deepEqual(sorted(restored.positive), sorted(want.positive))
})

test('a bad state is refused, naming what is wrong', () => {
  const good = histogramOf([0, 1, 2], { schema: 3 }).toState()
  const cases: Array<[unknown, RegExp]> = [
    [null, /must be an object/],
    [[], /must be an object/],
    [{ ...good, schema: 9 }, /schema must be an integer from -4 to 8/],
    [{ ...good, schema: 1.5 }, /schema must be an integer/],
    [{ ...good, zeroThreshold: -1 }, /zeroThreshold/],
    [{ ...good, count: -1 }, /count must be a whole number/],
    [{ ...good, count: 1.5 }, /count must be a whole number/],
    [{ ...good, zeroCount: '1' }, /zeroCount must be a whole number/],
    [{ ...good, sum: null }, /sum must be a finite number/],
    [{ ...good, sum: 'Infinity' }, /sum must be a finite number/],
    [{ ...good, positive: [] }, /positive must be an object/],
    [{ ...good, positive: { '1.5': 1 } }, /bucket index "1.5"/],
    [{ ...good, positive: { '01': 1 } }, /bucket index "01"/],
    [{ ...good, negative: { '9000': 1 } }, /negative bucket index "9000" is not one of schema 3/],
    [{ ...good, positive: { '0': 0 } }, /positive bucket 0 must hold a whole number ≥ 1/],
    [{ ...good, count: 2 }, /buckets hold 3 observations, more than count 2/],
  ]
  for (const [state, message] of cases) {
    assert.throws(() => NativeHistogram.fromState(state), message, JSON.stringify(state))
  }
})

test('options are checked: schema −4..8, maxBuckets ≥ 1, zeroThreshold finite ≥ 0', () => {
  assert.throws(() => new NativeHistogram({ schema: 9 }), /schema must be an integer from -4/)
  assert.throws(() => new NativeHistogram({ schema: -5 }), /schema must be an integer from -4/)
  assert.throws(() => new NativeHistogram({ maxBuckets: 0 }), /maxBuckets must be a positive/)
  assert.throws(() => new NativeHistogram({ zeroThreshold: -1 }), /zeroThreshold must be/)
  assert.throws(() => new NativeHistogram({ zeroThreshold: Number.NaN }), /zeroThreshold/)
})

test('the newest exemplar stays, with its timestamp, also across a merge', () => {
  const a = new NativeHistogram()
  a.observeWithExemplar(0.2, { trace_id: 'a'.repeat(32) }, 1000)
  a.observeWithExemplar(0.3, { trace_id: 'b'.repeat(32) }, 2000)
  a.observe(0.4)
  assert.deepEqual(a.snapshot().exemplars, [
    { labels: { trace_id: 'b'.repeat(32) }, value: 0.3, timestampMs: 2000 },
  ])
  const older = new NativeHistogram()
  older.observeWithExemplar(5, { trace_id: 'c'.repeat(32) }, 1500)
  a.add(older)
  assert.equal(a.snapshot().exemplars?.[0].timestampMs, 2000)
  const newer = new NativeHistogram()
  newer.observeWithExemplar(5, { trace_id: 'd'.repeat(32) }, 3000)
  a.add(newer)
  assert.equal(a.snapshot().exemplars?.[0].labels.trace_id, 'd'.repeat(32))
  assert.equal(new NativeHistogram().snapshot().exemplars, undefined)
  a.reset()
  assert.equal(a.snapshot().exemplars, undefined)
  assert.equal(a.count, 0)
})

test('a histogram made from classic buckets keeps their count and sum, each bucket at its bound', () => {
  // Classic bounds -1, 0, 0.5, 2 with 1, 2, 0, 3 observations in their buckets, and 4 above 2.
  const cumulative = [
    { upperBound: -1, cumulative: 1 },
    { upperBound: 0, cumulative: 3 },
    { upperBound: 0.5, cumulative: 3 },
    { upperBound: 2, cumulative: 6 },
    { upperBound: Number.POSITIVE_INFINITY, cumulative: 10 },
  ]
  const histogram = NativeHistogram.fromClassic(cumulative, 10, 31.5, { schema: 0 })
  assert.equal(histogram.count, 10)
  assert.equal(histogram.sum, 31.5)
  assert.equal(histogram.zeroCount, 2) // the bucket of bound 0
  // Schema 0: bucket i holds (2^(i−1), 2^i]. -1 is bucket 0 of the negative side; 2 is bucket 1,
  // and what lies above 2 is placed one bucket higher, (2, 4].
  assert.deepEqual([...histogram.negative], [[0, 1]])
  assert.deepEqual(
    [...histogram.positive].sort((a, b) => a[0] - b[0]),
    [
      [1, 3],
      [2, 4],
    ],
  )
})

test('a histogram made from classic buckets whose largest bound is not positive puts what lies above it in the zero bucket', () => {
  const histogram = NativeHistogram.fromClassic(
    [
      { upperBound: -1, cumulative: 2 },
      { upperBound: Number.POSITIVE_INFINITY, cumulative: 5 },
    ],
    5,
    -1,
  )
  assert.equal(histogram.zeroCount, 3)
  assert.equal(histogram.negative.size, 1)
  assert.equal(histogram.positive.size, 0)
})
