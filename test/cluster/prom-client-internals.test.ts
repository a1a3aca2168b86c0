// One test per assumption packages/plugin/src/lib/prom-client-internals.ts makes about prom-client's
// undocumented internals: a prom-client update that breaks one fails here, by name, before
// anything built on it misbehaves.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { Counter, Histogram, type Metric, Registry } from 'prom-client'
import {
  asRenderable,
  counterEntries,
  defaultLabelsOf,
  exemplarsEnabled,
  histogramEntries,
  labelNamesOf,
  renderedData,
  seriesLabelsOf,
  upperBoundsOf,
} from '../../packages/plugin/src/lib/prom-client-internals'

const SEE = 'see packages/plugin/src/lib/prom-client-internals.ts'

function counter(registry = new Registry()) {
  return new Counter({
    name: 'jobs_total',
    help: 'jobs',
    labelNames: ['kind'],
    registers: [registry],
  })
}

function histogram(options: { enableExemplars?: boolean } = {}) {
  return new Histogram({
    name: 'job_seconds',
    help: 'job time',
    labelNames: ['kind'],
    buckets: [0.1, 1],
    registers: [],
    ...options,
  })
}

test("a counter's hashMap holds one { labels, value } entry per series, replaced on reset", async () => {
  const registry = new Registry()
  const jobs = counter(registry)
  jobs.inc({ kind: 'a' }, 2)
  const entries = counterEntries(jobs)
  assert.ok(entries, `prom-client changed Counter#hashMap (no longer an object); ${SEE}`)
  const stored = Object.values(entries)
  assert.deepEqual(
    stored,
    [{ labels: { kind: 'a' }, value: 2 }],
    `prom-client changed a counter's stored series; ${SEE}`,
  )
  stored[0].value += 3
  assert.match(
    await registry.metrics(),
    /^jobs_total\{kind="a"\} 5$/m,
    `prom-client no longer renders a counter from its hashMap entry; ${SEE}`,
  )
  jobs.reset()
  assert.notEqual(counterEntries(jobs), entries, `prom-client's reset() kept the hashMap; ${SEE}`)
})

test("a histogram's hashMap holds { labels, sum, count, bucketValues } per series", async () => {
  const registry = new Registry()
  const jobs = histogram()
  registry.registerMetric(jobs)
  jobs.observe({ kind: 'a' }, 0.05)
  jobs.observe({ kind: 'a' }, 5)
  const entries = histogramEntries(jobs)
  assert.ok(entries, `prom-client changed Histogram#hashMap (no longer an object); ${SEE}`)
  const stored = Object.values(entries)
  // Per bucket, not cumulative, keyed by String(bound); an observation above the last bound
  // shows in count only.
  assert.deepEqual(
    stored,
    [{ labels: { kind: 'a' }, sum: 5.05, count: 2, bucketValues: { '0.1': 1, '1': 0 } }],
    `prom-client changed a histogram's stored series; ${SEE}`,
  )
  stored[0].bucketValues['1'] += 1
  stored[0].count += 1
  assert.match(
    await registry.metrics(),
    /^job_seconds_bucket\{le="1",kind="a"\} 2$/m,
    `prom-client no longer renders a histogram from its hashMap entry; ${SEE}`,
  )
})

test("a histogram's upperBounds are its configured buckets, without +Inf", () => {
  assert.deepEqual(
    upperBoundsOf(histogram()),
    [0.1, 1],
    `prom-client changed Histogram#upperBounds; ${SEE}`,
  )
})

test("a metric's labelNames are its configured label names", () => {
  assert.deepEqual(labelNamesOf(counter()), ['kind'], `prom-client changed labelNames; ${SEE}`)
  assert.deepEqual(labelNamesOf(histogram()), ['kind'], `prom-client changed labelNames; ${SEE}`)
})

test('a metric says whether it keeps exemplars in enableExemplars', () => {
  const message = `prom-client changed enableExemplars; ${SEE}`
  assert.equal(exemplarsEnabled(histogram({ enableExemplars: true })), true, message)
  assert.equal(exemplarsEnabled(histogram()), false, message)
})

test("a registry's _defaultLabels are what setDefaultLabels set", () => {
  const registry = new Registry()
  assert.deepEqual(defaultLabelsOf(registry), {}, `prom-client changed _defaultLabels; ${SEE}`)
  registry.setDefaultLabels({ worker_id: '3' })
  assert.deepEqual(
    defaultLabelsOf(registry),
    { worker_id: '3' },
    `prom-client changed _defaultLabels; ${SEE}`,
  )
})

test("a histogram's getForPromString keeps its series labels in sharedLabels, le apart", async () => {
  const jobs = histogram()
  jobs.observe({ kind: 'a' }, 0.05)
  const renderable = asRenderable(jobs)
  assert.equal(
    typeof renderable.getForPromString,
    'function',
    `prom-client removed Histogram#getForPromString; ${SEE}`,
  )
  const forText = await renderedData(renderable)
  const bucket = forText.values[0]
  assert.deepEqual(
    [bucket.labels, bucket.sharedLabels],
    [{ le: 0.1 }, { kind: 'a' }],
    `prom-client changed where getForPromString puts a series' labels; ${SEE}`,
  )
  // The same series and values as get(), once the labels are put together.
  const plain = await renderable.get()
  assert.deepEqual(
    forText.values.map((value) => [value.metricName, seriesLabelsOf(value), value.value]),
    plain.values.map((value) => [value.metricName, value.labels, value.value]),
    `prom-client's getForPromString and get() disagree; ${SEE}`,
  )
})

test('a histogram labels its finite buckets with numbers and its last with "+Inf"', async () => {
  const jobs = histogram()
  jobs.observe({ kind: 'a' }, 0.5)
  const les = (await jobs.get()).values
    .filter((value) => value.metricName === 'job_seconds_bucket')
    .map((value) => (value.labels as { le?: unknown }).le)
  assert.deepEqual(les, [0.1, 1, '+Inf'], `prom-client changed the type of le; ${SEE}`)
})

test('a registry renders a metric through getForPromString when it has one, else get', async () => {
  const registry = new Registry()
  const fields = { help: 'h', type: 'counter', aggregator: 'sum' }
  const data = (name: string, value: number) => ({
    ...fields,
    name,
    values: [{ labels: {}, value }],
  })
  const both = {
    ...fields,
    name: 'both_total',
    get: async () => data('both_total', 1),
    getForPromString: async () => data('both_total', 2),
  }
  const plain = { ...fields, name: 'plain_total', get: async () => data('plain_total', 3) }
  registry.registerMetric(both as unknown as Metric)
  registry.registerMetric(plain as unknown as Metric)
  const text = await registry.metrics()
  const message = `prom-client changed which method its registry renders from; ${SEE}`
  assert.match(text, /^both_total 2$/m, message)
  assert.match(text, /^plain_total 3$/m, message)
  assert.equal((await renderedData(both)).values[0].value, 2, message)
})
