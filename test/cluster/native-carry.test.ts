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
import { ClusterView } from '../../packages/plugin/src/cluster/cluster-view'
import { createSocketPaths } from '../../packages/plugin/src/cluster/socket-paths'
import {
  createHttpMetrics,
  createWorkerRegistry,
} from '../../packages/plugin/src/plugin/http-metrics'
import { nativeCarry } from '../../packages/plugin/src/plugin/native-histograms'

const base = mkdtempSync(join(tmpdir(), 'native-carry-'))
after(() => rmSync(base, { recursive: true, force: true }))

const LABELS = { method: 'GET', route: '/', status_code: '200' }

function nativeView(workerId: string, dir: string) {
  const registry = createWorkerRegistry(workerId, false)
  const http = createHttpMetrics(registry, [0.1, 1], { native: { schema: 3 } })
  const store = http.native
  assert.ok(store)
  const carry = nativeCarry('http_request_duration_seconds', store, (name, labels) =>
    name === 'http_request_duration_seconds' ? store.snapshotFor(labels) : undefined,
  )
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
  const { text } = await view.gather('protobuf')
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
