// mergeProtobuf: families merged by name without decoding a value, proven on random families
// split across random parts, and on the cases the text merge's rules name.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import fc from 'fast-check'
import { Writer } from 'protobufjs'
import { type DecodedFamily, decodeFamilies } from '../../harness/protobuf'
import {
  mergeProtobuf,
  type ProtobufPart,
} from '../../packages/plugin/src/exposition/protobuf/merge'
import {
  METRIC_TYPE,
  MetricFamilyType,
} from '../../packages/plugin/src/exposition/protobuf/metrics-schema'
import {
  MalformedProtobufError,
  readFamilies,
  readVarint,
  varint,
} from '../../packages/plugin/src/exposition/protobuf/wire'

/** Delimited messages of `families`, as a worker's render would send them. */
function encode(families: readonly DecodedFamily[]): Uint8Array {
  const writer = Writer.create()
  for (const family of families) MetricFamilyType.encodeDelimited(family, writer)
  return writer.finish()
}

const gauge = (worker: string, value: number, extra: Record<string, string> = {}) => ({
  label: Object.entries({ ...extra, worker_id: worker }).map(([name, v]) => ({ name, value: v })),
  gauge: { value },
})

const family = (
  name: string,
  metric: DecodedFamily['metric'],
  type: number = METRIC_TYPE.GAUGE,
) => ({
  name,
  help: `${name} help`,
  type,
  metric,
})

test('one message per family: the first part’s, then each later part’s metrics, in part order', () => {
  const merged = mergeProtobuf([
    { workerId: '0', bytes: encode([family('a', [gauge('0', 1)]), family('b', [gauge('0', 2)])]) },
    {
      workerId: '1',
      bytes: encode([
        { ...family('b', [gauge('1', 3), gauge('1', 4, { x: 'y' })]), help: 'other help' },
        family('c', [gauge('1', 5)]),
      ]),
    },
    { workerId: '', bytes: encode([family('a', [gauge('health', 6)])]) },
  ])
  assert.deepEqual(decodeFamilies(merged), [
    family('a', [gauge('0', 1), gauge('health', 6)]),
    // The first part's help, as the text merge keeps the first # HELP.
    family('b', [gauge('0', 2), gauge('1', 3), gauge('1', 4, { x: 'y' })]),
    family('c', [gauge('1', 5)]),
  ])
  assert.equal(readFamilies(merged).length, 3)
})

test('a second part for one worker id is left out; the first wins', () => {
  const merged = mergeProtobuf([
    { workerId: '0', bytes: encode([family('a', [gauge('0', 1)])]) },
    { workerId: '0', bytes: encode([family('a', [gauge('0', 99)]), family('z', [])]) },
  ])
  assert.deepEqual(decodeFamilies(merged), [family('a', [gauge('0', 1)])])
})

test("a part typing a family differently has that family's metrics left out", () => {
  const merged = mergeProtobuf([
    { workerId: '0', bytes: encode([family('a', [gauge('0', 1)])]) },
    {
      workerId: '1',
      bytes: encode([
        family('a', [{ label: [], counter: { value: 7 } }], METRIC_TYPE.COUNTER),
        family('b', [gauge('1', 2)]),
      ]),
    },
  ])
  assert.deepEqual(decodeFamilies(merged), [
    family('a', [gauge('0', 1)]),
    family('b', [gauge('1', 2)]),
  ])
})

test('each family a part leaves out is reported with the worker and both types', () => {
  const dropped: unknown[] = []
  mergeProtobuf(
    [
      { workerId: '0', bytes: encode([family('a', [gauge('0', 1)]), family('b', [])]) },
      {
        workerId: '1',
        bytes: encode([
          family('a', [{ label: [], counter: { value: 7 } }], METRIC_TYPE.COUNTER),
          family('b', []),
        ]),
      },
      { workerId: '2', bytes: encode([family('a', [gauge('2', 1)])]) },
    ],
    (one) => dropped.push(one),
  )
  assert.deepEqual(dropped, [{ workerId: '1', family: 'a', type: 'counter', familyType: 'gauge' }])
})

