// Every protobuf answer read by a decoder that shares nothing with ours: protoc's Python code
// for the official metrics.proto. It must find the families, series, values and exemplars the
// text formats give for the same registries, and the native-histogram fields as they were set.
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, test } from 'node:test'
import { Registry } from 'prom-client'
import { decodeFamilies, protobufSamples, samplesByKey, textSamples } from '../../harness/protobuf'
import { type NativeFields, renderRegistry } from '../../packages/plugin/src/exposition/exposition'
import { ClusterView } from '../../packages/plugin/src/gather/cluster-view'
import { createSocketPaths } from '../../packages/plugin/src/run-dir/socket-paths'
import { everyKindRegistry } from '../fixtures/every-kind-registry'
import { ProtobufDecoder } from './protobuf-decoder'

const decoder = new ProtobufDecoder()
after(() => decoder.close())
const base = mkdtempSync(join(tmpdir(), 'protobuf-decoder-'))
after(() => rmSync(base, { recursive: true, force: true }))

const pythonSamples = async (bytes: Uint8Array) =>
  samplesByKey((await decoder.decode(bytes)).flatMap((family) => family.samples))

test('a registry’s render: OpenMetrics’ samples and exemplars, the text format’s families', async () => {
  const registry = everyKindRegistry()
  const bytes = await renderRegistry(registry, 'protobuf')
  assert.deepEqual(
    await pythonSamples(bytes),
    samplesByKey(textSamples(await renderRegistry(registry, 'openmetrics'))),
  )
  const text = await renderRegistry(registry, 'prometheus')
  const families = await decoder.decode(bytes)
  assert.deepEqual(
    families.map((family) => [family.name, family.type]),
    [...text.matchAll(/^# TYPE (\S+) (\S+)$/gm)].map(([, name, type]) => [name, type]),
  )
  // The help as registered, unescaped.
  assert.equal(families[0].help, 'Jobs done.')
})

test('a merged cluster-view answer: every worker’s series, as the OpenMetrics gather has them', async () => {
  const ids = ['0', '1', '2']
  const views = ids.map(
    (workerId) =>
      new ClusterView({
        registry: everyKindRegistry(workerId),
        workerId,
        scope: 'test:1',
        gatherTimeoutMs: 1000,
        paths: createSocketPaths(join(base, 'view')),
      }),
  )
  for (const view of views) await view.start()
  try {
    const protobuf = await views[1].gather('protobuf')
    assert.deepEqual(protobuf.answered, ids)
    const fromPython = await pythonSamples(protobuf.exposition)
    // Our own decoder agrees, and so does the OpenMetrics gather (the gather's duration apart).
    assert.deepEqual(fromPython, samplesByKey(protobufSamples(decodeFamilies(protobuf.exposition))))
    const openMetrics = samplesByKey(textSamples((await views[1].gather('openmetrics')).exposition))
    const duration = 'cluster_metrics_gather_duration_seconds{}'
    assert.ok((fromPython.get(duration)?.value ?? 0) > 0)
    fromPython.delete(duration)
    openMetrics.delete(duration)
    assert.deepEqual(fromPython, openMetrics)
    // One family per name, holding each worker's metrics.
    const families = await decoder.decode(protobuf.exposition)
    const names = families.map((family) => family.name)
    assert.deepEqual(names, [...new Set(names)])
    assert.equal(families.find((f) => f.name === 'jobs_total')?.samples.length, 2 * ids.length)
  } finally {
    for (const view of views) await view.close()
  }
})

test('native-histogram fields decode as set: zigzag offsets and deltas, exemplars, no-op span', async () => {
  const registry = everyKindRegistry()
  const native: NativeFields = {
    schema: -2,
    zeroThreshold: 2 ** -128,
    zeroCount: 3,
    positiveSpans: [
      { offset: -5, length: 2 },
      { offset: 70_000, length: 1 },
    ],
    positiveDeltas: [2, -1, -(2 ** 40)],
    negativeSpans: [{ offset: 1, length: 1 }],
    negativeDeltas: [-7],
    exemplars: [{ labels: { trace_id: 'n' }, value: -1.5, timestampMs: 1_700_000_000_123 }],
  }
  const empty: NativeFields = {
    schema: 8,
    zeroThreshold: 0,
    zeroCount: 0,
    positiveSpans: [],
    positiveDeltas: [],
    negativeSpans: [],
    negativeDeltas: [],
  }
  const bytes = await renderRegistry(registry, 'protobuf', {
    nativeFor: (_name, labels) =>
      labels.route === '/' ? native : labels.route === '/never' ? empty : undefined,
  })
  const histogram = (await decoder.decode(bytes)).find((f) => f.name === 'job_duration_seconds')
  // protobuf's JSON form: 64-bit integers as strings, timestamps in RFC 3339.
  assert.deepEqual(histogram?.native, [
    {
      schema: -2,
      zero_threshold: 2 ** -128,
      zero_count: '3',
      positive_span: [
        { offset: -5, length: 2 },
        { offset: 70_000, length: 1 },
      ],
      positive_delta: ['2', '-1', String(-(2 ** 40))],
      negative_span: [{ offset: 1, length: 1 }],
      negative_delta: ['-7'],
      exemplars: [
        {
          label: [{ name: 'trace_id', value: 'n' }],
          value: -1.5,
          timestamp: '2023-11-14T22:13:20.123Z',
        },
      ],
    },
    {},
    {},
    {
      schema: 8,
      zero_threshold: 0,
      zero_count: '0',
      positive_span: [{ offset: 0, length: 0 }],
    },
  ])
  // The classic series are still there, and still the text format's.
  assert.deepEqual(
    await pythonSamples(bytes),
    samplesByKey(textSamples(await renderRegistry(registry, 'openmetrics'))),
  )
})

test('an empty answer is no family', async () => {
  assert.deepEqual(await decoder.decode(await renderRegistry(new Registry(), 'protobuf')), [])
})
