// mergeExpositions on small hand-written expositions, with every expected line written out.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { mergeExpositions, mergeRendered } from '../../packages/plugin/src/exposition/exposition'

const lines = (...all: string[]) => `${all.join('\n')}\n`

test('text format: one header per family, then each worker’s samples in part order', () => {
  const merged = mergeExpositions(
    [
      {
        workerId: '0',
        text: lines(
          '# HELP jobs_total Jobs done.',
          '# TYPE jobs_total counter',
          'jobs_total{kind="a",worker_id="0"} 2',
          'jobs_total{kind="b",worker_id="0"} 1',
          '',
          '# HELP job_seconds Job time.',
          '# TYPE job_seconds histogram',
          'job_seconds_bucket{le="1",worker_id="0"} 1',
          'job_seconds_bucket{le="+Inf",worker_id="0"} 1',
          'job_seconds_sum{worker_id="0"} 0.5',
          'job_seconds_count{worker_id="0"} 1',
        ),
      },
      {
        workerId: '1',
        text: lines(
          '# HELP jobs_total Jobs done.',
          '# TYPE jobs_total counter',
          'jobs_total{kind="a",worker_id="1"} 5',
          '',
          '# HELP job_seconds Job time.',
          '# TYPE job_seconds histogram',
          'job_seconds_bucket{le="0.1",worker_id="1"} 0',
          'job_seconds_bucket{le="+Inf",worker_id="1"} 2',
          'job_seconds_sum{worker_id="1"} 3',
          'job_seconds_count{worker_id="1"} 2',
        ),
      },
    ],
    'prometheus',
  )
  assert.equal(
    merged,
    lines(
      '# HELP jobs_total Jobs done.',
      '# TYPE jobs_total counter',
      'jobs_total{kind="a",worker_id="0"} 2',
      'jobs_total{kind="b",worker_id="0"} 1',
      'jobs_total{kind="a",worker_id="1"} 5',
      '',
      '# HELP job_seconds Job time.',
      '# TYPE job_seconds histogram',
      'job_seconds_bucket{le="1",worker_id="0"} 1',
      'job_seconds_bucket{le="+Inf",worker_id="0"} 1',
      'job_seconds_sum{worker_id="0"} 0.5',
      'job_seconds_count{worker_id="0"} 1',
      'job_seconds_bucket{le="0.1",worker_id="1"} 0',
      'job_seconds_bucket{le="+Inf",worker_id="1"} 2',
      'job_seconds_sum{worker_id="1"} 3',
      'job_seconds_count{worker_id="1"} 2',
    ),
  )
})

test('OpenMetrics: samples follow their header, not their name; UNIT once; one # EOF', () => {
  const part = (id: string, value: number) => ({
    workerId: id,
    text: lines(
      '# HELP jobs Jobs done.',
      '# TYPE jobs counter',
      `jobs_total{worker_id="${id}"} ${value}`,
      `jobs_created{worker_id="${id}"} 1700000000`,
      '# HELP jobs_total_max Largest batch.',
      '# TYPE jobs_total_max gauge',
      `jobs_total_max{worker_id="${id}"} ${value * 10}`,
      '# TYPE rss_bytes gauge',
      '# UNIT rss_bytes bytes',
      '# HELP rss_bytes Resident memory.',
      `rss_bytes{worker_id="${id}"} ${value * 100}`,
      '# EOF',
    ),
  })
  assert.equal(
    mergeExpositions([part('0', 1), part('1', 2)], 'openmetrics'),
    lines(
      '# HELP jobs Jobs done.',
      '# TYPE jobs counter',
      'jobs_total{worker_id="0"} 1',
      'jobs_created{worker_id="0"} 1700000000',
      'jobs_total{worker_id="1"} 2',
      'jobs_created{worker_id="1"} 1700000000',
      '# HELP jobs_total_max Largest batch.',
      '# TYPE jobs_total_max gauge',
      'jobs_total_max{worker_id="0"} 10',
      'jobs_total_max{worker_id="1"} 20',
      '# HELP rss_bytes Resident memory.',
      '# TYPE rss_bytes gauge',
      '# UNIT rss_bytes bytes',
      'rss_bytes{worker_id="0"} 100',
      'rss_bytes{worker_id="1"} 200',
      '# EOF',
    ),
  )
})