test('a family without metrics keeps its message; no parts is an empty answer', () => {
  const merged = mergeProtobuf([{ workerId: '0', bytes: encode([family('a', [])]) }])
  assert.deepEqual(decodeFamilies(merged), [{ name: 'a', help: 'a help', type: METRIC_TYPE.GAUGE }])
  assert.equal(mergeProtobuf([]).length, 0)
  assert.equal(mergeProtobuf([{ workerId: '0', bytes: new Uint8Array() }]).length, 0)
})

test('a part that is not well-formed is left out whole', () => {
  const good = encode([family('a', [gauge('0', 1)])])
  const truncated = encode([family('b', [gauge('1', 2)]), family('a', [gauge('1', 3)])])
  const merged = mergeProtobuf([
    { workerId: '0', bytes: good },
    { workerId: '1', bytes: truncated.subarray(0, truncated.length - 1) },
  ])
  assert.deepEqual(decodeFamilies(merged), [family('a', [gauge('0', 1)])])
})

test('a family of many metrics is re-prefixed with its new, longer length', () => {
  // 300 metrics per part: over 2^14 bytes once merged, a three-byte length prefix.
  const metrics = (worker: string) => Array.from({ length: 300 }, (_, i) => gauge(worker, i))
  const parts = ['0', '1', '2'].map((id) => ({
    workerId: id,
    bytes: encode([family('a', metrics(id))]),
  }))
  const merged = mergeProtobuf(parts)
  const [length, start] = readVarint(merged, 0)
  assert.equal(start, 3)
  assert.equal(start + length, merged.length)
  assert.deepEqual(decodeFamilies(merged), [
    family('a', [...metrics('0'), ...metrics('1'), ...metrics('2')]),
  ])
})

test('varints round-trip up to 2^53; malformed framing is refused, not misread', () => {
  fc.assert(
    fc.property(fc.maxSafeNat(), (n) => {
      const bytes = varint(n)
      assert.deepEqual(readVarint(bytes, 0), [n, bytes.length])
    }),
  )
  const message = encode([family('a', [gauge('0', 1)])])
  const bad: Array<[string, Uint8Array]> = [
    ['a truncated varint', Uint8Array.of(0x80)],
    ['an overlong varint', new Uint8Array(11).fill(0xff)],
    ['a message past the end', message.subarray(0, message.length - 2)],
    ['a group (wire type 3)', Uint8Array.of(2, 0x0b, 0)],
    ['field number 0', Uint8Array.of(2, 0x00, 0)],
    ['a field past its message', Uint8Array.of(2, 0x0a, 5)],
    ['a name that is not UTF-8', Uint8Array.of(3, 0x0a, 1, 0xff)],
  ]
  for (const [what, bytes] of bad) {
    assert.throws(() => readFamilies(bytes), MalformedProtobufError, what)
  }
})

// Random families, each given to a random subset of parts with random metrics; some parts type
// a family differently, some repeat a worker id.
const TYPES = [
  METRIC_TYPE.COUNTER,
  METRIC_TYPE.GAUGE,
  METRIC_TYPE.SUMMARY,
  METRIC_TYPE.UNTYPED,
  METRIC_TYPE.HISTOGRAM,
] as const

function metricOf(type: number, worker: string, i: number, value: number) {
  const label = [
    { name: 'i', value: String(i) },
    { name: 'worker_id', value: worker },
  ]
  switch (type) {
    case METRIC_TYPE.COUNTER:
      return { label, counter: { value } }
    case METRIC_TYPE.GAUGE:
      return { label, gauge: { value } }
    case METRIC_TYPE.SUMMARY:
      return {
        label,
        summary: { sample_count: i, sample_sum: value, quantile: [{ quantile: 0.5, value }] },
      }
    case METRIC_TYPE.HISTOGRAM:
      return {
        label,
        histogram: {
          sample_count: i,
          sample_sum: value,
          bucket: [{ cumulative_count: i, upper_bound: 1 }],
        },
      }
    default:
      return { label, untyped: { value } }
  }
}

