// The cluster view's transport in one process: two workers' views over real unix sockets in a
// private directory, a worker that is not there, and a link that has gone missing.
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync, unlinkSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, test } from 'node:test'
import { ClusterView } from '../../src/cluster/cluster-view'
import { createSocketPaths } from '../../src/cluster/socket-paths'
import { createHttpMetrics, createWorkerRegistry } from '../../src/plugins/metrics/http-metrics'

const dir = mkdtempSync(join(tmpdir(), 'cluster-view-'))
after(() => rmSync(dir, { recursive: true, force: true }))

function view(workerId: string, instances: number, subdir: string) {
  const registry = createWorkerRegistry(workerId, false)
  const http = createHttpMetrics(registry)
  http.requestsTotal.inc(
    { method: 'GET', route: '/', status_code: '200', worker_id: workerId },
    Number(workerId) + 1,
  )
  const missing: string[][] = []
  const clusterView = new ClusterView({
    registry,
    workerId,
    instances,
    gatherTimeoutMs: 500,
    paths: createSocketPaths(join(dir, subdir)),
    onMissing: (ids) => missing.push(ids),
  })
  return { clusterView, missing }
}

test('a worker gathers its sibling over the socket and itself in process', async () => {
  const zero = view('0', 2, 'both')
  const one = view('1', 2, 'both')
  await zero.clusterView.start()
  await one.clusterView.start()
  try {
    for (const gatherer of [zero, one]) {
      const result = await gatherer.clusterView.gather()
      assert.deepEqual(result.answered.sort(), ['0', '1'])
      assert.match(
        result.text,
        /^http_requests_total\{method="GET",route="\/",status_code="200",worker_id="0"\} 1$/m,
      )
      assert.match(
        result.text,
        /^http_requests_total\{method="GET",route="\/",status_code="200",worker_id="1"\} 2$/m,
      )
      assert.match(result.text, /^cluster_metrics_workers_answered 2$/m)
    }
  } finally {
    await zero.clusterView.close()
    await one.clusterView.close()
  }
})

test('a worker that is not running is reported missing, and the scrape still answers', async () => {
  const zero = view('0', 3, 'missing')
  await zero.clusterView.start()
  try {
    const result = await zero.clusterView.gather()
    assert.deepEqual(result.expected, ['0', '1', '2'])
    assert.deepEqual(result.answered, ['0'])
    assert.deepEqual(zero.missing, [['1', '2']])
    assert.match(result.text, /^cluster_metrics_worker_up\{worker_id="1"\} 0$/m)
    assert.match(result.text, /^cluster_metrics_worker_up\{worker_id="0"\} 1$/m)
  } finally {
    await zero.clusterView.close()
  }
})

test('a worker whose link has gone missing still speaks for itself', async () => {
  const zero = view('0', 1, 'nolink')
  await zero.clusterView.start()
  try {
    unlinkSync(join(dir, 'nolink', '0.sock'))
    const result = await zero.clusterView.gather()
    assert.deepEqual(result.answered, ['0'])
  } finally {
    await zero.clusterView.close()
  }
})
