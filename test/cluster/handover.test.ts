// The handover file: written atomically, taken once, and refused when it is not what a
// stopping process writes.
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import {
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, test } from 'node:test'
import {
  handoverAge,
  MAX_HANDOVER_AGE_MS,
  MAX_HANDOVER_BYTES,
  PROCESS_INSTANCE,
  parseHandover,
  readHandoverFile,
  takeHandover,
  writeHandover,
} from '../../src/cluster/handover'

const dir = mkdtempSync(join(tmpdir(), 'handover-'))
after(() => rmSync(dir, { recursive: true, force: true }))
let paths = 0

/** A handover path of its own, in a directory of its own, for each test. */
function newPath(): string {
  const own = join(dir, `d${paths++}`)
  mkdirSync(own)
  return join(own, '1.handover.json')
}

/** The entries `takeHandover` moved aside from `path`. */
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

test('a handover is taken once, then it is gone', () => {
  const path = join(dir, '1.handover.json')
  writeHandover(path, handover)
  assert.deepEqual(takeHandover(path), handover)
  assert.equal(existsSync(path), false)
  assert.equal(takeHandover(path), undefined)
})

test('a written handover carries this process’ instance and the time, and is ours alone', (t) => {
  t.mock.timers.enable({ apis: ['Date'], now: 1_700_000_123_456 })
  const path = newPath()
  const { instance: _instance, writtenAt: _writtenAt, ...content } = handover
  writeHandover(path, content)
  assert.equal(lstatSync(path).mode & 0o777, 0o600)
  const read = readHandoverFile(path)
  assert.equal(read.instance, PROCESS_INSTANCE)
  assert.match(PROCESS_INSTANCE, /^[A-Za-z0-9_-]{6,64}$/)
  assert.equal(read.writtenAt, 1_700_000_123_456)
})

test('a handover’s age is the time since it was written; ten minutes is too old', () => {
  const now = handover.writtenAt + 11 * 60 * 1000
  assert.equal(handoverAge(handover, now), 660_000)
  assert.ok(handoverAge(handover, now) > MAX_HANDOVER_AGE_MS)
  assert.ok(handoverAge(handover, handover.writtenAt + 9 * 60 * 1000) <= MAX_HANDOVER_AGE_MS)
})

test('a handover written in the future beyond a clock step of a minute is refused', () => {
  const text = JSON.stringify({ version: 2, ...handover })
  assert.equal(parseHandover(text, handover.writtenAt - 60_000).writtenAt, handover.writtenAt)
  assert.throws(
    () => parseHandover(text, handover.writtenAt - 61_000),
    /writtenAt is 61 s in the future/,
  )
})

test('malformed handovers are refused with the reason', () => {
  const valid = { version: 2, ...handover }
  const cases: Array<[unknown, RegExp]> = [
    ['not json', /not JSON/],
    [[], /not an object/],
    [{ ...valid, version: 1 }, /version 1, where this process reads version 2/],
    [{ ...valid, version: undefined }, /version undefined/],
    [{ ...valid, scope: 5 }, /scope/],
    [{ ...valid, pid: 'x' }, /pid/],
    [{ ...valid, pid: 0 }, /pid is not a positive integer/],
    [{ ...valid, instance: 'short' }, /instance is not/],
    [{ ...valid, instance: 'has space' }, /instance is not/],
    [{ ...valid, instance: 'x'.repeat(65) }, /instance is not/],
    [{ ...valid, writtenAt: 0 }, /writtenAt is not a positive integer/],
    [{ ...valid, writtenAt: 1.5 }, /writtenAt is not a positive integer/],
    [{ ...valid, writtenAt: '1700000000000' }, /writtenAt is not a positive integer/],
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

test('a malformed handover file is moved aside when taken, so it is refused only once', () => {
  const path = newPath()
  writeFileSync(path, '{"version":1')
  assert.throws(() => takeHandover(path), /not JSON/)
  assert.equal(existsSync(path), false)
  const [refused] = refusedBeside(path)
  assert.equal(readFileSync(refused, 'utf8'), '{"version":1')
  assert.equal(takeHandover(path), undefined)
})

test('a handover of format version 1 (an older release) is refused and moved aside', () => {
  const path = newPath()
  const { instance: _instance, writtenAt: _writtenAt, ...v1 } = handover
  writeFileSync(path, JSON.stringify({ version: 1, ...v1 }))
  assert.throws(() => takeHandover(path), /version 1, where this process reads version 2/)
  assert.equal(refusedBeside(path).length, 1)
})

test('a FIFO at the handover path is refused at once, and moved aside', () => {
  const path = newPath()
  execFileSync('mkfifo', [path])
  assert.throws(() => readHandoverFile(path), /^MalformedHandoverError: handover .* is a FIFO$/)
  assert.throws(() => takeHandover(path), /is a FIFO/)
  assert.equal(existsSync(path), false)
  const refused = refusedBeside(path)
  assert.equal(refused.length, 1)
  assert.ok(lstatSync(refused[0]).isFIFO())
  assert.equal(takeHandover(path), undefined)
})

test('a symbolic link at the handover path is refused without being followed', () => {
  const path = newPath()
  // Followed, it would be read until the size limit, or for ever without one.
  symlinkSync('/dev/zero', path)
  assert.throws(() => readHandoverFile(path), /is a symbolic link$/)
  assert.throws(() => takeHandover(path), /is a symbolic link$/)
  const refused = refusedBeside(path)
  assert.equal(refused.length, 1)
  assert.ok(lstatSync(refused[0]).isSymbolicLink())
})

test('a directory at the handover path is refused and moved aside, so later starts go on', () => {
  const path = newPath()
  mkdirSync(path)
  writeFileSync(join(path, 'inside'), 'x')
  assert.throws(() => takeHandover(path), /is a directory$/)
  assert.equal(existsSync(path), false)
  const refused = refusedBeside(path)
  assert.deepEqual(readdirSync(refused[0]), ['inside'])
  assert.equal(takeHandover(path), undefined)
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

test('no handover file throws the original ENOENT, which takeHandover reads as none', () => {
  const path = newPath()
  assert.throws(() => readHandoverFile(path), { code: 'ENOENT' })
  assert.equal(takeHandover(path), undefined)
  assert.deepEqual(refusedBeside(path), [])
})
