// The handover file: written atomically, taken once, and refused when it is not what a
// stopping process writes.
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import {
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  rmSync,
  symlinkSync,
  utimesSync,
  writeFileSync,
} from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, test } from 'node:test'
import {
  createHttpMetrics,
  createWorkerRegistry,
} from '../../packages/plugin/src/plugin/http-metrics'
import { CarriedMetrics } from '../../packages/plugin/src/succession/carried-metrics'
import {
  handoverMismatch,
  MAX_HANDOVER_BYTES,
  MAX_HANDOVER_SERIES,
  parseHandover,
  readHandoverFile,
  writeHandover,
} from '../../packages/plugin/src/succession/handover'

const dir = mkdtempSync(join(tmpdir(), 'handover-'))
after(() => rmSync(dir, { recursive: true, force: true }))
let paths = 0

/** A handover path of its own, in a directory of its own, for each test. */
function newPath(): string {
  const own = join(dir, `d${paths++}`)
  mkdirSync(own)
  return join(own, '1.handover.json')
}

/** The entries moved aside from `path`. */
function refusedBeside(path: string): string[] {
  const own = join(path, '..')
  return readdirSync(own)
    .filter((name) => name.startsWith('1.handover.json.refused-'))
    .map((name) => join(own, name))
}

const handover = {
  scope: 'webapp:5000',
  workerId: '1',
  pid: 4242,
  instance: 'k3J_9-xQ',
  writtenAt: 1_700_000_000_000,
  families: [
    {
      name: 'http_requests_total',
      type: 'counter' as const,
      values: [{ labels: { route: '/', worker_id: '1' }, value: 12 }],
    },
  ],
}

test('a handover is read back as written, with its file’s own time', () => {
  const path = join(dir, '1.handover.json')
  writeHandover(path, handover)
  const { fileModifiedAt, ...read } = readHandoverFile(path)
  assert.deepEqual(read, handover)
  assert.equal(typeof fileModifiedAt, 'number', 'the file’s own time comes with it')
})

test('a written handover carries the time it was written, and is ours alone', (t) => {
  t.mock.timers.enable({ apis: ['Date'], now: 1_700_000_123_456 })
  const path = newPath()
  const { writtenAt: _writtenAt, ...content } = handover
  writeHandover(path, content)
  assert.equal(lstatSync(path).mode & 0o777, 0o600)
  const read = readHandoverFile(path)
  assert.equal(read.instance, handover.instance)
  assert.equal(read.writtenAt, 1_700_000_123_456)
})

test('a handover written eleven minutes ago is too old; nine minutes is not', () => {
  const mismatch = (now: number) => handoverMismatch(handover, 'webapp:5000', '1', now)
  assert.match(
    mismatch(handover.writtenAt + 11 * 60 * 1000) ?? '',
    /written 660 s ago, longer than/,
  )
  assert.equal(mismatch(handover.writtenAt + 9 * 60 * 1000), undefined)
})

test('a handover dated more than ten seconds in the future is refused at each use, never for good', () => {
  const { writtenAt } = handover
  const mismatch = (now: number) => handoverMismatch(handover, 'webapp:5000', '1', now)
  assert.match(mismatch(writtenAt - 55_000) ?? '', /writtenAt is 55 s in the future/)
  assert.match(mismatch(writtenAt - 11_000) ?? '', /writtenAt is 11 s in the future/)
  // A clock stepped back by a few seconds still reads it; once it catches up, it is accepted.
  assert.equal(mismatch(writtenAt - 10_000), undefined)
  assert.equal(mismatch(writtenAt), undefined)
})

test('a handover’s age is taken from its file when the file is older than its claim', () => {
  const path = newPath()
  writeHandover(path, { ...handover, writtenAt: Date.now() })
  const threeDaysAgo = new Date(Date.now() - 3 * 24 * 3600 * 1000)
  utimesSync(path, threeDaysAgo, threeDaysAgo)
  const read = readHandoverFile(path)
  assert.match(handoverMismatch(read, 'webapp:5000', '1') ?? '', /written \d+ s ago, longer than/)
})

