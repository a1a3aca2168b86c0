// The cluster view's transport in one process: workers' views over real unix sockets in a
// private directory. Who is expected, who answered, what a scrape holds, in both formats.
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import {
  chmodSync,
  chownSync,
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readlinkSync,
  rmSync,
  symlinkSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, test } from 'node:test'
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry, Summary } from 'prom-client'
import { duplicateSeries } from '../../harness/exposition'
import { waitFor } from '../../harness/net'
import {
  decodeFamilies,
  protobufSamples,
  type Sample,
  samplesByKey,
  textSamples,
} from '../../harness/protobuf'
import { ClusterView, type GatherResult } from '../../packages/plugin/src/gather/cluster-view'
import {
  createHttpMetrics,
  createWorkerRegistry,
} from '../../packages/plugin/src/plugin/http-metrics'
import { createSocketPaths, socketDirFor } from '../../packages/plugin/src/run-dir/socket-paths'
import { MAX_HANDOVER_AGE_MS, writeHandover } from '../../packages/plugin/src/succession/handover'

const base = mkdtempSync(join(tmpdir(), 'cluster-view-'))
after(() => rmSync(base, { recursive: true, force: true }))

function view(
  workerId: string,
  subdir: string,
  reuseMs = 0,
  { renderDelayMs = 0, gatherTimeoutMs = 500 } = {},
) {
  const registry = createWorkerRegistry(workerId, false)
  const http = createHttpMetrics(registry)
  http.requestsTotal.inc(
    { method: 'GET', route: '/', status_code: '200', worker_id: workerId },
    Number(workerId) + 1,
  )
  // Counts how often this worker's registry is collected (rendered).
  let renders = 0
  new Gauge({
    name: 'renders',
    help: 'renders of this registry',
    registers: [registry],
    async collect() {
      renders++
      this.set(renders)
      if (renderDelayMs > 0) await new Promise((resolve) => setTimeout(resolve, renderDelayMs))
    },
  })
  const missing: string[][] = []
  const clusterView = new ClusterView({
    registry,
    workerId,
    scope: 'test:1',
    gatherTimeoutMs,
    reuseMs,
    paths: createSocketPaths(join(base, subdir), workerId),
    onMissing: (ids) => missing.push(ids),
  })
  return { clusterView, http, missing, renders: () => renders }
}

/**
 * A worker whose registry holds every kind of family, with exemplars, and nothing that changes
 * from one render to the next: two gathers in two formats must hold the same values.
 */
function richView(workerId: string, subdir: string) {
  const registry = createWorkerRegistry(workerId, false)
  const http = createHttpMetrics(registry, [0.01, 0.1, 1], { exemplars: true })
  const labels = { method: 'GET', route: '/', status_code: '200', worker_id: workerId }
  const trace: Record<string, string> = { trace_id: `${workerId}`.padStart(32, 'a') }
  http.requestsTotal.inc({ labels, value: Number(workerId) + 1, exemplarLabels: trace })
  http.requestDuration.observe({ labels, value: 0.05, exemplarLabels: trace })
  http.requestDuration.observe({ labels, value: 3 })
  const jobs = new Counter({
    name: 'jobs_total',
    help: 'Jobs.',
    labelNames: ['kind'],
    registers: [registry],
  })
  jobs.inc({ kind: `k"${workerId}\\` }, 2.5)
  new Gauge({ name: 'queue_depth', help: 'Waiting.', registers: [registry] }).set(
    -1.5 * Number(workerId) - 1,
  )
  const size = new Summary({ name: 'payload_bytes', help: 'Sizes.', registers: [registry] })
  for (const bytes of [1, 10, 100 * (Number(workerId) + 1)]) size.observe(bytes)
  // Only some workers have this family.
  if (workerId !== '1') {
    new Histogram({
      name: 'rare_seconds',
      help: 'Rare.',
      buckets: [1],
      registers: [registry],
    }).observe(0.5)
  }
  const clusterView = new ClusterView({
    registry,
    workerId,
    scope: 'test:1',
    gatherTimeoutMs: 500,
    paths: createSocketPaths(join(base, subdir), workerId),
  })
  return { clusterView, http }
}

