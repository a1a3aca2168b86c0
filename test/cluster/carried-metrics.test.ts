// Counts carried from one process of a worker to the next: the successor's exposition is the
// predecessor's plus its own, series by series, buckets, sum and count included.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { Counter, Gauge, Histogram, Registry } from 'prom-client'
import { renderRegistry } from '../../packages/plugin/src/exposition/exposition'
import type { CarriedFamily } from '../../packages/plugin/src/succession/carried-family'
import { CarriedMetrics } from '../../packages/plugin/src/succession/carried-metrics'

const NAMES = ['requests_total', 'duration_seconds']

/** A worker's registry with one counter, one histogram and a gauge that is never carried. */
function workerRegistry(buckets = [0.1, 1]) {
  const registry = new Registry()
  registry.setDefaultLabels({ worker_id: '2' })
  const counter = new Counter({
    name: 'requests_total',
    help: 'requests',
    labelNames: ['route'],
    registers: [registry],
  })
  const histogram = new Histogram({
    name: 'duration_seconds',
    help: 'durations',
    labelNames: ['route'],
    buckets,
    registers: [registry],
  })
  const gauge = new Gauge({ name: 'in_flight', help: 'gauge', registers: [registry] })
  return { registry, counter, histogram, gauge }
}

/**
 * Sample lines of a rendered registry as numbers, keyed by name and labels in alphabetical
 * order (prom-client orders a histogram's labels its own way). Label values here hold no commas.
 */
function samples(text: string): Map<string, number> {
  const map = new Map<string, number>()
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue
    const at = line.lastIndexOf(' ')
    const series = line.slice(0, at)
    const brace = series.indexOf('{')
    const labels =
      brace === -1
        ? []
        : series
            .slice(brace + 1, -1)
            .split(',')
            .sort()
    const name = brace === -1 ? series : series.slice(0, brace)
    map.set(`${name}{${labels.join(',')}}`, Number(line.slice(at + 1)))
  }
  return map
}

test('a successor continues every series of the carried counter and histogram', async () => {
  const old = workerRegistry()
  const oldCarried = new CarriedMetrics(old.registry, NAMES)
  old.counter.inc({ route: '/a' }, 7)
  old.counter.inc({ route: '/b' }, 2)
  old.histogram.observe({ route: '/a' }, 0.05)
  old.histogram.observe({ route: '/a' }, 0.5)
  old.histogram.observe({ route: '/b' }, 3)
  old.gauge.set(9)

  const next = workerRegistry()
  const nextCarried = new CarriedMetrics(next.registry, NAMES)
  next.counter.inc({ route: '/a' }, 1)
  next.histogram.observe({ route: '/a' }, 0.05)
  next.gauge.set(1)
  nextCarried.add(await oldCarried.values())

  const got = samples(await next.registry.metrics())
  // Written out by hand: old + new for /a, old alone for /b, the gauge stays this process'.
  const expected: Array<[string, number]> = [
    ['requests_total{route="/a",worker_id="2"}', 8],
    ['requests_total{route="/b",worker_id="2"}', 2],
    ['duration_seconds_bucket{le="0.1",route="/a",worker_id="2"}', 2],
    ['duration_seconds_bucket{le="1",route="/a",worker_id="2"}', 3],
    ['duration_seconds_bucket{le="+Inf",route="/a",worker_id="2"}', 3],
    ['duration_seconds_sum{route="/a",worker_id="2"}', 0.6],
    ['duration_seconds_count{route="/a",worker_id="2"}', 3],
    ['duration_seconds_bucket{le="0.1",route="/b",worker_id="2"}', 0],
    ['duration_seconds_bucket{le="1",route="/b",worker_id="2"}', 0],
    ['duration_seconds_bucket{le="+Inf",route="/b",worker_id="2"}', 1],
    ['duration_seconds_sum{route="/b",worker_id="2"}', 3],
    ['duration_seconds_count{route="/b",worker_id="2"}', 1],
    ['in_flight{worker_id="2"}', 1],
  ]
  for (const [series, value] of expected) {
    assert.ok(
      Math.abs((got.get(series) ?? Number.NaN) - value) < 1e-9,
      `${series} = ${got.get(series)}`,
    )
  }
  assert.equal(got.size, expected.length)
})