test('families only some workers have are kept, in first-seen order', () => {
  const merged = mergeExpositions(
    [
      { workerId: '0', text: lines('# TYPE a gauge', 'a 1', '# TYPE b gauge', 'b{w="0"} 1') },
      { workerId: '1', text: lines('# TYPE c gauge', 'c 3', '# TYPE b gauge', 'b{w="1"} 2') },
      { workerId: '2', text: lines('# TYPE d gauge', 'd 4', '# EOF') },
    ],
    'openmetrics',
  )
  assert.equal(
    merged,
    lines(
      '# TYPE a gauge',
      'a 1',
      '# TYPE b gauge',
      'b{w="0"} 1',
      'b{w="1"} 2',
      '# TYPE c gauge',
      'c 3',
      '# TYPE d gauge',
      'd 4',
      '# EOF',
    ),
  )
})

test('a family without samples keeps its header, once', () => {
  const empty = lines(
    '# HELP idle Never set.',
    '# TYPE idle gauge',
    '',
    '# HELP up Up.',
    '# TYPE up gauge',
    'up 1',
  )
  assert.equal(
    mergeExpositions(
      [
        { workerId: '0', text: empty },
        { workerId: '1', text: empty },
      ],
      'prometheus',
    ),
    lines(
      '# HELP idle Never set.',
      '# TYPE idle gauge',
      '',
      '# HELP up Up.',
      '# TYPE up gauge',
      'up 1',
      'up 1',
    ),
  )
  // Empty on one worker, with samples on the next.
  assert.equal(
    mergeExpositions(
      [
        { workerId: '0', text: lines('# TYPE idle gauge', '# EOF') },
        { workerId: '1', text: lines('# TYPE idle gauge', 'idle{w="1"} 4', '# EOF') },
      ],
      'openmetrics',
    ),
    lines('# TYPE idle gauge', 'idle{w="1"} 4', '# EOF'),
  )
})

test('a part typing a family differently has its samples left out, and the family is reported', () => {
  const dropped: unknown[] = []
  const merged = mergeExpositions(
    [
      { workerId: '0', text: lines('# HELP a A.', '# TYPE a gauge', 'a{w="0"} 1') },
      {
        workerId: '1',
        text: lines('# HELP a A.', '# TYPE a counter', 'a{w="1"} 2', '# TYPE b gauge', 'b 3'),
      },
      { workerId: '2', text: lines('# TYPE a gauge', 'a{w="2"} 4') },
    ],
    'prometheus',
    (one) => dropped.push(one),
  )
  assert.equal(
    merged,
    lines('# HELP a A.', '# TYPE a gauge', 'a{w="0"} 1', 'a{w="2"} 4', '', '# TYPE b gauge', 'b 3'),
  )
  assert.deepEqual(dropped, [{ workerId: '1', family: 'a', type: 'counter', familyType: 'gauge' }])
})

test('header-like text inside label values is a sample, not a header', () => {
  const merged = mergeExpositions(
    [
      {
        workerId: '0',
        text: lines('# TYPE note gauge', 'note{text="# TYPE fake gauge\\n# EOF"} 1', '# EOF'),
      },
      { workerId: '1', text: lines('# TYPE note gauge', 'note{text="x"} 2', '# EOF') },
    ],
    'openmetrics',
  )
  assert.equal(
    merged,
    lines(
      '# TYPE note gauge',
      'note{text="# TYPE fake gauge\\n# EOF"} 1',
      'note{text="x"} 2',
      '# EOF',
    ),
  )
})

test('a second part for one worker id is left out; the first wins', () => {
  const merged = mergeExpositions(
    [
      { workerId: '2', text: lines('# TYPE jobs_total counter', 'jobs_total{worker_id="2"} 40') },
      { workerId: '2', text: lines('# TYPE jobs_total counter', 'jobs_total{worker_id="2"} 3') },
    ],
    'prometheus',
  )
  assert.equal(merged, lines('# TYPE jobs_total counter', 'jobs_total{worker_id="2"} 40'))
})