const clusterArb = fc
  .record({
    families: fc.uniqueArray(
      fc.record({
        name: fc.stringMatching(/^[a-z_][a-z0-9_]{0,12}$/),
        type: fc.constantFrom(...TYPES),
        help: fc.string({ maxLength: 20 }),
      }),
      { selector: (f) => f.name, minLength: 1, maxLength: 8 },
    ),
    parts: fc.array(
      fc.record({
        workerId: fc.constantFrom('0', '1', '2', '3', ''),
        seed: fc.array(fc.nat(3), { minLength: 8, maxLength: 8 }),
        order: fc.array(fc.nat(), { minLength: 8, maxLength: 8 }),
        retype: fc.array(fc.boolean(), { minLength: 8, maxLength: 8 }),
        value: fc.double({ noNaN: true }),
      }),
      { maxLength: 6 },
    ),
  })
  .map(({ families, parts }) =>
    parts.map((part) => {
      // seed[i]: 0 leaves family i out of this part, otherwise 0 to 2 metrics.
      const present = families
        .map((f, i) => ({ ...f, i, count: part.seed[i] - 1 }))
        .filter((f) => f.count >= 0)
        .sort((a, b) => part.order[a.i] - part.order[b.i])
      return {
        workerId: part.workerId,
        families: present.map((f) => {
          const type = part.retype[f.i] ? (f.type + 1) % 5 : f.type
          return {
            name: f.name,
            help: `${f.help} from ${part.workerId}`,
            type,
            metric: Array.from({ length: f.count }, (_, n) =>
              metricOf(type, part.workerId, n, part.value),
            ),
          }
        }),
      }
    }),
  )

/** What the merge must give: the union of the kept parts' families, by the merge's rules. */
function expectedUnion(parts: ReadonlyArray<{ workerId: string; families: DecodedFamily[] }>) {
  const byName = new Map<string, DecodedFamily & { metric: NonNullable<DecodedFamily['metric']> }>()
  const seen = new Set<string>()
  for (const part of parts) {
    if (seen.has(part.workerId)) continue
    seen.add(part.workerId)
    for (const f of part.families) {
      const known = byName.get(f.name ?? '')
      if (known === undefined) byName.set(f.name ?? '', { ...f, metric: [...(f.metric ?? [])] })
      else if (known.type === f.type) known.metric.push(...(f.metric ?? []))
    }
  }
  return [...byName.values()]
}

test('random families split across random parts merge to their union', () => {
  fc.assert(
    fc.property(clusterArb, (parts) => {
      const rendered: ProtobufPart[] = parts.map((part) => ({
        workerId: part.workerId,
        bytes: encode(part.families),
      }))
      const merged = mergeProtobuf(rendered)
      // Compared as decoded objects, each side through the same encoder and decoder.
      assert.deepEqual(decodeFamilies(merged), decodeFamilies(encode(expectedUnion(parts))))
    }),
    { numRuns: 300 },
  )
})

test('a histogram family’s metrics without native fields come before those with them, each kind in part order', () => {
  const classic = (worker: string) => ({
    label: [{ name: 'worker_id', value: worker }],
    histogram: {
      sample_count: 2,
      sample_sum: 0.5,
      bucket: [{ cumulative_count: 2, upper_bound: 1 }],
    },
  })
  const native = (worker: string) => ({
    label: [{ name: 'worker_id', value: worker }],
    histogram: {
      ...classic(worker).histogram,
      schema: 3,
      zero_threshold: 2 ** -128,
      positive_span: [{ offset: -8, length: 1 }],
      positive_delta: [2],
    },
  })
  const h = (metric: DecodedFamily['metric']) => family('h', metric, METRIC_TYPE.HISTOGRAM)
  // While a reload switches native histograms on: worker 0 restarted with them, 1 and 2 not yet.
  const merged = mergeProtobuf([
    { workerId: '0', bytes: encode([h([native('0')]), family('g', [gauge('0', 1)])]) },
    { workerId: '1', bytes: encode([h([classic('1')])]) },
    { workerId: '2', bytes: encode([h([native('2a'), classic('2b')])]) },
  ])
  assert.deepEqual(decodeFamilies(merged), [
    h([classic('1'), classic('2b'), native('0'), native('2a')]),
    family('g', [gauge('0', 1)]),
  ])
})