test('repeated handovers add up, and OpenMetrics renders the carried counter once named', async () => {
  let carried = new CarriedMetrics(workerRegistry().registry, NAMES)
  let current = workerRegistry()
  for (let generation = 0; generation < 4; generation++) {
    current = workerRegistry()
    const next = new CarriedMetrics(current.registry, NAMES)
    next.add(await carried.values())
    current.counter.inc({ route: '/a' }, 5)
    carried = next
  }
  const om = await renderRegistry(current.registry, 'openmetrics')
  assert.match(om, /^requests_total\{route="\/a",worker_id="2"\} 20$/m)
  assert.match(om, /^# TYPE requests counter$/m)
  const text = await renderRegistry(current.registry, 'prometheus')
  assert.match(text, /^requests_total\{route="\/a",worker_id="2"\} 20$/m)
})

test('a histogram with other buckets cannot be continued', async () => {
  const old = workerRegistry([0.1, 1])
  const oldCarried = new CarriedMetrics(old.registry, NAMES)
  old.histogram.observe({ route: '/a' }, 0.5)
  const next = new CarriedMetrics(workerRegistry([0.2, 1]).registry, NAMES)
  assert.match(next.incompatibility(await oldCarried.values()) ?? '', /le="0.1"/)
  const same = new CarriedMetrics(workerRegistry([0.1, 1]).registry, NAMES)
  assert.equal(same.incompatibility(await oldCarried.values()), undefined)
})

test('only counters and histograms can be carried', () => {
  const { registry } = workerRegistry()
  assert.throws(() => new CarriedMetrics(registry, ['in_flight']), /in_flight is a gauge/)
})

/** A counter family of `requests_total` with these values. */
function counterFamily(values: CarriedFamily['values']): CarriedFamily {
  return { name: 'requests_total', type: 'counter', values }
}

/** One histogram series of `duration_seconds` (buckets 0.1 and 1): `count` observations of 0.05. */
function histogramSeries(labels: Record<string, string>, count: number, sum = count * 0.05) {
  return [
    { metricName: 'duration_seconds_bucket', labels: { ...labels, le: 0.1 }, value: count },
    { metricName: 'duration_seconds_bucket', labels: { ...labels, le: 1 }, value: count },
    { metricName: 'duration_seconds_bucket', labels: { ...labels, le: '+Inf' }, value: count },
    { metricName: 'duration_seconds_sum', labels, value: sum },
    { metricName: 'duration_seconds_count', labels, value: count },
  ]
}

test('a series whose label names are not the metric’s any more is dropped; the rest is carried', async () => {
  const { registry, counter } = workerRegistry()
  const carried = new CarriedMetrics(registry, NAMES)
  counter.inc({ route: '/a' }, 1)
  counter.inc({ route: '/c' }, 1)
  const report = carried.add([
    counterFamily([
      { labels: { route: '/a' }, value: 5 },
      // A label a deploy removed, and one it added.
      { labels: { route: '/b', tenant: 't1' }, value: 7 },
      { labels: {}, value: 4 },
      // The registry's worker_id, as prom-client adds it: the same series as the live /c.
      { labels: { route: '/c', worker_id: '2' }, value: 3 },
      // Another worker's series.
      { labels: { route: '/d', worker_id: '9' }, value: 6 },
    ]),
  ])
  assert.deepEqual(report, {
    dropped: 3,
    reasons: [
      'requests_total: a series with the label tenant, which the metric does not have',
      'requests_total: a series without the label route',
      "requests_total: a series whose worker_id is not this registry's",
    ],
  })
  const text = await registry.metrics()
  assert.deepEqual(
    text.split('\n').filter((line) => line.startsWith('requests_total')),
    ['requests_total{route="/a",worker_id="2"} 6', 'requests_total{route="/c",worker_id="2"} 4'],
  )
})

test('a histogram series is carried whole or dropped whole', async () => {
  const { registry, histogram } = workerRegistry()
  const carried = new CarriedMetrics(registry, NAMES)
  histogram.observe({ route: '/a' }, 0.05)
  const report = carried.add([
    {
      name: 'duration_seconds',
      type: 'histogram',
      values: [...histogramSeries({ route: '/a' }, 2), ...histogramSeries({ method: 'GET' }, 3)],
    },
  ])
  assert.deepEqual(report, {
    dropped: 1,
    reasons: ['duration_seconds: a series with the label method, which the metric does not have'],
  })
  const got = samples(await registry.metrics())
  assert.equal(got.get('duration_seconds_count{route="/a",worker_id="2"}'), 3)
  assert.equal(got.get('duration_seconds_bucket{le="0.1",route="/a",worker_id="2"}'), 3)
  assert.equal([...got.keys()].filter((key) => key.includes('method')).length, 0)
})

test('a carried value that would sum to a non-finite number with the base is dropped, not +Inf', async () => {
  const { registry } = workerRegistry()
  const carried = new CarriedMetrics(registry, NAMES)
  const huge = counterFamily([{ labels: { route: '/a' }, value: 1.7e308 }])
  assert.deepEqual(carried.add([huge]), { dropped: 0, reasons: [] })
  assert.deepEqual(carried.add([huge]), {
    dropped: 1,
    reasons: ['requests_total: a series whose sum with the values already carried is not finite'],
  })
  assert.match(await registry.metrics(), /^requests_total\{route="\/a",worker_id="2"\} 1.7e\+308$/m)

  // A histogram's sum that would overflow leaves its buckets and count uncarried too.
  const histogram = (sum: number): CarriedFamily => ({
    name: 'duration_seconds',
    type: 'histogram',
    values: histogramSeries({ route: '/a' }, 1, sum),
  })
  assert.equal(carried.add([histogram(1.7e308)]).dropped, 0)
  assert.equal(carried.add([histogram(1.7e308)]).dropped, 1)
  const got = samples(await registry.metrics())
  assert.equal(got.get('duration_seconds_count{route="/a",worker_id="2"}'), 1)
  assert.equal(got.get('duration_seconds_sum{route="/a",worker_id="2"}'), 1.7e308)
})

test('the registry’s counter stays a usable counter: inc, labels and remove act on top of the base', async () => {
  const { registry } = workerRegistry()
  const carried = new CarriedMetrics(registry, NAMES)
  carried.add([
    counterFamily([
      { labels: { route: '/a' }, value: 10 },
      { labels: { route: '/b' }, value: 20 },
    ]),
  ])
  const counter = registry.getSingleMetric('requests_total') as Counter<'route'>
  assert.ok(counter instanceof Counter)
  const value = async (route: string) =>
    samples(await registry.metrics()).get(`requests_total{route="${route}",worker_id="2"}`)

  counter.inc({ route: '/a' }, 1)
  assert.equal(await value('/a'), 11)
  counter.labels('/a').inc()
  counter.labels({ route: '/b' }).inc(2)
  assert.equal(await value('/a'), 12)
  assert.equal(await value('/b'), 22)
  assert.equal((await counter.get()).values.find((v) => v.labels.route === '/b')?.value, 22)

  // Removed with its carried base, by label object or by position.
  counter.remove({ route: '/a' })
  assert.equal(await value('/a'), undefined)
  counter.remove('/b')
  assert.equal(await value('/b'), undefined)
  counter.inc({ route: '/a' })
  assert.equal(await value('/a'), 1)
  assert.throws(() => counter.remove({ nope: 'x' } as never), /not included in initial labelset/)

  // reset(), also through the registry, forgets the base.
  carried.add([counterFamily([{ labels: { route: '/c' }, value: 5 }])])
  registry.resetMetrics()
  assert.equal(await value('/c'), undefined)
})

test('the registry’s histogram stays a usable histogram: observe, startTimer, zero, labels', async () => {
  const { registry } = workerRegistry()
  const carried = new CarriedMetrics(registry, NAMES)
  carried.add([
    { name: 'duration_seconds', type: 'histogram', values: histogramSeries({ route: '/a' }, 4) },
  ])
  const histogram = registry.getSingleMetric('duration_seconds') as Histogram<'route'>
  assert.ok(histogram instanceof Histogram)
  const count = async (route: string) =>
    samples(await registry.metrics()).get(`duration_seconds_count{route="${route}",worker_id="2"}`)

  histogram.observe({ route: '/a' }, 0.5)
  assert.equal(await count('/a'), 5)
  histogram.labels('/a').observe(0.5)
  histogram.startTimer({ route: '/a' })()
  assert.equal(await count('/a'), 7)
  histogram.zero({ route: '/z' })
  assert.equal(await count('/z'), 0)
  histogram.remove({ route: '/a' })
  assert.equal(await count('/a'), undefined)
})

test('a histogram missing one of this process’ buckets cannot be continued', async () => {
  const old = workerRegistry([0.1, 1])
  const oldCarried = new CarriedMetrics(old.registry, NAMES)
  old.histogram.observe({ route: '/a' }, 0.5)
  const next = new CarriedMetrics(workerRegistry([0.1, 1, 2]).registry, NAMES)
  assert.equal(
    next.incompatibility(await oldCarried.values()),
    'duration_seconds has no bucket le="2", which this process has',
  )
})

test('a carried counter value named as its family continues the live series, not a second one', async () => {
  const { registry, counter } = workerRegistry()
  const carried = new CarriedMetrics(registry, NAMES)
  counter.inc({ route: '/a' }, 2)
  carried.add([
    counterFamily([{ metricName: 'requests_total', labels: { route: '/a' }, value: 3 }]),
  ])
  assert.deepEqual(
    (await registry.metrics()).split('\n').filter((line) => line.startsWith('requests_total')),
    ['requests_total{route="/a",worker_id="2"} 5'],
  )
})
