// Reading a path anything may have been put at: each check is tested on its own, so that losing
// one is not hidden by the one before it; and refused entries of every kind are moved aside.
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import {
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  truncateSync,
  writeFileSync,
} from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, test } from 'node:test'
import {
  KEPT_REFUSED_BYTES,
  KEPT_REFUSED_PER_DIRECTORY,
  moveAside,
  readOpenedRegularFile,
  readRegularFile,
} from '../../packages/plugin/src/succession/untrusted-file'

const root = mkdtempSync(join(tmpdir(), 'untrusted-file-'))
after(() => rmSync(root, { recursive: true, force: true }))
let dirs = 0

function newDir(): string {
  const dir = join(root, String(dirs++))
  mkdirSync(dir)
  return dir
}

test('a regular file within the limit is read whole', () => {
  const path = join(newDir(), 'f')
  writeFileSync(path, 'abcdef')
  assert.equal(readRegularFile(path, 6).toString(), 'abcdef')
  assert.throws(
    () => readRegularFile(path, 5),
    /^RefusedFileError: is 6 bytes, above the limit of 5 bytes$/,
  )
})

test('a FIFO is refused once opened, without waiting for a writer (O_NONBLOCK)', () => {
  // Past the check before opening: a blocking open would wait for ever, as no one writes.
  const path = join(newDir(), 'fifo')
  execFileSync('mkfifo', [path])
  assert.throws(() => readOpenedRegularFile(path, 100), /^RefusedFileError: is a FIFO$/)
})

test('a symbolic link is refused at open, not followed (O_NOFOLLOW)', () => {
  const dir = newDir()
  writeFileSync(join(dir, 'target'), 'readable')
  symlinkSync('target', join(dir, 'link'))
  assert.equal(readOpenedRegularFile(join(dir, 'target'), 100).toString(), 'readable')
  assert.throws(
    () => readOpenedRegularFile(join(dir, 'link'), 100),
    /^RefusedFileError: is a symbolic link$/,
  )
})

test('a directory is refused by what the opened descriptor is', () => {
  assert.throws(() => readOpenedRegularFile(newDir(), 100), /^RefusedFileError: is a directory$/)
})

test('nothing at the path throws the original ENOENT', () => {
  const path = join(newDir(), 'absent')
  assert.throws(() => readRegularFile(path, 100), { code: 'ENOENT' })
  assert.throws(() => readOpenedRegularFile(path, 100), { code: 'ENOENT' })
})

test('moving aside renames the entry beside it, stamped, without replacing an earlier one', (t) => {
  t.mock.timers.enable({ apis: ['Date'], now: 5000 })
  const dir = newDir()
  const path = join(dir, '1.handover.json')
  writeFileSync(path, 'first')
  assert.equal(moveAside(path, 'test'), `${path}.refused-5000`)
  writeFileSync(path, 'second')
  // The same millisecond: the second goes one stamp later rather than over the first.
  assert.equal(moveAside(path, 'test'), `${path}.refused-5001`)
  assert.equal(readFileSync(`${path}.refused-5000`, 'utf8'), 'first')
  assert.equal(readFileSync(`${path}.refused-5001`, 'utf8'), 'second')
  assert.equal(moveAside(path, 'test'), undefined)
})

test('moving aside keeps the newest three refused entries of that name, whatever their kind', () => {
  const dir = newDir()
  const path = join(dir, '1.handover.json')
  const elsewhere = newDir()
  writeFileSync(join(elsewhere, 'keep-me'), 'x')
  mkdirSync(`${path}.refused-1000`)
  writeFileSync(join(`${path}.refused-1000`, 'inside'), 'x')
  symlinkSync(elsewhere, `${path}.refused-2000`)
  execFileSync('mkfifo', [`${path}.refused-3000`])
  writeFileSync(`${path}.refused-4000`, 'x')
  // Not this path's refused entries: left alone.
  writeFileSync(join(dir, '2.handover.json.refused-10'), 'x')
  writeFileSync(`${path}.refused-notes`, 'x')

  mkdirSync(path)
  const moved = moveAside(path, 'is a directory')
  assert.ok(moved !== undefined && lstatSync(moved).isDirectory())
  assert.deepEqual(
    readdirSync(dir).sort(),
    [
      '1.handover.json.refused-3000',
      '1.handover.json.refused-4000',
      moved.slice(dir.length + 1),
      '1.handover.json.refused-notes',
      '2.handover.json.refused-10',
    ].sort(),
  )
  // The removed link went, not the directory it pointed at.
  assert.deepEqual(readdirSync(elsewhere), ['keep-me'])
})

test('refused entries of paths used once (claims) are bounded per directory, by count', () => {
  const dir = newDir()
  // Each process claims under a path of its own: 30 of them, each refused once.
  for (let i = 0; i < 30; i++)
    writeFileSync(join(dir, `1.handover.p${i}.claimed.refused-${1000 + i}`), 'x')
  const path = join(dir, '1.handover.pnew.claimed')
  writeFileSync(path, 'newest')
  const moved = moveAside(path, 'test')
  const left = readdirSync(dir)
  assert.equal(left.length, KEPT_REFUSED_PER_DIRECTORY)
  assert.ok(moved !== undefined && left.includes(moved.slice(dir.length + 1)), 'the newest stays')
  assert.ok(left.includes('1.handover.p29.claimed.refused-1029'))
  assert.ok(!left.includes('1.handover.p0.claimed.refused-1000'), 'the oldest went')
})

test('refused entries are bounded per directory by their bytes too', () => {
  const dir = newDir()
  const eightMiB = 8 * 1024 * 1024
  for (let i = 0; i < 5; i++) {
    const name = join(dir, `1.handover.p${i}.claimed.refused-${1000 + i}`)
    writeFileSync(name, '')
    truncateSync(name, eightMiB) // sparse: its size without the disk
  }
  const path = join(dir, '1.handover.pnew.claimed')
  writeFileSync(path, '')
  truncateSync(path, eightMiB)
  moveAside(path, 'test')
  const left = readdirSync(dir)
  const bytes = left.reduce((sum, name) => sum + lstatSync(join(dir, name)).size, 0)
  assert.ok(bytes <= KEPT_REFUSED_BYTES, `${bytes} bytes kept`)
  assert.equal(left.length, Math.floor(KEPT_REFUSED_BYTES / eightMiB))
})
