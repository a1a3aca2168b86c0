// The merge, proven on random clusters: every worker's registry is built with prom-client from
// a random description, rendered by prom-client, merged, and parsed by a real parser. The merged
// exposition must parse to the union of what each worker's own exposition parses to. The same
// for protobuf, decoded by protoc's Python code for the official metrics.proto, whose samples
// must also be the merged text format's.
import assert from 'node:assert/strict'
import { after, test } from 'node:test'
import fc from 'fast-check'
import { Counter, Gauge, Histogram, Registry, Summary } from 'prom-client'
import { samplesByKey, textSamples } from '../../harness/protobuf'
import {
  mergeExpositions,
  mergeProtobuf,
  renderRegistry,
  type TextFormat,
} from '../../packages/plugin/src/exposition/exposition'
import { ExpositionParser, type ParsedFamily } from './exposition-parser'
import { ProtobufDecoder, type PythonFamily } from './protobuf-decoder'

const parser = new ExpositionParser()
after(() => parser.close())
const decoder = new ProtobufDecoder()
after(() => decoder.close())

const KINDS = ['counter', 'gauge', 'histogram', 'summary'] as const
const LABEL_NAMES = ['method', 'route', 'status_code'] as const

/** A metric family as every worker that has it declares it. */
interface FamilySpec {
  kind: (typeof KINDS)[number]
  /** Counters only: whether the registered name ends in `_total`. */
  totalSuffix: boolean
  help: string
  labelNames: string[]
}

/** One worker's share of a family: absent, or present with its buckets and series. */
interface WorkerFamily {
  present: boolean
  buckets: number[]
  series: Array<{ labelValues: string[]; values: number[] }>
}

// Label values and help texts with what exposition escaping must get right.
const trickyString = (minLength: number) =>
  fc.string({
    minLength,
    unit: fc.oneof(
      fc.constantFrom(
        '"',
        '\\',
        '\n',
        'é',
        '日本',
        '😀',
        ' ',
        ',',
        '=',
        '{',
        '}',
        '#',
        '\\n',
        '\r',
      ),
      fc.constantFrom('a', 'b', 'z', '0'),
    ),
    maxLength: 8,
  })
const labelValue = fc.oneof(trickyString(0), fc.string({ unit: 'binary', maxLength: 6 }))

const familySpec: fc.Arbitrary<FamilySpec> = fc.record({
  kind: fc.constantFrom(...KINDS),
  totalSuffix: fc.boolean(),
  // prom-client requires a help text.
  help: trickyString(1),
  labelNames: fc.subarray([...LABEL_NAMES]),
})

const workerFamily = (family: FamilySpec): fc.Arbitrary<WorkerFamily> =>
  fc.record({
    present: fc.boolean(),
    // Each worker its own buckets, as after a deploy that changed them.
    buckets: fc
      .uniqueArray(fc.double({ min: 0.001, max: 100, noNaN: true }), { minLength: 1, maxLength: 4 })
      .map((b) => b.sort((x, y) => x - y)),
    series: fc.array(
      fc.record({
        labelValues: fc.array(labelValue, {
          minLength: family.labelNames.length,
          maxLength: family.labelNames.length,
        }),
        values: fc.array(
          family.kind === 'gauge'
            ? fc.double({ min: -1e6, max: 1e6, noNaN: true })
            : fc.double({ min: 0, max: 1e6, noNaN: true }),
          { minLength: 1, maxLength: 3 },
        ),
      }),
      // No series at all: an empty family when it has labels.
      { maxLength: 3 },
    ),
  })

const cluster = fc.array(familySpec, { minLength: 1, maxLength: 6 }).chain((families) =>
  fc.record({
    families: fc.constant(families),
    workers: fc.array(fc.tuple(...families.map(workerFamily)), { minLength: 1, maxLength: 5 }),
  }),
)

function familyName(index: number, family: FamilySpec): string {
  const base = `app_f${index}_${family.kind}`
  return family.kind === 'counter' && family.totalSuffix ? `${base}_total` : base
}

/** One worker's registry, built with prom-client from the description. */
function buildRegistry(workerId: string, families: FamilySpec[], mine: WorkerFamily[]): Registry {
  const registry = new Registry()
  registry.setDefaultLabels({ worker_id: workerId })
  families.forEach((family, index) => {
    const share = mine[index]
    if (!share.present) return
    const common = {
      name: familyName(index, family),
      help: family.help,
      labelNames: family.labelNames,
      registers: [registry],
    }
    const labelsOf = (values: string[]) =>
      Object.fromEntries(family.labelNames.map((name, i) => [name, values[i]]))
    if (family.kind === 'counter') {
      const counter = new Counter(common)
      for (const s of share.series)
        for (const v of s.values) counter.inc(labelsOf(s.labelValues), v)
    } else if (family.kind === 'gauge') {
      const gauge = new Gauge(common)
      for (const s of share.series) for (const v of s.values) gauge.set(labelsOf(s.labelValues), v)
    } else if (family.kind === 'histogram') {
      const histogram = new Histogram({ ...common, buckets: share.buckets })
      for (const s of share.series)
        for (const v of s.values) histogram.observe(labelsOf(s.labelValues), v)
    } else {
      const summary = new Summary({ ...common, percentiles: [0.5, 0.99] })
      for (const s of share.series)
        for (const v of s.values) summary.observe(labelsOf(s.labelValues), v)
    }
  })
  return registry
}

