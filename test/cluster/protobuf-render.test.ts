// renderProtobuf: decoded with protobufjs, every family, series, value and exemplar is what the
// text formats render for the same registry; the native-histogram hook adds its fields to
// histogram series only.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { Histogram, type Metric, Registry } from 'prom-client'
import {
  decodeFamilies,
  protobufSamples,
  samplesByKey,
  textSamples,
  typeName,
} from '../../harness/protobuf'
import { renderRegistry } from '../../packages/plugin/src/exposition/exposition'
import { PROTOBUF_CONTENT_TYPE } from '../../packages/plugin/src/exposition/protobuf/metrics-schema'
import {
  type NativeFields,
  renderProtobuf,
} from '../../packages/plugin/src/exposition/protobuf/render'
import { everyKindRegistry } from '../fixtures/every-kind-registry'

test('every series, value and exemplar is what OpenMetrics renders for the same registry', async () => {
  const registry = everyKindRegistry()
  const families = decodeFamilies(await renderProtobuf(registry))
  const fromProtobuf = samplesByKey(protobufSamples(families))
  const fromOpenMetrics = samplesByKey(textSamples(await renderRegistry(registry, 'openmetrics')))
  assert.deepEqual(fromProtobuf, fromOpenMetrics)
  // The counter's, the 0.5 bucket's and the +Inf bucket's.
  assert.equal([...fromProtobuf.values()].filter((sample) => sample.exemplar).length, 3)
  // The text format: the same samples, without exemplars (it has none).
  const fromText = samplesByKey(textSamples(await renderRegistry(registry, 'prometheus')))
  for (const sample of fromProtobuf.values()) delete sample.exemplar
  assert.deepEqual(fromProtobuf, fromText)
  assert.ok(fromProtobuf.size > 20, `${fromProtobuf.size} samples`)
})