/** The gather's own duration differs from one gather to the next; everything else must not. */
const PER_GATHER = 'cluster_metrics_gather_duration_seconds'

/** A gather's samples by series, the gather duration checked and set aside. */
function gatheredSamples(result: GatherResult): Map<string, Sample> {
  const samples =
    typeof result.exposition === 'string'
      ? textSamples(result.exposition)
      : protobufSamples(decodeFamilies(result.exposition))
  const byKey = samplesByKey(samples)
  const duration = byKey.get(`${PER_GATHER}{}`)
  assert.ok(duration !== undefined && duration.value > 0, PER_GATHER)
  byKey.delete(`${PER_GATHER}{}`)
  return byKey
}

/** Labels as sampleKey writes them, sorted by name. */
const labelList = (labels: Record<string, string>) =>
  Object.keys(labels)
    .sort()
    .map((name) => `${name}=${JSON.stringify(labels[name])}`)
    .join(',')

const requestsLine = (id: string, n: number) =>
  new RegExp(
    `^http_requests_total\\{method="GET",route="/",status_code="200",worker_id="${id}"\\} ${n}$`,
    'm',
  )

test('a worker gathers its siblings over their sockets and itself in process', async () => {
  const workers = ['0', '1', '2'].map((id) => view(id, 'three'))
  for (const w of workers) await w.clusterView.start()
  try {
    for (const gatherer of workers) {
      const result = await gatherer.clusterView.gather('prometheus')
      assert.deepEqual(result.answered, ['0', '1', '2'])
      for (const id of ['0', '1', '2'])
        assert.match(result.exposition, requestsLine(id, Number(id) + 1))
      assert.match(result.exposition, /^cluster_metrics_workers_answered 3$/m)
      // One header per family, whoever's samples follow it.
      assert.equal(result.exposition.match(/^# TYPE http_requests_total counter$/gm)?.length, 1)
    }
    const om = await workers[0].clusterView.gather('openmetrics')
    assert.match(om.exposition, /^# TYPE http_requests counter$/m)
    assert.match(om.exposition, /^http_requests_total\{.*worker_id="2"\} 3$/m)
    assert.equal(om.exposition.match(/^# EOF$/gm)?.length, 1)
    assert.ok(om.exposition.endsWith('# EOF\n'))
  } finally {
    for (const w of workers) await w.clusterView.close()
  }
})

test('a protobuf gather holds every series and value of the text and OpenMetrics gathers', async () => {
  const workers = ['0', '1', '2', '3'].map((id) => richView(id, 'protobuf'))
  for (const w of workers) await w.clusterView.start()
  try {
    for (const gatherer of [workers[0], workers[2]]) {
      const protobuf = await gatherer.clusterView.gather('protobuf')
      assert.ok(protobuf.exposition instanceof Uint8Array)
      assert.deepEqual(protobuf.answered, ['0', '1', '2', '3'])
      const fromProtobuf = gatheredSamples(protobuf)
      // OpenMetrics has the exemplars too.
      assert.deepEqual(
        fromProtobuf,
        gatheredSamples(await gatherer.clusterView.gather('openmetrics')),
      )
      assert.equal([...fromProtobuf.values()].filter((s) => s.exemplar).length, 8)
      for (const sample of fromProtobuf.values()) delete sample.exemplar
      assert.deepEqual(
        fromProtobuf,
        gatheredSamples(await gatherer.clusterView.gather('prometheus')),
      )
      // One message per family, whoever's metrics it holds, in first-seen order.
      const families = decodeFamilies(protobuf.exposition)
      const names = families.map((family) => family.name)
      assert.deepEqual(names, [...new Set(names)])
      assert.equal(
        families.find((family) => family.name === 'http_requests_total')?.metric?.length,
        4,
      )
      assert.equal(families.find((family) => family.name === 'rare_seconds')?.metric?.length, 3)
      assert.equal(fromProtobuf.get('cluster_metrics_workers_answered{}')?.value, 4)
    }
  } finally {
    for (const w of workers) await w.clusterView.close()
  }
})

/**
 * A worker whose registry is the app's own (no `worker_id` default label), with the request
 * metrics, process metrics, a counter of the app's own, and a gauge that names a worker itself.
 */
function ownRegistryView(workerId: string, subdir: string) {
  const registry = new Registry()
  collectDefaultMetrics({ register: registry })
  createHttpMetrics(registry).requestsTotal.inc(
    { method: 'GET', route: '/', status_code: '200', worker_id: workerId },
    1,
  )
  new Counter({ name: 'jobs_total', help: 'Jobs.', registers: [registry] }).inc(
    Number(workerId) + 1,
  )
  new Histogram({
    name: 'job_seconds',
    help: 'Job time.',
    labelNames: ['queue'],
    buckets: [1],
    registers: [registry],
  }).observe({ queue: 'mail' }, 0.5)
  new Gauge({
    name: 'queue_depth',
    help: 'Waiting jobs, labelled by the app itself.',
    labelNames: ['worker_id'],
    registers: [registry],
  }).set({ worker_id: workerId }, Number(workerId) + 10)
  const clusterView = new ClusterView({
    registry,
    workerId,
    scope: 'test:1',
    gatherTimeoutMs: 500,
    paths: createSocketPaths(join(base, subdir)),
  })
  return { clusterView }
}

test('with registries of the app’s own, every series a worker contributes carries its worker_id, once', async () => {
  const workers = ['0', '1'].map((id) => ownRegistryView(id, 'own-registry'))
  for (const w of workers) await w.clusterView.start()
  try {
    for (const format of ['prometheus', 'openmetrics', 'protobuf'] as const) {
      const result = await workers[0].clusterView.gather(format)
      assert.deepEqual(result.answered, ['0', '1'], format)
      if (typeof result.exposition === 'string') {
        assert.doesNotMatch(result.exposition, /worker_id=.*worker_id=/, format)
      }
      // Throws on a series seen twice.
      const samples = gatheredSamples(result)
      for (const [key, sample] of samples) {
        if (sample.name.startsWith('cluster_metrics_')) continue
        assert.ok(sample.labels.worker_id !== undefined, `${format}: ${key} has no worker_id`)
      }
      assert.equal(samples.get('jobs_total{worker_id="0"}')?.value, 1, format)
      assert.equal(samples.get('jobs_total{worker_id="1"}')?.value, 2, format)
      assert.equal(samples.get('job_seconds_count{queue="mail",worker_id="1"}')?.value, 1, format)
      for (const id of ['0', '1']) {
        assert.ok(samples.has(`process_cpu_user_seconds_total{worker_id="${id}"}`), format)
      }
      // A series that has the label already keeps it, not doubled.
      assert.equal(samples.get('queue_depth{worker_id="1"}')?.value, 11, format)
    }
  } finally {
    for (const w of workers) await w.clusterView.close()
  }
})

test('a family one worker types differently is left out of its part, counted in every scrape and logged once', async () => {
  const warnings: Array<{ obj: object; msg: string }> = []
  const workers = ['0', '1'].map((id) => {
    const registry = createWorkerRegistry(id, false)
    // As in a rolling deploy that turned a counter into a gauge: worker 1 runs the new code.
    if (id === '0') new Counter({ name: 'jobs', help: 'Jobs.', registers: [registry] }).inc(5)
    else new Gauge({ name: 'jobs', help: 'Jobs.', registers: [registry] }).set(7)
    new Gauge({ name: 'queue_depth', help: 'Waiting.', registers: [registry] }).set(Number(id))
    return new ClusterView({
      registry,
      workerId: id,
      scope: 'test:1',
      gatherTimeoutMs: 500,
      paths: createSocketPaths(join(base, 'typed-apart')),
      log: { info: () => {}, warn: (obj, msg) => warnings.push({ obj, msg }) },
    })
  })
  for (const w of workers) await w.start()
  try {
    for (const format of ['prometheus', 'protobuf', 'openmetrics'] as const) {
      const samples = gatheredSamples(await workers[0].gather(format))
      assert.equal(samples.get('cluster_metrics_families_dropped{}')?.value, 1, format)
      assert.equal(samples.has('jobs{worker_id="1"}'), false, format)
      assert.equal(samples.get('queue_depth{worker_id="1"}')?.value, 1, format)
    }
    const dropped = warnings.filter((w) => w.msg.includes('another worker types it differently'))
    assert.deepEqual(
      dropped.map((w) => w.obj),
      [{ family: 'jobs', source_worker_id: '1', type: 'gauge', family_type: 'counter' }],
    )
  } finally {
    for (const w of workers) await w.close()
  }
})

test('the expected workers are those with a link: a graceful stop leaves the set', async () => {
  const zero = view('0', 'membership')
  const one = view('1', 'membership')
  const two = view('2', 'membership')
  await zero.clusterView.start()
  await one.clusterView.start()
  await two.clusterView.start()
  try {
    assert.deepEqual((await zero.clusterView.gather()).expected, ['0', '1', '2'])
    await two.clusterView.close() // pm2 scale down: the process stops gracefully
    const result = await zero.clusterView.gather()
    assert.deepEqual(result.expected, ['0', '1'])
    assert.deepEqual(result.answered, ['0', '1'])
    assert.doesNotMatch(result.exposition, /^cluster_metrics_worker_up\{worker_id="2"\}/m)
  } finally {
    await zero.clusterView.close()
    await one.clusterView.close()
  }
})

test('a worker that left serves its last counts through the others until a process of it takes them', async () => {
  const zero = view('0', 'left')
  const one = view('1', 'left')
  await zero.clusterView.start()
  await one.clusterView.start()
  const labels = { method: 'GET', route: '/', status_code: '200', worker_id: '1' }
  try {
    await zero.clusterView.gather()
    // Counted after the last scrape that reached worker 1, then a scale down stops it.
    one.http.requestsTotal.inc(labels, 5)
    one.http.requestDuration.observe(labels, 0.05)
    await one.clusterView.close()
    for (const format of ['prometheus', 'openmetrics'] as const) {
      const result = await zero.clusterView.gather(format)
      assert.deepEqual(result.expected, ['0'])
      assert.deepEqual(result.answered, ['0'])
      assert.match(
        result.exposition,
        /^http_requests_total\{method="GET",route="\/",status_code="200",worker_id="1"\} 7$/m,
      )
      assert.match(
        result.exposition,
        /^http_request_duration_seconds_count\{method="GET",route="\/",status_code="200",worker_id="1"\} 1$/m,
      )
      assert.doesNotMatch(result.exposition, /^cluster_metrics_worker_up\{worker_id="1"\}/m)
      assert.equal(
        result.exposition.match(/^# TYPE http_request_duration_seconds histogram$/gm)?.length,
        1,
      )
    }
    // In protobuf too: the departed worker's part is rendered as protobuf and merged.
    const protobuf = gatheredSamples(await zero.clusterView.gather('protobuf'))
    assert.equal(protobuf.get(`http_requests_total{${labelList(labels)}}`)?.value, 7)
    assert.equal(
      protobuf.get(`http_request_duration_seconds_count{${labelList(labels)}}`)?.value,
      1,
    )
    const text = gatheredSamples(await zero.clusterView.gather('prometheus'))
    protobuf.delete('renders{worker_id="0"}')
    text.delete('renders{worker_id="0"}')
    assert.deepEqual(protobuf, text)
    // Worker 1 comes back (scale up): its new process takes the handover and continues from 7.
    const back = view('1', 'left')
    await back.clusterView.start()
    try {
      assert.equal(existsSync(join(base, 'left', '1.handover.json')), false)
      const result = await zero.clusterView.gather()
      assert.deepEqual(result.answered, ['0', '1'])
      assert.deepEqual(duplicateSeries(result.exposition), [])
      assert.match(result.exposition, requestsLine('1', 9))
    } finally {
      await back.clusterView.close()
    }
  } finally {
    await zero.clusterView.close()
  }
})

test('a handover of another app, an old one or a FIFO is not served as a worker that left', async () => {
  const dir = join(base, 'not-served')
  const zero = view('0', 'not-served')
  await zero.clusterView.start()
  const families = (workerId: string) => [
    {
      name: 'http_requests_total',
      type: 'counter' as const,
      values: [
        {
          labels: { method: 'GET', route: '/', status_code: '200', worker_id: workerId },
          value: 40,
        },
      ],
    },
  ]
  writeHandover(join(dir, '5.handover.json'), {
    scope: 'other:2',
    workerId: '5',
    pid: 1,
    instance: '1-0123abcd',
    families: families('5'),
  })
  writeHandover(join(dir, '6.handover.json'), {
    scope: 'test:1',
    workerId: '6',
    pid: 1,
    instance: '1-0123abcd',
    writtenAt: Date.now() - MAX_HANDOVER_AGE_MS - 1000,
    families: families('6'),
  })
  execFileSync('mkfifo', [join(dir, '7.handover.json')])
  writeHandover(join(dir, '8.handover.json'), {
    scope: 'test:1',
    workerId: '8',
    pid: 1,
    instance: '1-0123abcd',
    families: families('8'),
  })
  try {
    const result = await zero.clusterView.gather()
    assert.doesNotMatch(result.exposition, /worker_id="[567]"/)
    // The one that is fit is served, which shows the others were looked at.
    assert.match(
      result.exposition,
      /^http_requests_total\{method="GET",route="\/",status_code="200",worker_id="8"\} 40$/m,
    )
    // Left where they are: refusing them at a start is a successor's job.
    for (const id of ['5', '6', '7', '8']) assert.ok(existsSync(join(dir, `${id}.handover.json`)))
  } finally {
    await zero.clusterView.close()
  }
})

test('a crashed worker stays expected, reported down, and the scrape still answers', async () => {
  const zero = view('0', 'crashed')
  await zero.clusterView.start()
  // What kill -9 leaves: a link to a socket nobody listens on.
  symlinkSync('3.999999.sock', join(base, 'crashed', '3.sock'))
  try {
    const result = await zero.clusterView.gather()
    assert.deepEqual(result.expected, ['0', '3'])
    assert.deepEqual(result.answered, ['0'])
    assert.deepEqual(zero.missing, [['3']])
    assert.match(result.exposition, /^cluster_metrics_worker_up\{worker_id="3"\} 0$/m)
    assert.match(result.exposition, /^cluster_metrics_worker_up\{worker_id="0"\} 1$/m)
  } finally {
    await zero.clusterView.close()
  }
})

test('a worker that began a stop and died is no longer expected, and its link is removed', async () => {
  const zero = view('0', 'departed')
  const dir = join(base, 'departed')
  await zero.clusterView.start()
  // What a stop killed at PM2's kill_timeout leaves: the link, and the mark of a begun stop.
  symlinkSync('5.999999-0badc0de.sock', join(dir, '5.sock'))
  writeFileSync(join(dir, '5.999999-0badc0de.sock.stopping'), '')
  // A crash without the mark, for contrast: still expected, down.
  symlinkSync('6.999998-0badc0de.sock', join(dir, '6.sock'))
  try {
    const result = await zero.clusterView.gather()
    assert.deepEqual(result.expected, ['0', '5', '6'])
    assert.match(result.exposition, /^cluster_metrics_workers_expected 2$/m)
    assert.doesNotMatch(result.exposition, /worker_id="5"/)
    assert.match(result.exposition, /^cluster_metrics_worker_up\{worker_id="6"\} 0$/m)
    // lstat: the link itself, not the socket it names (which never existed).
    await waitFor(
      'the departed link to be removed',
      async () => lstatSync(join(dir, '5.sock'), { throwIfNoEntry: false }) === undefined,
    )
    assert.equal(existsSync(join(dir, '5.999999-0badc0de.sock.stopping')), false)
    assert.equal(lstatSync(join(dir, '6.sock')).isSymbolicLink(), true)
  } finally {
    await zero.clusterView.close()
  }
})

test('a directory that stops being private is not trusted until it is private again', async () => {
  const zero = view('0', 'opened')
  const one = view('1', 'opened')
  const dir = join(base, 'opened')
  await zero.clusterView.start()
  await one.clusterView.start()
  try {
    assert.deepEqual((await zero.clusterView.gather()).answered, ['0', '1'])
    chmodSync(dir, 0o777)
    // A socket anyone could have planted, under a name no worker-id link may have.
    writeFileSync(join(dir, 'evil.sock'), '')
    const untrusted = await waitFor('the worker to answer alone', async () => {
      const result = await zero.clusterView.gather()
      return result.expected.length === 1 ? result : undefined
    })
    assert.deepEqual(untrusted.answered, ['0'])
    assert.match(untrusted.exposition, /^cluster_metrics_socket_dir_private 0$/m)
    assert.match(
      untrusted.exposition,
      /^cluster_metrics_socket_dir_problem\{reason="shared_mode"\} 1$/m,
    )
    chmodSync(dir, 0o700)
    const trusted = await waitFor('the worker to trust the directory again', async () => {
      const result = await zero.clusterView.gather()
      return result.expected.length === 2 ? result : undefined
    })
    // evil.sock is a file, not a link to a worker's socket: never a member.
    assert.deepEqual(trusted.expected, ['0', '1'])
    assert.match(trusted.exposition, /^cluster_metrics_socket_dir_private 1$/m)
  } finally {
    await zero.clusterView.close()
    await one.clusterView.close()
  }
})

test('a worker id that cannot name a file is refused', () => {
  for (const id of ['../x', 'a.b', '', 'x'.repeat(33)]) {
    assert.throws(() => view(id, 'ids'), /worker id .* must be 1 to 32 letters, digits/)
  }
})

test('an answer from another worker than the link names is dropped and counted missing', async () => {
  const zero = view('0', 'impostor')
  await zero.clusterView.start()
  const dir = join(base, 'impostor')
  const impostor = createServer({ allowHalfOpen: true }, (socket) => {
    socket.once('data', () =>
      socket.end(`${JSON.stringify({ workerId: '9', pid: 1 })}\ninjected_total 1\n`),
    )
  })
  await new Promise<void>((resolve) => impostor.listen(join(dir, '4.1.sock'), resolve))
  symlinkSync('4.1.sock', join(dir, '4.sock'))
  try {
    const result = await zero.clusterView.gather()
    assert.deepEqual(result.answered, ['0'])
    assert.deepEqual(zero.missing, [['4']])
    assert.doesNotMatch(result.exposition, /injected_total/)
  } finally {
    await new Promise((resolve) => impostor.close(resolve))
    await zero.clusterView.close()
  }
})

test('scrapes that arrive during a gather share it: each sibling renders once', async () => {
  const zero = view('0', 'coalesce')
  const one = view('1', 'coalesce')
  await zero.clusterView.start()
  await one.clusterView.start()
  try {
    const before = one.renders()
    const results = await Promise.all(Array.from({ length: 10 }, () => zero.clusterView.gather()))
    assert.equal(one.renders() - before, 1)
    for (const result of results) assert.equal(result, results[0])
    // Another format is another gather.
    await Promise.all([
      zero.clusterView.gather('prometheus'),
      zero.clusterView.gather('openmetrics'),
      zero.clusterView.gather('protobuf'),
    ])
    assert.equal(one.renders() - before, 4)
  } finally {
    await zero.clusterView.close()
    await one.clusterView.close()
  }
})

test('a worker’s own part and its siblings’ requests for it share one render', async () => {
  const zero = view('0', 'own-shared')
  const one = view('1', 'own-shared', 0, { renderDelayMs: 50 })
  await zero.clusterView.start()
  await one.clusterView.start()
  try {
    const before = one.renders()
    const [byZero, byOne] = await Promise.all([zero.clusterView.gather(), one.clusterView.gather()])
    assert.equal(one.renders() - before, 1)
    for (const result of [byZero, byOne]) assert.deepEqual(result.answered, ['0', '1'])
  } finally {
    await zero.clusterView.close()
    await one.clusterView.close()
  }
})

test('with a reuse window, a scrape right after a gather gets that gather', async () => {
  const zero = view('0', 'reuse', 60_000)
  const one = view('1', 'reuse')
  await zero.clusterView.start()
  await one.clusterView.start()
  try {
    const first = await zero.clusterView.gather()
    const renders = one.renders()
    assert.equal(await zero.clusterView.gather(), first)
    assert.equal(one.renders(), renders)
    // Without a window every gather is new.
    const again = await one.clusterView.gather()
    assert.notEqual(await one.clusterView.gather(), again)
  } finally {
    await zero.clusterView.close()
    await one.clusterView.close()
  }
})

const clampedLine = (id: string, n: number) =>
  new RegExp(`^cluster_metrics_scrape_timeout_clamped_total\\{worker_id="${id}"\\} ${n}$`, 'm')

test('a 1 ms scrape timeout header cannot cut the gather short, nor the scrape beside it', async () => {
  // Siblings that take a few ms to render: a 1 ms deadline would cut every one of them off.
  const workers = ['0', '1', '2', '3', '4'].map((id) =>
    view(id, 'short-deadline', 0, { renderDelayMs: id === '0' ? 0 : 10 }),
  )
  for (const w of workers) await w.clusterView.start()
  const zero = workers[0].clusterView
  try {
    const [short, normal] = await Promise.all([
      zero.gather('prometheus', '0.001'),
      zero.gather('prometheus'),
    ])
    for (const result of [short, normal]) {
      assert.deepEqual(result.answered, ['0', '1', '2', '3', '4'])
      assert.doesNotMatch(result.exposition, /^cluster_metrics_worker_up\{.*\} 0$/m)
    }
    for (const w of workers) assert.deepEqual(w.missing, [])
    // Each worker counts the clamped scrapes it answered, in its own part.
    const after = await zero.gather('prometheus')
    assert.match(after.exposition, clampedLine('0', 1))
    for (const id of ['1', '2', '3', '4']) assert.match(after.exposition, clampedLine(id, 0))
    const om = await zero.gather('openmetrics', '0.001')
    assert.match(om.exposition, /^# TYPE cluster_metrics_scrape_timeout_clamped counter$/m)
    assert.match(om.exposition, clampedLine('0', 2))
    assert.equal(om.exposition.match(/^# EOF$/gm)?.length, 1)
  } finally {
    for (const w of workers) await w.clusterView.close()
  }
})

test('a gather that missed a worker under a shorter deadline is not handed to a longer scrape', async () => {
  const zero = view('0', 'longer-deadline', 60_000, { gatherTimeoutMs: 2000 })
  // Slower than the floor of a clamped header, well inside the configured timeout.
  const one = view('1', 'longer-deadline', 0, { renderDelayMs: 600, gatherTimeoutMs: 2000 })
  await zero.clusterView.start()
  await one.clusterView.start()
  try {
    // In flight: the longer scrape does not take the shorter gather's partial answer.
    const [short, normal] = await Promise.all([
      zero.clusterView.gather('prometheus', '0.001'),
      zero.clusterView.gather('prometheus', '10'),
    ])
    assert.deepEqual(short.answered, ['0'])
    assert.deepEqual(normal.answered, ['0', '1'])
    // Reused: a partial answer under a shorter deadline is not reused for a longer scrape...
    const shortAgain = await zero.clusterView.gather('protobuf', '0.001')
    assert.deepEqual(shortAgain.answered, ['0'])
    const longAgain = await zero.clusterView.gather('protobuf')
    assert.deepEqual(longAgain.answered, ['0', '1'])
    // ...while a whole one answers any scrape within the window.
    assert.equal(await zero.clusterView.gather('protobuf', '0.001'), longAgain)
  } finally {
    await zero.clusterView.close()
    await one.clusterView.close()
  }
})

test('a deleted directory, socket or link is recreated while the workers run', async () => {
  const zero = view('0', 'healing')
  const one = view('1', 'healing')
  await zero.clusterView.start()
  await one.clusterView.start()
  const dir = join(base, 'healing')
  try {
    rmSync(dir, { recursive: true, force: true })
    await waitFor('both workers back in the gather', async () => {
      const result = await zero.clusterView.gather()
      return result.answered.length === 2
    })
    unlinkSync(join(dir, '1.sock'))
    unlinkSync(readlinkSync(join(dir, '0.sock')).replace(/^/, `${dir}/`))
    await waitFor('the link and the socket back', async () => {
      const result = await one.clusterView.gather()
      return result.answered.length === 2 && result.expected.length === 2
    })
  } finally {
    await zero.clusterView.close()
    await one.clusterView.close()
  }
})

test('a link one worker restores is seen by another worker’s gather', async () => {
  const a = view('0', 'healed-elsewhere')
  const b = view('1', 'healed-elsewhere')
  await a.clusterView.start()
  await b.clusterView.start()
  const link = createSocketPaths(join(base, 'healed-elsewhere'), '0').linkFor('0')
  try {
    assert.deepEqual((await b.clusterView.gather()).answered, ['0', '1'])
    unlinkSync(link)
    const during = await b.clusterView.gather()
    // A link only comes back: if it is still missing after that gather, it was missing when
    // worker 1 read the directory, and worker 1 expected worker 0 no longer. (Worker 0's heal,
    // once a second, may have put it back already.)
    if (!existsSync(link)) assert.deepEqual(during.expected, ['1'])
    const healed = await waitFor('worker 0 in worker 1’s gather again', async () => {
      const result = await b.clusterView.gather()
      return result.answered.includes('0') ? result : undefined
    })
    assert.ok(lstatSync(link).isSymbolicLink(), 'worker 0 put its link back')
    assert.deepEqual(healed.expected, ['0', '1'])
    assert.deepEqual(healed.answered, ['0', '1'])
    assert.match(healed.exposition, /^cluster_metrics_worker_up\{worker_id="0"\} 1$/m)
    assert.match(healed.exposition, requestsLine('0', 1))
  } finally {
    await a.clusterView.close()
    await b.clusterView.close()
  }
})

function assertRefused(path: string, reason: RegExp): void {
  assert.throws(
    () => createSocketPaths(path, '0'),
    (err: Error) => {
      assert.match(err.message, reason)
      assert.ok(err.message.includes(path), err.message)
      return true
    },
  )
}

test('a socket directory that is not private is refused, naming the path and the reason', () => {
  const cases: Array<[string, (path: string) => void, RegExp]> = [
    [
      'group-writable',
      (path) => {
        mkdirSync(path)
        chmodSync(path, 0o770)
      },
      /mode is 0770/,
    ],
    [
      'world-writable',
      (path) => {
        mkdirSync(path)
        chmodSync(path, 0o777)
      },
      /mode is 0777/,
    ],
    [
      'a-link',
      (path) => {
        mkdirSync(`${path}-target`, { mode: 0o700 })
        symlinkSync(`${path}-target`, path)
      },
      /symbolic link/,
    ],
  ]
  for (const [name, make, reason] of cases) {
    const path = join(base, name)
    make(path)
    assertRefused(path, reason)
  }
})

test('a socket directory another user owns is refused, naming the path and the owner', {
  skip:
    process.getuid?.() === 0
      ? false
      : 'giving a directory to another user (chown) needs root; CI runs as root',
}, () => {
  const path = join(base, 'others-own')
  mkdirSync(path, { mode: 0o700 })
  chownSync(path, 65534, 65534)
  assertRefused(path, /owned by uid 65534/)
})

test('under the shared temporary directory, the service’s own parent is checked too', () => {
  // Short, as a real TMPDIR is: a socket's path must fit in sun_path.
  const shared = mkdtempSync(join(tmpdir(), 'tmp-'))
  chmodSync(shared, 0o1777)
  const previous = process.env.TMPDIR
  process.env.TMPDIR = shared
  try {
    // A one-letter key keeps the directory under TMPDIR for a TMPDIR of up to about 20 bytes.
    const dir = socketDirFor('w')
    // Never the short fallback under /tmp, which other processes of this user may be using.
    assert.ok(dir.startsWith(shared), `${dir} is under ${shared}; use a shorter TMPDIR`)
    // Another user made the parent first.
    mkdirSync(join(dir, '..'), { mode: 0o777 })
    chmodSync(join(dir, '..'), 0o777)
    assert.throws(
      () => createSocketPaths(dir, '0'),
      /pm2-metrics-\d+" is not private: its mode is 0777/,
    )
    rmSync(join(dir, '..'), { recursive: true })
    createSocketPaths(dir, '0')
  } finally {
    if (previous === undefined) delete process.env.TMPDIR
    else process.env.TMPDIR = previous
    rmSync(shared, { recursive: true, force: true })
  }
})