test('a handover whose series name another worker_id is refused, naming it', () => {
  const mismatch = (labels: Record<string, string>) =>
    handoverMismatch(
      {
        ...handover,
        families: [{ ...handover.families[0], values: [{ labels, value: 999_119 }] }],
      },
      'webapp:5000',
      '1',
      handover.writtenAt,
    )
  assert.match(mismatch({ route: '/', worker_id: '0' }) ?? '', /worker_id="0", not this worker/)
  assert.equal(mismatch({ route: '/', worker_id: '1' }), undefined)
  assert.equal(mismatch({ route: '/' }), undefined)
  const native = [{ name: 'h', labels: { worker_id: '0' }, state: {} }]
  assert.match(
    handoverMismatch({ ...handover, native } as never, 'webapp:5000', '1', handover.writtenAt) ??
      '',
    /worker_id="0"/,
  )
})

test('a stopping process moves a directory at its handover path aside and writes its handover', () => {
  const path = newPath()
  mkdirSync(path)
  writeFileSync(join(path, 'inside'), 'x')
  mkdirSync(`${path}.${process.pid}.tmp`)
  writeHandover(path, handover)
  assert.equal(readHandoverFile(path).families[0].values[0].value, 12)
  const own = join(path, '..')
  assert.deepEqual(
    readdirSync(own).filter((name) => name.endsWith('.tmp')),
    [],
    'no temporary file is left',
  )
  assert.equal(refusedBeside(path).length, 1)
})

test('a handover that cannot be written throws naming its path, and leaves no temporary file', () => {
  const path = join(dir, 'missing', '1.handover.json')
  assert.throws(
    () => writeHandover(path, handover),
    /cannot write the handover .*1\.handover\.json/,
  )
})

test('malformed handovers are refused with the reason', () => {
  const valid = { version: 2, ...handover }
  const cases: Array<[unknown, RegExp]> = [
    ['not json', /not JSON/],
    [[], /not an object/],
    [{ ...valid, version: 1 }, /version 1, where this process reads version 2/],
    [{ ...valid, version: undefined }, /version is not a number/],
    [{ ...valid, version: '2' }, /version is not a number/],
    [{ ...valid, workerId: '' }, /workerId is not a string of 1 to 256/],
    [{ ...valid, scope: 's'.repeat(257) }, /scope is not a string of 1 to 256/],
    [{ ...valid, scope: 5 }, /scope/],
    [{ ...valid, pid: 'x' }, /pid/],
    [{ ...valid, pid: 0 }, /pid is not a positive integer/],
    [{ ...valid, instance: 'short' }, /instance is not/],
    [{ ...valid, instance: 'has space' }, /instance is not/],
    [{ ...valid, instance: 'x'.repeat(65) }, /instance is not/],
    [{ ...valid, writtenAt: 0 }, /writtenAt is not a positive integer/],
    [{ ...valid, writtenAt: 1.5 }, /writtenAt is not a positive integer/],
    [{ ...valid, writtenAt: '1700000000000' }, /writtenAt is not a positive integer/],
    [{ ...valid, families: {} }, /families is not an array/],
  ]
  for (const [content, reason] of cases) {
    const text = typeof content === 'string' ? content : JSON.stringify(content)
    assert.throws(() => parseHandover(text), reason, text)
  }
})

/** A handover's text with these families. */
function withFamilies(families: unknown[]): string {
  return JSON.stringify({ version: 2, ...handover, families })
}

const COUNTER = 'http_requests_total'
const HISTOGRAM = 'http_request_duration_seconds'

/** One valid histogram series of `labels`: 1 observation up to 0.1, 2 up to 1, 3 in all. */
function histogramSeries(labels: Record<string, string>) {
  return [
    { metricName: `${HISTOGRAM}_bucket`, labels: { ...labels, le: 0.1 }, value: 1 },
    { metricName: `${HISTOGRAM}_bucket`, labels: { ...labels, le: 1 }, value: 2 },
    { metricName: `${HISTOGRAM}_bucket`, labels: { ...labels, le: '+Inf' }, value: 3 },
    { metricName: `${HISTOGRAM}_sum`, labels, value: 2.5 },
    { metricName: `${HISTOGRAM}_count`, labels, value: 3 },
  ]
}

/** A histogram family of these values. */
function histogram(values: unknown[]) {
  return { name: HISTOGRAM, type: 'histogram', values }
}

/** A counter family of these values. */
function counter(values: unknown[]) {
  return { name: COUNTER, type: 'counter', values }
}

/** `histogramSeries({ route: '/' })` with the value at `index` changed. */
function histogramWith(index: number, change: Record<string, unknown>) {
  const values: Array<Record<string, unknown>> = histogramSeries({ route: '/' })
  values[index] = { ...values[index], ...change }
  return histogram(values)
}

