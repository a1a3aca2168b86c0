// Native histograms across a worker's processes, with real views on real unix sockets: what the
// old process observed reaches its successor's native histogram with the classic values, so a
// protobuf scrape after a reload holds one histogram whose native buckets and classic count
// describe the same observations (Prometheus refuses a sample where they disagree).
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, test } from 'node:test'
import { waitFor } from '../../harness/net'
import { decodeFamilies } from '../../harness/protobuf'
import { ClusterView } from '../../packages/plugin/src/gather/cluster-view'
import {
  createHttpMetrics,
  createWorkerRegistry,
} from '../../packages/plugin/src/plugin/http-metrics'
import { nativeCarry } from '../../packages/plugin/src/plugin/native-histograms'
import { createSocketPaths } from '../../packages/plugin/src/run-dir/socket-paths'

const base = mkdtempSync(join(tmpdir(), 'native-carry-'))
after(() => rmSync(base, { recursive: true, force: true }))

const LABELS = { method: 'GET', route: '/', status_code: '200' }

function nativeView(workerId: string, dir: string) {
  const registry = createWorkerRegistry(workerId, false)
  const http = createHttpMetrics(registry, [0.1, 1], { native: { schema: 3 } })
  const store = http.native
  assert.ok(store)
  const carry = nativeCarry('http_request_duration_seconds', store)
  const view = new ClusterView({
    registry,
    workerId,
    scope: 'test:1',
    gatherTimeoutMs: 1000,
    paths: createSocketPaths(join(base, dir)),
    native: carry,
  })
  const observe = (...seconds: number[]) => {
    for (const s of seconds) http.requestDuration.observe({ ...LABELS, worker_id: workerId }, s)
  }
  return { view, observe }
}

interface DecodedHistogram {
  sample_count?: number
  schema?: number
  zero_count?: number
  positive_span?: Array<{ offset?: number; length?: number }>
  positive_delta?: number[]
}

/** Worker `id`'s duration histogram in a protobuf gather. */
async function histogramOf(view: ClusterView, id: string): Promise<DecodedHistogram> {
  const { exposition: text } = await view.gather('protobuf')
  assert.ok(text instanceof Uint8Array)
  const family = decodeFamilies(text).find((f) => f.name === 'http_request_duration_seconds')
  const metric = family?.metric?.find((m) =>
    m.label?.some((l) => l.name === 'worker_id' && l.value === id),
  )
  assert.ok(metric?.histogram, `no histogram of worker ${id}`)
  return metric.histogram as DecodedHistogram
}

/** Bucket counts by index, from spans and deltas as metrics.proto defines them. */
function bucketsOf(h: DecodedHistogram): Map<number, number> {
  const buckets = new Map<number, number>()
  let index = 0
  let count = 0
  let d = 0
  for (const [i, span] of (h.positive_span ?? []).entries()) {
    index = i === 0 ? (span.offset ?? 0) : index + (span.offset ?? 0)
    for (let k = 0; k < (span.length ?? 0); k++) {
      count += h.positive_delta?.[d++] ?? 0
      if (count !== 0) buckets.set(index, count)
      index++
    }
  }
  return buckets
}

test('a reload hands the native histogram over with the classic one: one count, every bucket', async () => {
  const zero = nativeView('0', 'reload')
  const old = nativeView('1', 'reload')
  await zero.view.start()
  await old.view.start()
  const next = nativeView('1', 'reload')
  try {
    // 0.3 and 0.31 share a bucket at schema 3 (2^-1.75 < both ≤ 2^-1.625); 4 is 2^2 exactly.
    old.observe(0.3, 0.31, 4)
    await next.view.start() // waits: the old process still speaks for worker 1
    next.observe(4, 0.02)
    const before = await histogramOf(zero.view, '1')
    assert.equal(before.sample_count, 3)
    await old.view.close()
    await waitFor('the successor to speak', async () => next.view.speaksForWorker())
    const afterReload = await histogramOf(zero.view, '1')
    assert.equal(afterReload.sample_count, 5)
    assert.equal(afterReload.schema, 3)
    const buckets = bucketsOf(afterReload)
    // Indexes at schema 3: i with 2^((i-1)/8) < v ≤ 2^(i/8).
    assert.deepEqual(
      [...buckets.entries()].sort((a, b) => a[0] - b[0]),
      [
        [-45, 1], // 0.02: 2^(-46/8) ≈ 0.0186 < 0.02 ≤ 2^(-45/8) ≈ 0.0203
        [-13, 2], // 0.3, 0.31: 2^(-14/8) ≈ 0.297 < v ≤ 2^(-13/8) ≈ 0.324
        [16, 2], // 4 = 2^(16/8), twice
      ],
    )
    assert.equal(
      [...buckets.values()].reduce((a, b) => a + b, 0) + (afterReload.zero_count ?? 0),
      5,
    )
  } finally {
    await next.view.close()
    await zero.view.close()
  }
})