test('families: the text format’s names (a counter keeps _total), types and help, in order', async () => {
  const registry = everyKindRegistry()
  const families = decodeFamilies(await renderProtobuf(registry))
  const text = await renderRegistry(registry, 'prometheus')
  const headers = [...text.matchAll(/^# TYPE (\S+) (\S+)$/gm)].map(([, name, type]) => [name, type])
  assert.deepEqual(
    families.map((family) => [family.name, typeName(family)]),
    headers,
  )
  assert.deepEqual(
    families.map((family) => family.help),
    registry.getMetricsAsArray().map((metric) => (metric as unknown as { help: string }).help),
  )
  // A family with no series yet is still sent, as the text format keeps its header.
  const empty = families.find((f) => f.name === 'never_counted_total')
  assert.ok(empty !== undefined)
  assert.equal(empty.metric?.length ?? 0, 0)
})

test('labels are sorted by name and carry the default labels, a series’ own value first', async () => {
  const families = decodeFamilies(await renderProtobuf(everyKindRegistry()))
  for (const family of families) {
    for (const metric of family.metric ?? []) {
      const names = (metric.label ?? []).map((pair) => pair.name)
      assert.deepEqual(names, [...names].sort(), family.name)
      assert.ok(names.includes('worker_id'), family.name)
    }
  }
  const own = families
    .find((f) => f.name === 'job_duration_seconds')
    ?.metric?.find((m) => m.label?.some((l) => l.name === 'route' && l.value === '/c'))
  assert.deepEqual(own?.label, [
    { name: 'route', value: '/c' },
    { name: 'worker_id', value: 'own-3' },
  ])
})

test('a histogram’s +Inf bucket is sent only to carry an exemplar; its count is the sample count', async () => {
  const families = decodeFamilies(await renderProtobuf(everyKindRegistry()))
  const histogram = families.find((f) => f.name === 'job_duration_seconds')
  const byRoute = (route: string) =>
    histogram?.metric?.find((m) => m.label?.some((l) => l.name === 'route' && l.value === route))
      ?.histogram
  // Route "/" saw 9 s, beyond the last bound, with an exemplar: an explicit +Inf bucket.
  assert.deepEqual(
    byRoute('/')?.bucket?.map((b) => [b.upper_bound, b.cumulative_count]),
    [
      [0.1, 0],
      [0.5, 1],
      [2, 1],
      [Number.POSITIVE_INFINITY, 2],
    ],
  )
  assert.equal(byRoute('/')?.sample_count, 2)
  assert.deepEqual(byRoute('/')?.bucket?.[3].exemplar?.label, [{ name: 'trace_id', value: 'y' }])
  assert.deepEqual(
    byRoute('/b')?.bucket?.map((b) => b.upper_bound),
    [0.1, 0.5, 2],
  )
  assert.equal(byRoute('/b')?.sample_sum, 0.05)
  // No native fields without the hook: Prometheus reads it as a classic histogram.
  assert.equal(byRoute('/b')?.schema, undefined)
  assert.equal(byRoute('/b')?.positive_span, undefined)
})

test('counts that are not whole numbers go in the _float fields', async () => {
  const registry = new Registry()
  const data = { name: 'scaled_seconds', help: 'Scaled.', type: 'histogram', aggregator: 'sum' }
  const values = [
    { metricName: 'scaled_seconds_bucket', labels: { le: 1 }, value: 0.5 },
    { metricName: 'scaled_seconds_bucket', labels: { le: '+Inf' }, value: 2.5 },
    { metricName: 'scaled_seconds_sum', labels: {}, value: 3 },
    { metricName: 'scaled_seconds_count', labels: {}, value: 2.5 },
  ]
  registry.registerMetric({ ...data, get: async () => ({ ...data, values }) } as unknown as Metric)
  const [family] = decodeFamilies(await renderProtobuf(registry))
  const histogram = family.metric?.[0].histogram
  assert.equal(histogram?.sample_count, undefined)
  assert.equal(histogram?.sample_count_float, 2.5)
  assert.deepEqual(histogram?.bucket, [{ cumulative_count_float: 0.5, upper_bound: 1 }])
  assert.deepEqual(
    samplesByKey(protobufSamples([family])),
    samplesByKey(textSamples(await renderRegistry(registry, 'prometheus'))),
  )
})

test('the native hook adds its fields to histogram series, with labels as exposed', async () => {
  const registry = everyKindRegistry()
  const asked: Array<[string, Record<string, string>]> = []
  const native: NativeFields = {
    schema: 3,
    zeroThreshold: 1e-128,
    zeroCount: 1,
    positiveSpans: [
      { offset: -2, length: 2 },
      { offset: 3, length: 1 },
    ],
    positiveDeltas: [1, -1, 2],
    negativeSpans: [{ offset: 0, length: 1 }],
    negativeDeltas: [4],
    exemplars: [{ labels: { trace_id: 'n' }, value: 0.3, timestampMs: 1_700_000_000_123 }],
  }
  const bytes = await renderProtobuf(registry, {
    nativeFor: (name, labels) => {
      asked.push([name, labels])
      return labels.route === '/' ? native : undefined
    },
  })
  assert.deepEqual(
    asked.map(([name, labels]) => [name, labels.route, labels.worker_id]),
    [
      ['job_duration_seconds', '/', '3'],
      ['job_duration_seconds', '/b', '3'],
      ['job_duration_seconds', '/c', 'own-3'],
      ['job_duration_seconds', '/never', '3'],
    ],
  )
  assert.ok(asked.every(([, labels]) => !('le' in labels)))
  const histograms = decodeFamilies(bytes).find((f) => f.name === 'job_duration_seconds')?.metric
  const withNative = histograms?.[0].histogram
  assert.deepEqual(
    {
      schema: withNative?.schema,
      zero_threshold: withNative?.zero_threshold,
      zero_count: withNative?.zero_count,
      positive_span: withNative?.positive_span,
      positive_delta: withNative?.positive_delta,
      negative_span: withNative?.negative_span,
      negative_delta: withNative?.negative_delta,
      exemplars: withNative?.exemplars,
    },
    {
      schema: 3,
      zero_threshold: 1e-128,
      zero_count: 1,
      positive_span: native.positiveSpans,
      positive_delta: [1, -1, 2],
      negative_span: [{ offset: 0, length: 1 }],
      negative_delta: [4],
      exemplars: [
        {
          label: [{ name: 'trace_id', value: 'n' }],
          value: 0.3,
          timestamp: { seconds: 1_700_000_000, nanos: 123_000_000 },
        },
      ],
    },
  )
  // The classic buckets stay, for a Prometheus that scrapes them too.
  assert.equal(withNative?.bucket?.length, 4)
  assert.equal(histograms?.[1].histogram?.schema, undefined)
})

test('a native histogram with no observations and no zero bucket gets the no-op span', async () => {
  const registry = new Registry()
  new Histogram({ name: 'empty_seconds', help: 'Nothing yet.', registers: [registry] }).zero({})
  const empty: NativeFields = {
    schema: 0,
    zeroThreshold: 0,
    zeroCount: 0,
    positiveSpans: [],
    positiveDeltas: [],
    negativeSpans: [],
    negativeDeltas: [],
  }
  const render = async (fields: NativeFields) =>
    decodeFamilies(await renderProtobuf(registry, { nativeFor: () => fields }))[0].metric?.[0]
      .histogram
  const noop = await render(empty)
  assert.deepEqual(noop?.positive_span, [{ offset: 0, length: 0 }])
  assert.equal(noop?.schema, 0)
  assert.equal(noop?.sample_count, 0)
  // A zero threshold already marks it native: no span is added.
  const threshold = await render({ ...empty, zeroThreshold: 2 ** -128 })
  assert.equal(threshold?.positive_span, undefined)
})

test('the registry is untouched and concurrent renders in every format stay apart', async () => {
  const registry = everyKindRegistry()
  const expected = {
    protobuf: await renderProtobuf(registry),
    prometheus: await renderRegistry(registry, 'prometheus'),
    openmetrics: await renderRegistry(registry, 'openmetrics'),
  }
  const formats = Array.from(
    { length: 30 },
    (_, i) => (['protobuf', 'prometheus', 'openmetrics'] as const)[i % 3],
  )
  // renderRegistry renders protobuf with renderProtobuf.
  const renders = await Promise.all(formats.map((format) => renderRegistry(registry, format)))
  renders.forEach((render, i) => {
    assert.deepEqual(render, expected[formats[i]], `render ${i}`)
  })
  assert.equal(
    (registry.getSingleMetric('jobs_total') as unknown as { name: string }).name,
    'jobs_total',
  )
})

test('an empty registry is an empty answer; the Content-Type is the delimited MetricFamily one', async () => {
  assert.equal((await renderProtobuf(new Registry())).length, 0)
  assert.equal(
    PROTOBUF_CONTENT_TYPE,
    'application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited',
  )
})