test('valid contents are kept as written, numbers in labels, fractions and negative sums too', () => {
  const counted = { labels: { route: '/', code: 200 }, value: 0.5 }
  const named = { labels: { route: '/b', code: '200' }, value: 3 }
  const histogramValues = [
    ...histogramSeries({ route: '/' }),
    ...histogramSeries({ route: '/b' }).map((value) =>
      value.metricName.endsWith('_sum') ? { ...value, value: -1.25 } : value,
    ),
  ]
  const text = withFamilies([
    counter([counted, { metricName: COUNTER, ...named }]),
    histogram(histogramValues),
  ])
  // A counter sample named as its family is kept unnamed, as prom-client keeps it.
  assert.deepEqual(parseHandover(text).families, [
    counter([counted, named]),
    histogram(histogramValues),
  ])
})

test('contents that prom-client could not have produced are refused, naming the problem', () => {
  const cases: Array<[unknown[], RegExp]> = [
    // Names.
    [[{ ...counter([]), name: 'http-requests' }], /"http-requests", not a metric name/],
    [[{ ...counter([]), name: '1requests' }], /"1requests", not a metric name/],
    [
      [counter([{ metricName: 'other_total', labels: {}, value: 1 }])],
      /sample named "other_total"/,
    ],
    [
      [histogramWith(3, { metricName: `${HISTOGRAM}_total` })],
      /sample named "http_request_duration_seconds_total"/,
    ],
    [[histogramWith(3, { metricName: undefined })], /sample named undefined/],
    [[counter([{ labels: { 'bad-name': 'x' }, value: 1 }])], /label name "bad-name"/],
    [[counter([{ labels: { __name__: 'x' }, value: 1 }])], /label name "__name__"/],
    [[counter([{ labels: { '2xx': 'x' }, value: 1 }])], /label name "2xx"/],
    // Label values.
    [[counter([{ labels: { route: {} }, value: 1 }])], /label route = \{\}/],
    [[counter([{ labels: { route: true }, value: 1 }])], /label route = true/],
    [[counter([{ labels: { route: null }, value: 1 }])], /label route = null/],
    [[histogramWith(0, { labels: { route: '/', le: '0.1' } })], /has le = "0.1"/],
    [[histogramWith(3, { labels: { route: '/', le: 1 } })], /_sum has a label le/],
    [[histogramWith(0, { labels: { route: '/' } })], /has a bucket without le/],
    // Values.
    [[counter([{ labels: {}, value: -1 }])], /negative value -1/],
    [[counter([{ labels: {}, value: 'NaN' }])], /value "NaN", not finite/],
    [[histogramWith(4, { value: 2.5 })], /_count has the count 2.5, not a whole number/],
    [[histogramWith(0, { value: 0.5 })], /_bucket has the count 0.5, not a whole number/],
    [[counter([{ value: 1 }])], /without labels/],
    // Series.
    [
      [
        counter([
          { labels: { route: '/', method: 'GET' }, value: 1 },
          { labels: { method: 'GET', route: '/' }, value: 2 },
        ]),
      ],
      /series http_requests_total\{method="GET",route="\/"\} twice/,
    ],
    [[counter([]), counter([])], /http_requests_total appears twice/],
    [[histogramWith(1, { value: 0 })], /bucket le="1" below le="0.1"/],
    [[histogramWith(2, { value: 4 })], /le="\+Inf" 4, not its _count 3/],
    [[histogram(histogramSeries({ route: '/' }).slice(0, 4))], /\{route="\/"\} has no _count/],
    [
      [histogram(histogramSeries({ route: '/' }).filter((_, i) => i !== 2))],
      /\{route="\/"\} has no le="\+Inf" bucket/,
    ],
    [
      [
        histogram([
          ...histogramSeries({ route: '/' }),
          ...histogramSeries({ route: '/b' }).slice(1),
        ]),
      ],
      /\{route="\/b"\} has other buckets than the family's first series/,
    ],
  ]
  for (const [families, reason] of cases) {
    const text = withFamilies(families)
    assert.throws(() => parseHandover(text), reason, text)
  }
})

test('two values of 1.7e308 for one series are refused, not summed to +Inf', () => {
  const twice = counter([
    { labels: { route: '/' }, value: 1.7e308 },
    { labels: { route: '/' }, value: 1.7e308 },
  ])
  assert.throws(
    () => parseHandover(withFamilies([twice])),
    /series http_requests_total\{route="\/"\} twice/,
  )
})