test('a worker that left for good is served with its native histogram until a successor takes it', async () => {
  const zero = nativeView('0', 'scale-down')
  const leaving = nativeView('1', 'scale-down')
  await zero.view.start()
  await leaving.view.start()
  try {
    leaving.observe(0.3, 0.31, 4)
    await leaving.view.close() // pm2 scale down: it stops gracefully, and no process follows
    const departed = await histogramOf(zero.view, '1')
    assert.equal(departed.sample_count, 3)
    assert.equal(departed.schema, 3, 'the native fields are sent')
    assert.deepEqual(
      [...bucketsOf(departed).entries()].sort((a, b) => a[0] - b[0]),
      [
        [-13, 2], // 0.3, 0.31: 2^(-14/8) ≈ 0.297 < v ≤ 2^(-13/8) ≈ 0.324
        [16, 1], // 4 = 2^(16/8)
      ],
    )
    // The answering worker's own histogram is untouched by the departed one's.
    zero.observe(4)
    const own = await histogramOf(zero.view, '0')
    assert.equal(own.sample_count, 1)
    assert.deepEqual([...bucketsOf(own).entries()], [[16, 1]])
  } finally {
    await zero.view.close()
  }
})

/** A process of worker `workerId` with native histograms off. */
function classicView(workerId: string, dir: string) {
  const registry = createWorkerRegistry(workerId, false)
  const http = createHttpMetrics(registry, [0.1, 1], {})
  const view = new ClusterView({
    registry,
    workerId,
    scope: 'test:1',
    gatherTimeoutMs: 1000,
    paths: createSocketPaths(join(base, dir)),
  })
  const observe = (labels: Record<string, string>, ...seconds: number[]) => {
    for (const s of seconds) http.requestDuration.observe({ ...labels, worker_id: workerId }, s)
  }
  return { view, observe }
}

test('a worker that left without native histograms is served by a sibling with them: a native histogram of every series, of its classic count', async () => {
  const zero = nativeView('0', 'left-c')
  const leaving = classicView('1', 'left-c')
  await zero.view.start()
  await leaving.view.start()
  try {
    leaving.observe(LABELS, 0.05, 0.3, 0.31, 4)
    leaving.observe({ ...LABELS, method: 'POST' }, 0.02)
    await leaving.view.close()
    const { exposition: text } = await zero.view.gather('protobuf')
    assert.ok(text instanceof Uint8Array)
    const family = decodeFamilies(text).find((f) => f.name === 'http_request_duration_seconds')
    const departed = (family?.metric ?? []).filter((m) =>
      m.label?.some((l) => l.name === 'worker_id' && l.value === '1'),
    )
    assert.equal(departed.length, 2)
    const counts = departed.map((m) => m.histogram?.sample_count).sort()
    assert.deepEqual(counts, [1, 4])
    for (const metric of departed) {
      const h = metric.histogram as DecodedHistogram
      assert.equal(h.schema, 3, 'the native fields are sent')
      const inBuckets = [...bucketsOf(h).values()].reduce((a, b) => a + b, h.zero_count ?? 0)
      assert.equal(inBuckets, h.sample_count)
    }
    const get = departed.find((m) => m.histogram?.sample_count === 4)?.histogram
    // Each classic bucket's observations in the native bucket of its bound; those above the
    // largest bound (4) in the bucket above it. Indexes at schema 3: 2^((i-1)/8) < v ≤ 2^(i/8).
    assert.deepEqual(
      [...bucketsOf(get as DecodedHistogram).entries()].sort((a, b) => a[0] - b[0]),
      [
        [-26, 1], // 0.05, in (0, 0.1]: 2^(-27/8) ≈ 0.0992 < 0.1 ≤ 2^(-26/8) ≈ 0.105
        [0, 2], // 0.3 and 0.31, in (0.1, 1]: 1 = 2^0
        [1, 1], // 4, above 1: 1 < v ≤ 2^(1/8)
      ],
    )
  } finally {
    await zero.view.close()
  }
})

test('a handover’s native histogram that holds fewer observations than its classic series is made from the classic buckets', () => {
  const registry = createWorkerRegistry('1', false)
  const http = createHttpMetrics(registry, [0.1, 1], { native: { schema: 3 } })
  assert.ok(http.native)
  const carry = nativeCarry('http_request_duration_seconds', http.native)
  const labels = { method: 'GET', route: '/', status_code: '200' }
  const bucket = (le: string, value: number) => ({
    metricName: 'http_request_duration_seconds_bucket',
    labels: { ...labels, le },
    value,
  })
  const families = [
    {
      name: 'http_request_duration_seconds',
      type: 'histogram' as const,
      values: [
        bucket('0.1', 0),
        bucket('1', 3),
        bucket('+Inf', 3),
        { metricName: 'http_request_duration_seconds_sum', labels, value: 1.5 },
        { metricName: 'http_request_duration_seconds_count', labels, value: 3 },
      ],
    },
  ]
  // Two of the three observations (a process whose native half started later).
  const state = {
    schema: 3,
    zeroThreshold: 0,
    zeroCount: 0,
    count: 2,
    sum: 1,
    positive: { '-8': 2 },
    negative: {},
  }
  const dropped = carry.add([{ name: 'http_request_duration_seconds', labels, state }], families)
  assert.equal(dropped, 1)
  const [carried] = carry.states()
  assert.equal(carried.state.count, 3)
  assert.equal(carried.state.sum, 1.5)
  assert.deepEqual(carried.state.positive, { '0': 3 }) // all three in the bucket of the bound 1
})
