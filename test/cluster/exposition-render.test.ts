// renderRegistry: one registry in either format, with its default labels, never altered by
// being rendered, and safe under concurrent renders in both formats.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { setImmediate as nextTurn } from 'node:timers/promises'
import { Counter, Gauge, Histogram, Registry, type RegistryContentType } from 'prom-client'
import { renderRegistry, type TextFormat } from '../../packages/plugin/src/exposition/exposition'

/** A small worker registry; its gauge collects asynchronously, as default metrics may. */
function workerRegistry(workerId = '3'): Registry<RegistryContentType> {
  const registry = new Registry<RegistryContentType>()
  registry.setDefaultLabels({ worker_id: workerId })
  new Counter({
    name: 'jobs_total',
    help: 'Jobs done.',
    labelNames: ['kind'],
    registers: [registry],
  }).inc({ kind: 'a"b' }, 2)
  new Gauge({
    name: 'queue_depth',
    help: 'Jobs waiting.',
    registers: [registry],
    async collect() {
      await nextTurn()
      this.set(7)
    },
  })
  new Histogram({
    name: 'job_duration_seconds',
    help: 'Job time.',
    buckets: [0.5],
    registers: [registry],
  }).observe(0.25)
  return registry
}

const PROMETHEUS_TEXT = [
  '# HELP jobs_total Jobs done.',
  '# TYPE jobs_total counter',
  'jobs_total{kind="a\\"b",worker_id="3"} 2',
  '',
  '# HELP queue_depth Jobs waiting.',
  '# TYPE queue_depth gauge',
  'queue_depth{worker_id="3"} 7',
  '',
  '# HELP job_duration_seconds Job time.',
  '# TYPE job_duration_seconds histogram',
  'job_duration_seconds_bucket{le="0.5",worker_id="3"} 1',
  'job_duration_seconds_bucket{le="+Inf",worker_id="3"} 1',
  'job_duration_seconds_sum{worker_id="3"} 0.25',
  'job_duration_seconds_count{worker_id="3"} 1',
  '',
].join('\n')

const OPENMETRICS_TEXT = [
  '# HELP jobs Jobs done.',
  '# TYPE jobs counter',
  'jobs_total{kind="a\\"b",worker_id="3"} 2',
  '# HELP queue_depth Jobs waiting.',
  '# TYPE queue_depth gauge',
  'queue_depth{worker_id="3"} 7',
  '# HELP job_duration_seconds Job time.',
  '# TYPE job_duration_seconds histogram',
  'job_duration_seconds_bucket{le="0.5",worker_id="3"} 1',
  'job_duration_seconds_bucket{le="+Inf",worker_id="3"} 1',
  'job_duration_seconds_sum{worker_id="3"} 0.25',
  'job_duration_seconds_count{worker_id="3"} 1',
  '# EOF',
  '',
].join('\n')

test('renders the text format with the default labels', async () => {
  assert.equal(await renderRegistry(workerRegistry(), 'prometheus'), PROMETHEUS_TEXT)
})

test('renders OpenMetrics: counters typed without _total, one # EOF', async () => {
  assert.equal(await renderRegistry(workerRegistry(), 'openmetrics'), OPENMETRICS_TEXT)
})

test("matches prom-client's own render of a registry set to each format", async () => {
  assert.equal(
    await renderRegistry(workerRegistry(), 'prometheus'),
    await workerRegistry().metrics(),
  )
  const openMetrics = workerRegistry()
  openMetrics.setContentType(Registry.OPENMETRICS_CONTENT_TYPE)
  assert.equal(await renderRegistry(workerRegistry(), 'openmetrics'), await openMetrics.metrics())
})

test('an OpenMetrics render leaves the registry as it was', async () => {
  const registry = workerRegistry()
  await renderRegistry(registry, 'openmetrics')
  const counter = registry.getSingleMetric('jobs_total') as unknown as { name: string }
  assert.equal(counter.name, 'jobs_total')
  assert.equal(registry.contentType, Registry.PROMETHEUS_CONTENT_TYPE)
  assert.equal(await renderRegistry(registry, 'prometheus'), PROMETHEUS_TEXT)
  assert.equal(await registry.metrics(), PROMETHEUS_TEXT)
})

test("prom-client's own OpenMetrics render renames counters in place (why it is not used)", async () => {
  const registry = workerRegistry()
  registry.setContentType(Registry.OPENMETRICS_CONTENT_TYPE)
  await registry.metrics()
  registry.setContentType(Registry.PROMETHEUS_CONTENT_TYPE)
  assert.match(await registry.metrics(), /^jobs\{kind="a\\"b",worker_id="3"\} 2$/m)
})

test("the registry's own content type does not decide the format", async () => {
  const registry = workerRegistry()
  registry.setContentType(Registry.OPENMETRICS_CONTENT_TYPE)
  assert.equal(await renderRegistry(registry, 'prometheus'), PROMETHEUS_TEXT)
  assert.equal(await renderRegistry(registry, 'openmetrics'), OPENMETRICS_TEXT)
})

test('concurrent renders of one registry in both formats never mix formats', async () => {
  const registry = workerRegistry()
  const formats = Array.from(
    { length: 40 },
    (_, i) => (i % 3 === 0 ? 'openmetrics' : 'prometheus') as TextFormat,
  )
  const texts = await Promise.all(formats.map((format) => renderRegistry(registry, format)))
  texts.forEach((text, i) => {
    assert.equal(
      text,
      formats[i] === 'openmetrics' ? OPENMETRICS_TEXT : PROMETHEUS_TEXT,
      `render ${i}`,
    )
  })
})

test('an empty registry renders as a blank line, or as a lone # EOF in OpenMetrics', async () => {
  assert.equal(await renderRegistry(new Registry(), 'prometheus'), '\n')
  assert.equal(await renderRegistry(new Registry(), 'openmetrics'), '# EOF\n')
})