test('a value too large for a double (JSON 1e309 reads as Infinity) is refused', () => {
  const text = withFamilies([counter([{ labels: {}, value: 0 }])]).replace(
    '"value":0',
    '"value":1e309',
  )
  assert.throws(() => parseHandover(text), /value Infinity, not finite/)
})

test(`at most ${MAX_HANDOVER_SERIES} values in all are read`, () => {
  const values = (count: number) =>
    Array.from({ length: count }, (_, i) => ({ labels: { n: String(i) }, value: 1 }))
  const atLimit = parseHandover(withFamilies([counter(values(MAX_HANDOVER_SERIES))]))
  assert.equal(atLimit.families[0].values.length, MAX_HANDOVER_SERIES)
  assert.throws(
    () =>
      parseHandover(
        withFamilies([
          counter(values(MAX_HANDOVER_SERIES - 10)),
          histogram(
            histogramSeries({}).concat(histogramSeries({ a: 'b' }), histogramSeries({ a: 'c' })),
          ),
        ]),
      ),
    /it holds 50005 values, above the limit of 50000/,
  )
})

test('what a process hands over of the plugin’s own metrics is read back as written', async () => {
  const registry = createWorkerRegistry('1', false)
  const http = createHttpMetrics(registry, [0.1, 1], { exemplars: true })
  const carried = new CarriedMetrics(registry, [COUNTER, HISTOGRAM])
  const exemplarLabels: Record<string, string> = { trace_id: 'abc' }
  for (const [route, seconds] of [
    ['/a', 0.05],
    ['/a', 3],
    ['/b', 0.5],
  ] as const) {
    const labels = { method: 'GET', route, status_code: '200', worker_id: '1' }
    http.requestsTotal.inc({ labels, exemplarLabels })
    http.requestDuration.observe({ labels, value: seconds })
  }
  const path = newPath()
  const families = await carried.values()
  writeHandover(path, { scope: 'app', workerId: '1', pid: 42, instance: '42-0123abcd', families })
  assert.deepEqual(readHandoverFile(path).families, families)
  assert.equal(
    families.reduce((n, family) => n + family.values.length, 0),
    2 + 2 * 5,
  )
})

test('a handover file cut short is refused as not JSON', () => {
  const path = newPath()
  writeFileSync(path, '{"version":1')
  assert.throws(() => readHandoverFile(path), /not JSON/)
})

test('a handover of format version 1 (an older release) is refused', () => {
  const path = newPath()
  const { instance: _instance, writtenAt: _writtenAt, ...v1 } = handover
  writeFileSync(path, JSON.stringify({ version: 1, ...v1 }))
  assert.throws(() => readHandoverFile(path), /version 1, where this process reads version 2/)
})

test('a FIFO at the handover path is refused at once', () => {
  const path = newPath()
  execFileSync('mkfifo', [path])
  assert.throws(() => readHandoverFile(path), /^MalformedHandoverError: handover .* is a FIFO$/)
})

test('a symbolic link at the handover path is refused without being followed', () => {
  const path = newPath()
  // Followed, it would be read until the size limit, or for ever without one.
  symlinkSync('/dev/zero', path)
  assert.throws(() => readHandoverFile(path), /is a symbolic link$/)
})

test('a directory at the handover path is refused', () => {
  const path = newPath()
  mkdirSync(path)
  writeFileSync(join(path, 'inside'), 'x')
  assert.throws(() => readHandoverFile(path), /is a directory$/)
})

test('a handover file above the size limit is refused by its size, unread', () => {
  const path = newPath()
  writeFileSync(path, Buffer.alloc(MAX_HANDOVER_BYTES + 1, 0x20))
  assert.throws(
    () => readHandoverFile(path),
    /is 8 MiB \(8388609 bytes\), above the limit of 8 MiB$/,
  )
  // One byte less is read: it is refused for what it holds, not for its size.
  writeFileSync(path, Buffer.alloc(MAX_HANDOVER_BYTES, 0x20))
  assert.throws(() => readHandoverFile(path), /not JSON/)
})

test('a handover file that is not UTF-8 is refused', () => {
  const path = newPath()
  writeFileSync(path, Buffer.from([0x7b, 0xff, 0x7d]))
  assert.throws(() => readHandoverFile(path), /is not UTF-8 text$/)
})

test('no handover file throws the original ENOENT', () => {
  const path = newPath()
  assert.throws(() => readHandoverFile(path), { code: 'ENOENT' })
})
