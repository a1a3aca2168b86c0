// One test per assumption packages/plugin/src/lib/prom-client-internals.ts makes about a metrics
// client's undocumented internals, run against each client the plugin supports (prom-client
// and @prometheus-io/client): an update of either that breaks one fails here, by name, before
// anything built on it misbehaves.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import * as prometheusIo from '@prometheus-io/client'
import type { Metric } from 'prom-client'
import * as promClient from 'prom-client'
import { CONTENT_TYPES } from '../../packages/plugin/src/exposition/exposition-format'
import { clientFor, installedClients } from '../../packages/plugin/src/lib/metrics-client'
import {
  asRenderable,
  type ClientInternals,
  defaultLabelsOf,
  exemplarsEnabled,
  internalsProblems,
  labelNamesOf,
  promClientInternals,
  prometheusIoInternals,
  renderedData,
  seriesLabelsOf,
  upperBoundsOf,
} from '../../packages/plugin/src/lib/prom-client-internals'

const SEE = 'see packages/plugin/src/lib/prom-client-internals.ts'

interface ClientUnderTest {
  name: string
  module: typeof promClient
  internals: ClientInternals
}

const CLIENTS: ClientUnderTest[] = [
  { name: 'prom-client', module: promClient, internals: promClientInternals },
  {
    name: '@prometheus-io/client',
    module: prometheusIo as unknown as typeof promClient,
    internals: prometheusIoInternals,
  },
]

