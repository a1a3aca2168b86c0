// The merge step alone, with fixtures shaped like prom-client's getMetricsAsJSON() output.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import parsePrometheusTextFormat from 'parse-prometheus-text-format'
import { Counter, Histogram, Registry } from 'prom-client'
import {
  addGatherMetrics,
  decodeSnapshot,
  encodeSnapshot,
  type MetricsSnapshot,
  mergeSnapshots,
  snapshotOf,
  type WorkerSnapshot,
} from '../../src/cluster/merge'

const counter = (workerId: string, value: number): MetricsSnapshot[number] => ({
  name: 'http_requests_total',
  help: 'HTTP requests answered.',
  type: 'counter',
  aggregator: 'sum',
  values: [
    { value, labels: { method: 'GET', route: '/', status_code: '200', worker_id: workerId } },
  ],
})

const startTime = (workerId: string, value: number): MetricsSnapshot[number] => ({
  name: 'process_start_time_seconds',
  help: 'Start time of the process since unix epoch in seconds.',
  type: 'gauge',
  aggregator: 'omit',
  values: [{ value, labels: { worker_id: workerId } }],
})

const snapshot = (workerId: string, metrics: MetricsSnapshot, pid = 100): WorkerSnapshot => ({
  workerId,
  pid,
  metrics,
})

test('each worker keeps its own series under its worker_id', async () => {
  const merged = mergeSnapshots([
    snapshot('0', [counter('0', 5)]),
    snapshot('1', [counter('1', 7)]),
  ])
  const text = await merged.metrics()
  assert.equal(
    text,
    [
      '# HELP http_requests_total HTTP requests answered.',
      '# TYPE http_requests_total counter',
      'http_requests_total{method="GET",route="/",status_code="200",worker_id="0"} 5',
      'http_requests_total{method="GET",route="/",status_code="200",worker_id="1"} 7',
      '',
    ].join('\n'),
  )
})

test("metrics whose aggregator is 'omit' still appear per worker", async () => {
  const merged = mergeSnapshots([
    snapshot('0', [startTime('0', 1000)]),
    snapshot('1', [startTime('1', 2000)]),
  ])
  const text = await merged.metrics()
  assert.match(text, /^process_start_time_seconds\{worker_id="0"\} 1000$/m)
  assert.match(text, /^process_start_time_seconds\{worker_id="1"\} 2000$/m)
})

test('two snapshots of one worker id never sum: the first given wins', async () => {
  const merged = mergeSnapshots([
    snapshot('2', [counter('2', 40)], 201),
    snapshot('2', [counter('2', 3)], 202),
  ])
  const lines = (await merged.metrics())
    .split('\n')
    .filter((l) => l.startsWith('http_requests_total{'))
  assert.deepEqual(lines, [
    'http_requests_total{method="GET",route="/",status_code="200",worker_id="2"} 40',
  ])
})

test('histograms merge bucket by bucket per worker', async () => {
  const snapshots: WorkerSnapshot[] = []
  for (const workerId of ['0', '1']) {
    const registry = new Registry()
    registry.setDefaultLabels({ worker_id: workerId })
    const h = new Histogram({
      name: 'h_seconds',
      help: 'h',
      labelNames: ['route'],
      buckets: [0.1, 1],
      registers: [registry],
    })
    h.observe({ route: '/a' }, workerId === '0' ? 0.05 : 0.5)
    snapshots.push(snapshot(workerId, await snapshotOf(registry)))
  }
  const text = await mergeSnapshots(snapshots).metrics()
  assert.match(text, /^h_seconds_bucket\{le="0.1",route="\/a",worker_id="0"\} 1$/m)
  assert.match(text, /^h_seconds_bucket\{le="0.1",route="\/a",worker_id="1"\} 0$/m)
  assert.match(text, /^h_seconds_bucket\{le="1",route="\/a",worker_id="1"\} 1$/m)
  assert.match(text, /^h_seconds_count\{route="\/a",worker_id="1"\} 1$/m)
  assert.match(text, /^h_seconds_sum\{route="\/a",worker_id="0"\} 0.05$/m)
})

test('a label whose value is undefined survives the trip through JSON', async () => {
  const registry = new Registry()
  registry.setDefaultLabels({ worker_id: '4' })
  const c = new Counter({
    name: 'odd_total',
    help: 'odd',
    labelNames: ['kind'],
    registers: [registry],
  })
  c.inc({ kind: undefined as unknown as string })
  c.inc({ kind: 'x' })
  const local = await registry.metrics()
  const decoded = decodeSnapshot(encodeSnapshot(snapshot('4', await snapshotOf(registry))))
  const merged = await mergeSnapshots([decoded]).metrics()
  const series = (text: string) => text.split('\n').filter((l) => l.startsWith('odd_total{'))
  assert.equal(series(merged).length, 2)
  assert.deepEqual(series(merged), series(local))
})

test('a malformed snapshot is refused', () => {
  assert.throws(() => decodeSnapshot('{"nope":1}'), /malformed worker snapshot/)
  assert.throws(() => decodeSnapshot('not json'), SyntaxError)
})

test('gather-health metrics name every expected worker and which answered', async () => {
  const merged = mergeSnapshots([snapshot('0', [counter('0', 1)])])
  addGatherMetrics(merged, {
    expected: ['0', '1', '2'],
    answered: ['0', '2'],
    durationSeconds: 0.012,
    timeoutSeconds: 1,
  })
  const text = await merged.metrics()
  for (const line of [
    'cluster_metrics_workers_expected 3',
    'cluster_metrics_workers_answered 2',
    'cluster_metrics_gather_duration_seconds 0.012',
    'cluster_metrics_gather_timeout_seconds 1',
    'cluster_metrics_worker_up{worker_id="0"} 1',
    'cluster_metrics_worker_up{worker_id="1"} 0',
    'cluster_metrics_worker_up{worker_id="2"} 1',
  ]) {
    assert.ok(text.split('\n').includes(line), `missing: ${line}`)
  }
})

test("one worker's merged output holds exactly what its own registry renders", async () => {
  const registry = new Registry()
  registry.setDefaultLabels({ worker_id: '3' })
  const h = new Histogram({
    name: 'req_seconds',
    help: 'r',
    labelNames: ['route', 'code'],
    buckets: [0.1, 1],
    registers: [registry],
  })
  const c = new Counter({
    name: 'req_total',
    help: 'c',
    labelNames: ['route', 'code'],
    registers: [registry],
  })
  for (const [route, code, seconds] of [
    ['/a', '200', 0.05],
    ['/a', '500', 0.5],
    ['/b', '200', 2],
    ['/a', '200', 0.2],
  ] as const) {
    h.observe({ route, code }, seconds)
    c.inc({ route, code })
  }
  const own = await registry.metrics()
  const merged = await mergeSnapshots([
    decodeSnapshot(encodeSnapshot(snapshot('3', await snapshotOf(registry)))),
  ]).metrics()
  // Same families, series, labels and values (label order within a line may differ).
  assert.deepEqual(parsePrometheusTextFormat(merged), parsePrometheusTextFormat(own))
  assert.equal(merged.split('\n').length, own.split('\n').length)
})
