// Counts carried from one process of a worker to the next: the successor's exposition is the
// predecessor's plus its own, series by series, buckets, sum and count included.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { Counter, Gauge, Histogram, Registry } from 'prom-client'
import { CarriedMetrics } from '../../src/cluster/carried-metrics'
import { renderRegistry } from '../../src/cluster/exposition'

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