for (const { name: clientName, module: client, internals } of CLIENTS) {
  const { Counter, Histogram, Registry } = client

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

  test(`${clientName}: a counter stores one { labels, value } entry per series, written in place, dropped on reset and remove`, async () => {
    const registry = new Registry()
    const jobs = counter(registry)
    jobs.inc({ kind: 'a' }, 2)
    const series = internals.counterSeries(jobs, { kind: 'a' })
    assert.ok(series, `${clientName} changed where a counter stores its series; ${SEE}`)
    assert.deepEqual(
      { ...series.entry },
      { labels: { kind: 'a' }, value: 2 },
      `${clientName} changed a counter's stored series; ${SEE}`,
    )
    assert.equal(internals.counterSeries(jobs, { kind: 'b' }), undefined)
    series.entry.value += 3
    assert.match(
      await registry.metrics(),
      /^jobs_total\{kind="a"\} 5$/m,
      `${clientName} no longer renders a counter from its stored entry; ${SEE}`,
    )
    assert.equal(series.stillStored(), true)
    jobs.reset()
    assert.equal(series.stillStored(), false, `${clientName}'s reset() kept the entry; ${SEE}`)
    jobs.inc({ kind: 'a' })
    const again = internals.counterSeries(jobs, { kind: 'a' })
    assert.ok(again?.stillStored())
    if (again === undefined) return
    jobs.remove({ kind: 'a' })
    assert.equal(again.stillStored(), false, `${clientName}'s remove() kept the entry; ${SEE}`)
  })

  test(`${clientName}: a histogram stores { labels, sum, count, bucketValues } per series`, async () => {
    const registry = new Registry()
    const jobs = histogram()
    registry.registerMetric(jobs)
    jobs.observe({ kind: 'a' }, 0.05)
    jobs.observe({ kind: 'a' }, 5)
    const series = internals.histogramSeries(jobs, { kind: 'a' })
    assert.ok(series, `${clientName} changed where a histogram stores its series; ${SEE}`)
    // Per bucket, not cumulative, keyed by String(bound); an observation above the last bound
    // shows in count only.
    const { labels, sum, count, bucketValues } = series.entry
    assert.deepEqual(
      { labels, sum, count, bucketValues },
      { labels: { kind: 'a' }, sum: 5.05, count: 2, bucketValues: { '0.1': 1, '1': 0 } },
      `${clientName} changed a histogram's stored series; ${SEE}`,
    )
    series.entry.bucketValues['1'] += 1
    series.entry.count += 1
    assert.match(
      await registry.metrics(),
      /^job_seconds_bucket\{le="1",kind="a"\} 2$/m,
      `${clientName} no longer renders a histogram from its stored entry; ${SEE}`,
    )
    registry.resetMetrics()
    assert.equal(
      series.stillStored(),
      false,
      `${clientName}'s resetMetrics() kept the entry; ${SEE}`,
    )
  })

  test(`${clientName}: its internals read as expected where the plugin checks them at registration`, () => {
    assert.deepEqual(internalsProblems({ ...client, internals }), [])
  })

  test(`${clientName}: renders the text formats under the Content-Types the plugin answers with`, () => {
    assert.deepEqual(
      [client.prometheusContentType, client.openMetricsContentType],
      [CONTENT_TYPES.prometheus, CONTENT_TYPES.openmetrics],
      `${clientName} changed its Content-Types; ${SEE}`,
    )
  })

  test(`${clientName}: a histogram's upperBounds are its configured buckets, without +Inf`, () => {
    assert.deepEqual(
      upperBoundsOf(histogram()),
      [0.1, 1],
      `${clientName} changed Histogram#upperBounds; ${SEE}`,
    )
  })

  test(`${clientName}: a metric's labelNames are its configured label names`, () => {
    assert.deepEqual(labelNamesOf(counter()), ['kind'], `${clientName} changed labelNames; ${SEE}`)
    assert.deepEqual(
      labelNamesOf(histogram()),
      ['kind'],
      `${clientName} changed labelNames; ${SEE}`,
    )
  })

  test(`${clientName}: a metric says whether it keeps exemplars in enableExemplars`, () => {
    const message = `${clientName} changed enableExemplars; ${SEE}`
    assert.equal(exemplarsEnabled(histogram({ enableExemplars: true })), true, message)
    assert.equal(exemplarsEnabled(histogram()), false, message)
  })

  test(`${clientName}: a registry's _defaultLabels are what setDefaultLabels set`, () => {
    const registry = new Registry()
    assert.deepEqual(defaultLabelsOf(registry), {}, `${clientName} changed _defaultLabels; ${SEE}`)
    registry.setDefaultLabels({ worker_id: '3' })
    assert.deepEqual(
      defaultLabelsOf(registry),
      { worker_id: '3' },
      `${clientName} changed _defaultLabels; ${SEE}`,
    )
  })

  test(`${clientName}: a histogram's getForPromString keeps its series labels in sharedLabels, le apart`, async () => {
    const jobs = histogram()
    jobs.observe({ kind: 'a' }, 0.05)
    const renderable = asRenderable(jobs)
    assert.equal(
      typeof renderable.getForPromString,
      'function',
      `${clientName} removed Histogram#getForPromString; ${SEE}`,
    )
    const forText = await renderedData(renderable)
    const bucket = forText.values[0]
    assert.deepEqual(
      [bucket.labels, bucket.sharedLabels],
      [{ le: 0.1 }, { kind: 'a' }],
      `${clientName} changed where getForPromString puts a series' labels; ${SEE}`,
    )
    // The same series and values as get(), once the labels are put together.
    const plain = await renderable.get()
    assert.deepEqual(
      forText.values.map((value) => [value.metricName, seriesLabelsOf(value), value.value]),
      plain.values.map((value) => [value.metricName, value.labels, value.value]),
      `${clientName}'s getForPromString and get() disagree; ${SEE}`,
    )
  })

  test(`${clientName}: a summary's values without labels of their own read as no labels`, async () => {
    const summary = new client.Summary({ name: 'wait_seconds', help: 'w', registers: [] })
    summary.observe(1)
    const data = await renderedData(asRenderable(summary))
    assert.deepEqual(
      data.values.map((value) => {
        const { quantile: _quantile, ...labels } = seriesLabelsOf(value)
        return [value.metricName ?? 'wait_seconds', labels]
      }),
      [
        ...data.values
          .filter((value) => value.metricName === undefined)
          .map(() => ['wait_seconds', {}]),
        ['wait_seconds_sum', {}],
        ['wait_seconds_count', {}],
      ],
      `${clientName} changed a summary's values; ${SEE}`,
    )
  })

  test(`${clientName}: a histogram labels its finite buckets with numbers and its last with "+Inf"`, async () => {
    const jobs = histogram()
    jobs.observe({ kind: 'a' }, 0.5)
    const les = (await jobs.get()).values
      .filter((value) => value.metricName === 'job_seconds_bucket')
      .map((value) => (value.labels as { le?: unknown }).le)
    assert.deepEqual(les, [0.1, 1, '+Inf'], `${clientName} changed the type of le; ${SEE}`)
  })

  test(`${clientName}: a registry renders a metric through getForPromString when it has one, else get`, async () => {
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
    const message = `${clientName} changed which method its registry renders from; ${SEE}`
    assert.match(text, /^both_total 2$/m, message)
    assert.match(text, /^plain_total 3$/m, message)
    assert.equal((await renderedData(both)).values[0].value, 2, message)
  })
}

test('records into the client whose registry it is given, prom-client when it makes its own', () => {
  assert.deepEqual(
    installedClients().map((client) => client.name),
    ['prom-client', '@prometheus-io/client'],
  )
  assert.equal(clientFor(new promClient.Registry()).Registry, promClient.Registry)
  assert.equal(clientFor(new prometheusIo.Registry()).Registry, prometheusIo.Registry)
  assert.equal(clientFor().name, 'prom-client')
})

test('refuses a registry of neither installed client, naming why', () => {
  class OtherRegistry extends Object {}
  assert.throws(() => clientFor(new OtherRegistry()), /another client or another copy of it/)
})

test('names a client whose internals are not where it expects, rather than misreading them', () => {
  // prom-client's classes read as @prometheus-io/client's: as a release that moved them.
  const problems = internalsProblems({ ...promClient, internals: prometheusIoInternals })
  assert.deepEqual(problems, [
    "a counter's stored series is not where it was found",
    "a histogram's stored series is not { labels, sum, count, bucketValues }",
  ])
})
