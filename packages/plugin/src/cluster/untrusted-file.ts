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
import { basename, dirname, join } from 'node:path'

/** What was at the path is not a regular file within the size limit; the message says why. */
export class RefusedFileError extends Error {
  override name = 'RefusedFileError'
}

/** Refused entries kept per path, newest first, for someone to look at; older ones go. */
export const KEPT_REFUSED_ENTRIES = 3

const CHUNK_BYTES = 64 * 1024

/**
 * The contents of the regular file at `path`, at most `maxBytes` long. Throws
 * `RefusedFileError` for anything else (a link, FIFO, directory, device, socket, a larger
 * file) without reading it, and the original error when nothing is there (ENOENT).
 */
export function readRegularFile(path: string, maxBytes: number): Buffer {
  refuseUnlessRegular(lstatSync(path), maxBytes)
  return readOpenedRegularFile(path, maxBytes)
}

/**
 * The second half of `readRegularFile`, exported so that its own checks can be tested alone:
 * opens `path` without following a link (O_NOFOLLOW) and without waiting for a FIFO's writer
 * (O_NONBLOCK), then checks what was opened before reading at most `maxBytes + 1` bytes.
 */
export function readOpenedRegularFile(path: string, maxBytes: number): Buffer {
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
    refuseUnlessRegular(fstatSync(fd), maxBytes)
    return readAtMost(fd, maxBytes)
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

function removeOldRefused(path: string): void {
  const dir = dirname(path)
  const prefix = `${basename(path)}.refused-`
  const stamped = readdirSync(dir)
    .filter((name) => name.startsWith(prefix) && /^\d+$/.test(name.slice(prefix.length)))
    .map((name) => ({ name, stamp: Number(name.slice(prefix.length)) }))
    .sort((a, b) => b.stamp - a.stamp)
  for (const { name } of stamped.slice(KEPT_REFUSED_ENTRIES)) {
    try {
      // rm does not follow a link: a refused link goes, never what it points at.
      rmSync(join(dir, name), { recursive: true, force: true })
    } catch {
      // Best effort: an old entry that cannot be removed (e.g. a directory we may not empty)
      // only takes room; it must not fail the start that moved a new one aside.
    }
  }
}