test("a part typing a family differently has that family's samples left out", () => {
  const merged = mergeExpositions(
    [
      {
        workerId: '0',
        text: lines(
          '# HELP x Old.',
          '# TYPE x gauge',
          'x{worker_id="0"} 1',
          '',
          '# TYPE y gauge',
          'y 1',
        ),
      },
      {
        workerId: '1',
        text: lines(
          '# HELP x New.',
          '# TYPE x counter',
          'x{worker_id="1"} 9',
          '',
          '# TYPE y gauge',
          'y 2',
        ),
      },
    ],
    'prometheus',
  )
  assert.equal(
    merged,
    lines(
      '# HELP x Old.',
      '# TYPE x gauge',
      'x{worker_id="0"} 1',
      '',
      '# TYPE y gauge',
      'y 1',
      'y 2',
    ),
  )
})

test("extra series, such as the gather's health, merge as one more part", () => {
  const merged = mergeExpositions(
    [
      { workerId: '0', text: lines('# TYPE up gauge', 'up{worker_id="0"} 1', '# EOF') },
      {
        workerId: 'cluster',
        text: lines(
          '# HELP cluster_metrics_workers_answered Workers whose metrics are in this scrape.',
          '# TYPE cluster_metrics_workers_answered gauge',
          'cluster_metrics_workers_answered 1',
          '# EOF',
        ),
      },
    ],
    'openmetrics',
  )
  assert.equal(
    merged,
    lines(
      '# TYPE up gauge',
      'up{worker_id="0"} 1',
      '# HELP cluster_metrics_workers_answered Workers whose metrics are in this scrape.',
      '# TYPE cluster_metrics_workers_answered gauge',
      'cluster_metrics_workers_answered 1',
      '# EOF',
    ),
  )
})

test('other comments, blank lines and anything after # EOF are dropped', () => {
  const merged = mergeExpositions(
    [
      {
        workerId: '0',
        text: '# a comment\n# TYPE a gauge\n\na 1\n\n\na 2\n# EOF\nafter 1\n',
      },
    ],
    'prometheus',
  )
  assert.equal(merged, lines('# TYPE a gauge', 'a 1', 'a 2'))
})

test('samples above any header are kept as a family of their own', () => {
  assert.equal(
    mergeExpositions([{ workerId: '0', text: 'loose 1\n# TYPE a gauge\na 1' }], 'prometheus'),
    lines('loose 1', '', '# TYPE a gauge', 'a 1'),
  )
})

test('no parts: an empty text, or a lone # EOF', () => {
  assert.equal(mergeExpositions([], 'prometheus'), '')
  assert.equal(mergeExpositions([], 'openmetrics'), '# EOF\n')
  assert.equal(mergeExpositions([{ workerId: '0', text: '# EOF\n' }], 'openmetrics'), '# EOF\n')
})

test('parts as bytes merge into the bytes of the same text, multi-byte characters intact', () => {
  const zero = [
    '# HELP jobs_total Jobs “done”.',
    '# TYPE jobs_total counter',
    'jobs_total{kind="é€😀",worker_id="0"} 1',
    '',
  ].join('\n')
  const one = [
    '# HELP jobs_total Jobs “done”.',
    '# TYPE jobs_total counter',
    'jobs_total{kind="ß",worker_id="1"} 2',
    '',
  ].join('\n')
  const expected = [
    '# HELP jobs_total Jobs “done”.',
    '# TYPE jobs_total counter',
    'jobs_total{kind="é€😀",worker_id="0"} 1',
    'jobs_total{kind="ß",worker_id="1"} 2',
    '',
  ].join('\n')
  const merged = mergeRendered(
    [
      { workerId: '0', body: Buffer.from(zero, 'utf8') },
      { workerId: '1', body: one },
    ],
    'prometheus',
  )
  assert.ok(Buffer.isBuffer(merged))
  assert.equal(merged.toString('utf8'), expected)
})
