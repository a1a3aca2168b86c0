// Reading a file that anything may have put at its path, and moving aside what was refused.
// A plain readFileSync trusts the path: a FIFO there blocks open() for ever, a symbolic link to
// /dev/zero is read until memory runs out, a directory throws at every start. Here only a
// regular file of bounded size is read, checked before it is opened and again on the opened
// descriptor (the path may be swapped in between).
import {
  closeSync,
  constants,
  fstatSync,
  lstatSync,
  openSync,
  readdirSync,
  readSync,
  renameSync,
  rmSync,
  type Stats,
} from 'node:fs'
import { dirname, join } from 'node:path'

/** What was at the path is not a regular file within the size limit; the message says why. */
export class RefusedFileError extends Error {
  override name = 'RefusedFileError'
}

/** Refused entries kept per path, newest first, for someone to look at; older ones go. */
export const KEPT_REFUSED_ENTRIES = 3

/**
 * Refused entries kept per directory, whatever their paths (a claim's path is new for every
 * process, so the per-path limit alone bounds nothing): the newest this many, and of those only
 * as many as fit in `KEPT_REFUSED_BYTES`.
 */
export const KEPT_REFUSED_PER_DIRECTORY = 10
/** Two handovers of the largest size read (8 MiB each) and a little more. */
export const KEPT_REFUSED_BYTES = 17 * 1024 * 1024

const CHUNK_BYTES = 64 * 1024

/**
 * The contents of the regular file at `path`, at most `maxBytes` long. Throws
 * `RefusedFileError` for anything else (a link, FIFO, directory, device, socket, a larger
 * file) without reading it, and the original error when nothing is there (ENOENT).
 */
export function readRegularFile(path: string, maxBytes: number): Buffer {
  return readRegularFileAndStats(path, maxBytes).bytes
}

/** As `readRegularFile`, with the opened file's stats (its modification time, say). */
export function readRegularFileAndStats(
  path: string,
  maxBytes: number,
): { bytes: Buffer; stats: Stats } {
  refuseUnlessRegular(lstatSync(path), maxBytes)
  return readOpenedFile(path, maxBytes)
}

/**
 * The second half of `readRegularFile`, exported so that its own checks can be tested alone:
 * opens `path` without following a link (O_NOFOLLOW) and without waiting for a FIFO's writer
 * (O_NONBLOCK), then checks what was opened before reading at most `maxBytes + 1` bytes.
 */
export function readOpenedRegularFile(path: string, maxBytes: number): Buffer {
  return readOpenedFile(path, maxBytes).bytes
}

function readOpenedFile(path: string, maxBytes: number): { bytes: Buffer; stats: Stats } {
  let fd: number
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ELOOP') {
      throw new RefusedFileError('is a symbolic link')
    }
    throw err
  }
  try {
    const stats = fstatSync(fd)
    refuseUnlessRegular(stats, maxBytes)
    return { bytes: readAtMost(fd, maxBytes), stats }
  } finally {
    closeSync(fd)
  }
}

function refuseUnlessRegular(stats: Stats, maxBytes: number): void {
  const kind = entryKind(stats)
  if (kind !== 'a regular file') throw new RefusedFileError(`is ${kind}`)
  if (stats.size > maxBytes) throw new RefusedFileError(`is ${sizeAbove(stats.size, maxBytes)}`)
}

/** Reads to the end, or until the file proves longer than `maxBytes` (it may still grow). */
function readAtMost(fd: number, maxBytes: number): Buffer {
  const chunks: Buffer[] = []
  let total = 0
  for (;;) {
    const chunk = Buffer.allocUnsafe(Math.min(CHUNK_BYTES, maxBytes + 1 - total))
    const read = readSync(fd, chunk, 0, chunk.length, null)
    if (read === 0) break
    chunks.push(chunk.subarray(0, read))
    total += read
    if (total > maxBytes) {
      throw new RefusedFileError(`grew while being read to ${sizeAbove(total, maxBytes)}`)
    }
  }
  return Buffer.concat(chunks, total)
}

function entryKind(stats: Stats): string {
  if (stats.isFile()) return 'a regular file'
  if (stats.isSymbolicLink()) return 'a symbolic link'
  if (stats.isDirectory()) return 'a directory'
  if (stats.isFIFO()) return 'a FIFO'
  if (stats.isSocket()) return 'a socket'
  if (stats.isCharacterDevice()) return 'a character device'
  if (stats.isBlockDevice()) return 'a block device'
  return 'not a regular file'
}

/** E.g. "44 MiB (46137344 bytes), above the limit of 8 MiB". */
function sizeAbove(bytes: number, maxBytes: number): string {
  return `${size(bytes)}, above the limit of ${size(maxBytes)}`
}

function size(bytes: number): string {
  if (bytes < MIB) return `${bytes} bytes`
  const mebibytes = `${Number((bytes / MIB).toFixed(1))} MiB`
  return bytes % MIB === 0 ? mebibytes : `${mebibytes} (${bytes} bytes)`
}

const MIB = 2 ** 20

/**
 * Renames whatever is at `path` (file, FIFO, directory, link: it is not opened) to
 * `<path>.refused-<epoch ms>` beside it, so that it never blocks a start again and stays for
 * someone to look at, and removes all but the newest `KEPT_REFUSED_ENTRIES` of them. Returns the
 * new path, or `undefined` if nothing was at `path` any more. `reason` goes into the error
 * thrown if the entry cannot be moved.
 */
export function moveAside(path: string, reason: string): string | undefined {
  // Never onto an earlier refused entry: renaming onto it would replace a file, and fail on a
  // directory. The stamp then reads a millisecond late, which sorts the entries the same way.
  let stamp = Date.now()
  while (lstatSync(refusedName(path, stamp), { throwIfNoEntry: false }) !== undefined) stamp++
  const target = refusedName(path, stamp)
  try {
    renameSync(path, target)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw new Error(`cannot move ${path} aside (${reason}): ${(err as Error).message}`, {
      cause: err,
    })
  }
  removeOldRefused(path)
  return target
}

function refusedName(path: string, stamp: number): string {
  return `${path}.refused-${stamp}`
}

const REFUSED_NAME = /^(.+)\.refused-(\d+)$/

function removeOldRefused(path: string): void {
  const dir = dirname(path)
  const stamped = readdirSync(dir)
    .map((name) => ({ name, match: REFUSED_NAME.exec(name) }))
    .filter(({ match }) => match !== null)
    .map(({ name, match }) => ({
      name,
      of: (match as RegExpExecArray)[1],
      stamp: Number((match as RegExpExecArray)[2]),
    }))
    .sort((a, b) => b.stamp - a.stamp)
  const keptOf = new Map<string, number>()
  let kept = 0
  let bytes = 0
  for (const entry of stamped) {
    const ofPath = keptOf.get(entry.of) ?? 0
    // lstat: a link's own size, a directory's entry size; what it holds is not followed.
    const size = lstatSync(join(dir, entry.name), { throwIfNoEntry: false })?.size ?? 0
    const keep =
      ofPath < KEPT_REFUSED_ENTRIES &&
      kept < KEPT_REFUSED_PER_DIRECTORY &&
      bytes + size <= KEPT_REFUSED_BYTES
    if (keep) {
      keptOf.set(entry.of, ofPath + 1)
      kept++
      bytes += size
      continue
    }
    try {
      // rm does not follow a link: a refused link goes, never what it points at.
      rmSync(join(dir, entry.name), { recursive: true, force: true })
    } catch {
      // Best effort: an old entry that cannot be removed (e.g. a directory we may not empty)
      // only takes room; it must not fail the start that moved a new one aside.
    }
  }
}
