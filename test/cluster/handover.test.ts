// The handover file: written atomically, taken once, and refused when it is not what a
// stopping process writes.
import assert from 'node:assert/strict'
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, test } from 'node:test'
import { parseHandover, takeHandover, writeHandover } from '../../src/cluster/handover'

const dir = mkdtempSync(join(tmpdir(), 'handover-'))
after(() => rmSync(dir, { recursive: true, force: true }))

const handover = {
  scope: 'webapp:5000',
  workerId: '1',
  pid: 4242,
  families: [
    {
      name: 'http_requests_total',
      type: 'counter' as const,
      values: [{ labels: { route: '/', worker_id: '1' }, value: 12 }],
    },
  ],
}

test('a handover is taken once, then it is gone', () => {
  const path = join(dir, '1.handover.json')
  writeHandover(path, handover)
  assert.deepEqual(takeHandover(path), handover)
  assert.equal(existsSync(path), false)
  assert.equal(takeHandover(path), undefined)
})

test('malformed handovers are refused with the reason', () => {
  const valid = { version: 1, ...handover }
  const cases: Array<[unknown, RegExp]> = [
    ['not json', /not JSON/],
    [[], /not an object/],
    [{ ...valid, version: 2 }, /version 2/],
    [{ ...valid, scope: 5 }, /scope/],
    [{ ...valid, pid: 'x' }, /pid/],
    [{ ...valid, families: {} }, /families/],
    [{ ...valid, families: [{ name: 'g', type: 'gauge', values: [] }] }, /type gauge/],
    [
      { ...valid, families: [{ ...handover.families[0], values: [{ labels: {}, value: -1 }] }] },
      /finite count/,
    ],
    [
      { ...valid, families: [{ ...handover.families[0], values: [{ labels: {}, value: 'NaN' }] }] },
      /finite count/,
    ],
    [
      { ...valid, families: [{ ...handover.families[0], values: [{ value: 1 }] }] },
      /without labels/,
    ],
    [
      {
        ...valid,
        families: [{ ...handover.families[0], values: [{ labels: { a: {} }, value: 1 }] }],
      },
      /label value/,
    ],
  ]
  for (const [content, reason] of cases) {
    const text = typeof content === 'string' ? content : JSON.stringify(content)
    assert.throws(() => parseHandover(text), reason, text)
  }
})

test('a malformed handover file is removed when taken, so it is refused only once', () => {
  const path = join(dir, '2.handover.json')
  writeFileSync(path, '{"version":1')
  assert.throws(() => takeHandover(path), /not JSON/)
  assert.equal(existsSync(path), false)
})
