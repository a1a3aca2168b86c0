// Merged expositions of five real worker registries (the service's request metrics plus
// prom-client's default metrics, the gather's health as one more part) pass the strict checks:
// promtool for the text format, the official OpenMetrics parser for OpenMetrics (promtool 2.x
// reads only the text format: it takes `# EOF` for a comment and OpenMetrics counters'
// `_total` samples for families of their own, so it cannot judge OpenMetrics).
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { after, test } from 'node:test'
import { Gauge, Registry } from 'prom-client'
import { PROMTOOL_BIN } from '../../harness/stack'
import {
  mergeExpositions,
  renderRegistry,
  type TextFormat,
} from '../../packages/plugin/src/exposition/exposition'
import {
  createHttpMetrics,
  createWorkerRegistry,
} from '../../packages/plugin/src/plugin/http-metrics'
import { ExpositionParser } from './exposition-parser'

const WORKERS = 5
const parser = new ExpositionParser()
after(() => parser.close())

/** Five workers' registries, each having answered two routes, and the health part. */
function clusterRegistries(): Registry[] {
  const registries = []
  for (let id = 0; id < WORKERS; id++) {
    const workerId = String(id)
    const registry = createWorkerRegistry(workerId)
    const http = createHttpMetrics(registry)
    for (const route of ['/', '/items/:id']) {
      const labels = { method: 'GET', route, status_code: '200', worker_id: workerId }
      http.requestsTotal.inc(labels, id + 1)
      http.requestDuration.observe(labels, 0.003 * (id + 1))
    }
    registries.push(registry)
  }
  const health = new Registry()
  new Gauge({
    name: 'cluster_metrics_workers_answered',
    help: 'Workers whose metrics are in this scrape.',
    registers: [health],
  }).set(WORKERS)
  registries.push(health)
  return registries
}

async function mergedCluster(format: TextFormat): Promise<string> {
  const texts = await Promise.all(clusterRegistries().map((r) => renderRegistry(r, format)))
  return mergeExpositions(
    texts.map((text, i) => ({ workerId: i < WORKERS ? String(i) : 'cluster', text })),
    format,
  )
}

function promtoolCheckMetrics(text: string): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(PROMTOOL_BIN, ['check', 'metrics'], { stdio: ['pipe', 'pipe', 'pipe'] })
    let output = ''
    child.stdout.on('data', (c: Buffer) => {
      output += c
    })
    child.stderr.on('data', (c: Buffer) => {
      output += c
    })
    child.on('error', reject)
    child.on('close', (code) => resolve({ code, output }))
    child.stdin.end(text)
  })
}

const requestSamples = (text: string) =>
  text.split('\n').filter((line) => line.startsWith('http_requests_total{'))

test('text format: promtool check metrics finds no error, lint only on prom-client names', async () => {
  const merged = await mergedCluster('prometheus')
  assert.equal(requestSamples(merged).length, WORKERS * 2)
  const result = await promtoolCheckMetrics(merged)
  // Exit 3 means lint problems only; a parse error is exit 1.
  assert.ok(
    result.code === 0 || result.code === 3,
    `promtool exited ${result.code}: ${result.output}`,
  )
  for (const problem of result.output.split('\n').filter((line) => line.trim() !== '')) {
    assert.match(
      problem,
      /^nodejs_active_(handles|requests|resources)_total non-counter metrics should not have "_total" suffix$/,
    )
  }
})

test('text format: promtool does reject a family split in two (the check can fail)', async () => {
  const [first, second] = await Promise.all(
    clusterRegistries()
      .slice(0, 2)
      .map((r) => renderRegistry(r, 'prometheus')),
  )
  const result = await promtoolCheckMetrics(first + second)
  assert.equal(result.code, 1, result.output)
  assert.match(result.output, /second HELP line for metric name|second TYPE line for metric name/)
})

test('OpenMetrics: the strict parser accepts the merge and finds every worker in it', async () => {
  const merged = await mergedCluster('openmetrics')
  assert.equal(requestSamples(merged).length, WORKERS * 2)
  const families = await parser.parse(merged, 'openmetrics')
  const requests = families.find((family) => family.name === 'http_requests')
  assert.equal(requests?.type, 'counter')
  const workers = new Set(requests?.samples.map(([, labels]) => labels.worker_id))
  assert.deepEqual([...workers].sort(), ['0', '1', '2', '3', '4'])
  const durations = families.find((family) => family.name === 'http_request_duration_seconds')
  // 12 buckets and +Inf, sum and count, for 2 routes on each of 5 workers.
  assert.equal(durations?.samples.length, (13 + 2) * 2 * WORKERS)
})