/** The gather's own health series, as the answering worker adds them: one more part. */
function healthRegistry(workers: number): Registry {
  const registry = new Registry()
  new Gauge({
    name: 'cluster_metrics_workers_answered',
    help: 'Workers whose metrics are in this scrape.',
    registers: [registry],
  }).set(workers)
  return registry
}

/** Families of several expositions together: first-seen order, samples part by part. */
function union(perPart: ParsedFamily[][]): ParsedFamily[] {
  const byName = new Map<string, ParsedFamily>()
  for (const families of perPart) {
    for (const family of families) {
      const seen = byName.get(family.name)
      if (seen === undefined) byName.set(family.name, { ...family, samples: [...family.samples] })
      else seen.samples.push(...family.samples)
    }
  }
  return [...byName.values()]
}

const RUNS = 100

for (const format of ['prometheus', 'openmetrics'] as const satisfies TextFormat[]) {
  test(`${format}: the merged exposition parses to the union of the workers' own`, async () => {
    await fc.assert(
      fc.asyncProperty(cluster, async ({ families, workers }) => {
        const registries = workers.map((mine, i) => buildRegistry(String(i), families, mine))
        registries.push(healthRegistry(workers.length))
        const texts = await Promise.all(registries.map((r) => renderRegistry(r, format)))
        const parts = texts.map((text, i) => ({
          workerId: i < workers.length ? String(i) : 'cluster',
          text,
        }))
        const merged = mergeExpositions(parts, format)

        const own = []
        for (const part of parts) own.push(await parser.parse(part.text, format))
        assert.deepEqual(await parser.parse(merged, format), union(own))

        // Each family's header once: a split family parses as two, but check the text too.
        const typeLines = merged.split('\n').filter((line) => line.startsWith('# TYPE '))
        assert.equal(new Set(typeLines.map((line) => line.split(' ')[2])).size, typeLines.length)
        if (format === 'openmetrics') {
          assert.ok(merged.endsWith('\n# EOF\n'))
          assert.equal(merged.split('\n').filter((line) => line === '# EOF').length, 1)
        }
      }),
      // The parser's own message (e.g. "Clashing name") in the failure report.
      { numRuns: RUNS, includeErrorInReport: true },
    )
  })
}

/** Decoded families of several answers together: first-seen order, metrics part by part. */
function protobufUnion(perPart: PythonFamily[][]): PythonFamily[] {
  const byName = new Map<string, PythonFamily>()
  for (const families of perPart) {
    for (const family of families) {
      const seen = byName.get(family.name)
      if (seen === undefined) {
        byName.set(family.name, {
          ...family,
          samples: [...family.samples],
          native: [...family.native],
        })
      } else {
        seen.samples.push(...family.samples)
        seen.native.push(...family.native)
      }
    }
  }
  return [...byName.values()]
}

test("protobuf: the merged answer decodes to the union of the workers' own, and to the text format's samples", async () => {
  await fc.assert(
    fc.asyncProperty(cluster, async ({ families, workers }) => {
      const registries = workers.map((mine, i) => buildRegistry(String(i), families, mine))
      registries.push(healthRegistry(workers.length))
      const workerIdOf = (i: number) => (i < workers.length ? String(i) : 'cluster')
      const parts = await Promise.all(
        registries.map(async (r, i) => ({
          workerId: workerIdOf(i),
          bytes: await renderRegistry(r, 'protobuf'),
        })),
      )
      const merged = mergeProtobuf(parts)

      const own = []
      for (const part of parts) own.push(await decoder.decode(part.bytes))
      const decoded = await decoder.decode(merged)
      assert.deepEqual(decoded, protobufUnion(own))
      assert.equal(new Set(decoded.map((family) => family.name)).size, decoded.length)

      const texts = await Promise.all(registries.map((r) => renderRegistry(r, 'prometheus')))
      const mergedText = mergeExpositions(
        texts.map((text, i) => ({ workerId: workerIdOf(i), text })),
        'prometheus',
      )
      assert.deepEqual(
        samplesByKey(decoded.flatMap((family) => family.samples)),
        samplesByKey(textSamples(mergedText)),
      )
    }),
    { numRuns: RUNS, includeErrorInReport: true },
  )
})
