// The handover: a stopping process' final carried values, written for the next process of its
// worker id. It is a file in the private socket directory, so it reaches a successor that is
// already running (pm2 reload) and one that starts later (pm2 restart, stop then start) alike.
// Written atomically (rename), claimed by its reader with a rename before use (a crash can lose
// a handover, which resets the series, but never apply one twice). Whatever is found at its path is read
// as untrusted: only a bounded regular file, and anything refused is moved aside.
import { lstatSync, renameSync, unlinkSync, writeFileSync } from 'node:fs'
import { isPlainObject } from '../lib/plain-object'
import type { CarriedFamily } from './carried-family'
import { validateFamilies } from './handover-families'
import type { NativeSeries } from './native-carry'
import { moveAside, RefusedFileError, readRegularFileAndStats } from './untrusted-file'

export { moveAside }

/** 2 added `instance` and `writtenAt`; a file of another version is refused. */
const VERSION = 2

/**
 * The largest handover file read. The plugin's own handovers take about 165 bytes per value,
 * so this holds about 50,000 values; the limit is there so that a stray file cannot make a
 * worker allocate without bound.
 */
export const MAX_HANDOVER_BYTES = 8 * 1024 * 1024

/**
 * The most values (counter series; histogram buckets, sums and counts) a handover may hold in
 * all. The plugin's two metrics take 1 + (buckets + 3) values per method, route and status
 * code: 16 with the 12 default buckets, so this is about 3,000 such label sets per worker, far
 * above a service with a hundred routes (a few hundred). It is also about what
 * `MAX_HANDOVER_BYTES` holds at the ~165 bytes a value of the plugin's own takes: the file limit
 * bounds the bytes read, this bounds the series built from them, however small each is.
 */
export const MAX_HANDOVER_SERIES = 50_000

/**
 * A handover is for the next process, not storage: callers refuse one older than this. One left
 * longer (a worker id scaled away and back, a long stop) is more likely a leftover than a
 * predecessor's last seconds, and Prometheus has long marked its series stale, so starting from
 * zero is an ordinary counter reset to it.
 */
export const MAX_HANDOVER_AGE_MS = 10 * 60 * 1000

/**
 * How far in the future `writtenAt` may lie. Writer and reader share the host's clock, so a
 * handover from the future means the clock was stepped back (NTP) or the file was not written
 * by a process of this app; a small step is tolerated, a larger one refuses the handover (for
 * now: the refusal is made again at each use, never kept).
 */
export const MAX_HANDOVER_CLOCK_STEP_MS = 10 * 1000

const INSTANCE_PATTERN = /^[A-Za-z0-9_-]{6,64}$/

export interface Handover {
  /** Which app and port the series belong to: a handover never crosses them. */
  scope: string
  workerId: string
  /** The process that wrote it. */
  pid: number
  /** The writing process' instance (`<pid>-<token>`, as in its socket's name): pids are reused, this is not. */
  instance: string
  /** When it was written, in epoch ms, as its writer says (see `handoverTimeProblem`). */
  writtenAt: number
  /**
   * The file's modification time, in epoch ms, when read from a file: a writer's claim is not
   * taken for younger than the file itself.
   */
  fileModifiedAt?: number
  families: CarriedFamily[]
  /**
   * The native histograms of the carried histograms' series, if the writer kept any. Optional:
   * a reader that knows none ignores it, and each state is checked when it is added.
   */
  native?: NativeSeries[]
}

/** A handover as a writer gives it: the time is filled in when absent. */
export type HandoverContent = Omit<Handover, 'writtenAt' | 'fileModifiedAt'> &
  Partial<Pick<Handover, 'writtenAt'>>

export class MalformedHandoverError extends Error {
  override name = 'MalformedHandoverError'
}

/**
 * Writes `handover` to `path` atomically (a temporary file renamed over it), readable by us only.
 * Whatever is in the way (a directory, a FIFO at either path) is moved aside first, as a start
 * moves it aside: the counts go where the successor looks. Returns where such entries went, for
 * the caller to say so. Throws an error naming `path` if the handover could not be written; no
 * temporary file is left then.
 */
export function writeHandover(path: string, handover: HandoverContent): string[] {
  const complete: HandoverContent = {
    ...handover,
    writtenAt: handover.writtenAt ?? Date.now(),
  }
  const temporary = `${path}.${process.pid}.tmp`
  try {
    const movedAside = [moveAsideUnlessFile(temporary), moveAsideUnlessFile(path)].filter(
      (moved): moved is string => moved !== undefined,
    )
    writeFileSync(temporary, JSON.stringify({ version: VERSION, ...complete }), { mode: 0o600 })
    renameSync(temporary, path)
    return movedAside
  } catch (err) {
    try {
      unlinkSync(temporary)
    } catch {
      // Never written, or not ours to remove: the error below is what matters.
    }
    throw new Error(`cannot write the handover ${path}: ${(err as Error).message}`, {
      cause: err,
    })
  }
}

/** A regular file is replaced by a rename; anything else there would make it fail. */
function moveAsideUnlessFile(path: string): string | undefined {
  const found = lstatSync(path, { throwIfNoEntry: false })
  if (found === undefined || found.isFile()) return undefined
  return moveAside(path, 'it was in the way of a handover')
}

/**
 * Why `handover` is not from the moment a predecessor could have stopped: older than a stop
 * lasts, or dated in the future beyond a clock step. Made again at each use, so a clock that
 * was stepped back and has caught up again accepts what it refused.
 */
export function handoverTimeProblem(handover: Handover, now = Date.now()): string | undefined {
  const ahead = handover.writtenAt - now
  if (ahead > MAX_HANDOVER_CLOCK_STEP_MS) {
    return `its writtenAt is ${Math.round(ahead / 1000)} s in the future`
  }
  // By the older of its writer's claim and its file's time: a rewritten claim makes no old file young.
  const age = now - Math.min(handover.writtenAt, handover.fileModifiedAt ?? handover.writtenAt)
  if (age > MAX_HANDOVER_AGE_MS) {
    return `it was written ${Math.round(age / 1000)} s ago, longer than a stop lasts`
  }
  return undefined
}

/** The `worker_id` label a carried series names, if it names another worker than `workerId`. */
function foreignWorkerId(handover: Handover, workerId: string): string | undefined {
  for (const family of handover.families) {
    for (const value of family.values) {
      const labelled = value.labels.worker_id
      if (labelled !== undefined && String(labelled) !== workerId) return String(labelled)
    }
  }
  for (const series of handover.native ?? []) {
    const labelled = series.labels.worker_id
    if (labelled !== undefined && String(labelled) !== workerId) return String(labelled)
  }
  return undefined
}

/**
 * Why `handover` does not continue the counts of `workerId` in `scope` now (another app, port
 * or worker, or older than a stop lasts), or `undefined` if it does.
 */
export function handoverMismatch(
  handover: Handover,
  scope: string,
  workerId: string,
  now = Date.now(),
): string | undefined {
  return handoverOwnerMismatch(handover, scope, workerId) ?? handoverTimeProblem(handover, now)
}

/** Why `handover` is not `workerId`'s of `scope` (its file's name says whose it is), or `undefined`. */
export function handoverOwnerMismatch(
  handover: Handover,
  scope: string,
  workerId: string,
): string | undefined {
  if (handover.scope !== scope || handover.workerId !== workerId) {
    return `it is for ${handover.scope} worker ${handover.workerId}`
  }
  // Its series are this worker's: one labelled with another would be a second copy of that
  // worker's series in every scrape.
  const foreign = foreignWorkerId(handover, workerId)
  if (foreign !== undefined) {
    return `it carries series labelled worker_id="${foreign}", not this worker's "${workerId}"`
  }
  return undefined
}

/**
 * Reads and validates the handover at `path` without removing it. Throws
 * `MalformedHandoverError` naming the problem for anything that is not a valid handover file
 * (a link, FIFO, directory, a file above `MAX_HANDOVER_BYTES`, bad content), and the original
 * ENOENT error when there is none.
 */
export function readHandoverFile(path: string): Handover {
  let bytes: Buffer
  let modifiedAt: number
  try {
    const read = readRegularFileAndStats(path, MAX_HANDOVER_BYTES)
    bytes = read.bytes
    modifiedAt = read.stats.mtimeMs
  } catch (err) {
    if (err instanceof RefusedFileError) {
      throw new MalformedHandoverError(`handover ${path} ${err.message}`, { cause: err })
    }
    throw err
  }
  let text: string
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes)
  } catch {
    throw new MalformedHandoverError(`handover ${path} is not UTF-8 text`)
  }
  return { ...parseHandover(text), fileModifiedAt: Math.floor(modifiedAt) }
}

/**
 * Validates a handover file's text. Throws `MalformedHandoverError` naming the problem. Its
 * time is checked at each use (`handoverTimeProblem`), not here.
 */
export function parseHandover(text: string): Handover {
  let parsed: unknown
  try {
    parsed = JSON.parse(text)
  } catch {
    throw new MalformedHandoverError('handover is not JSON')
  }
  const fail = (what: string): never => {
    throw new MalformedHandoverError(`malformed handover: ${what}`)
  }
  if (!isPlainObject(parsed)) return fail('not an object')
  if (typeof parsed.version !== 'number') fail('version is not a number')
  if (parsed.version !== VERSION) {
    fail(`version ${parsed.version}, where this process reads version ${VERSION}`)
  }
  if (!isShortText(parsed.scope)) fail(`scope is not a string of 1 to ${MAX_TEXT_CHARS} characters`)
  if (!isShortText(parsed.workerId)) {
    fail(`workerId is not a string of 1 to ${MAX_TEXT_CHARS} characters`)
  }
  if (!isPositiveInteger(parsed.pid)) fail('pid is not a positive integer')
  if (typeof parsed.instance !== 'string' || !INSTANCE_PATTERN.test(parsed.instance)) {
    fail('instance is not 6 to 64 of A-Z a-z 0-9 _ -')
  }
  if (!isPositiveInteger(parsed.writtenAt)) fail('writtenAt is not a positive integer')
  const families = validateFamilies(parsed.families, MAX_HANDOVER_SERIES, fail)
  const handover: Handover = {
    scope: parsed.scope as string,
    workerId: parsed.workerId as string,
    pid: parsed.pid as number,
    instance: parsed.instance as string,
    writtenAt: parsed.writtenAt as number,
    families,
  }
  if (parsed.native !== undefined) handover.native = validateNativeSeries(parsed.native, fail)
  return handover
}

/** The shape of each native entry; its histogram state is checked when it is added. */
function validateNativeSeries(value: unknown, fail: (what: string) => never): NativeSeries[] {
  if (!Array.isArray(value)) return fail('native is not an array')
  if (value.length > MAX_HANDOVER_SERIES) {
    return fail(`native holds more than ${MAX_HANDOVER_SERIES} series`)
  }
  for (const entry of value) {
    if (!isPlainObject(entry) || !isShortText(entry.name) || !isPlainObject(entry.labels)) {
      return fail('a native entry is not { name, labels, state }')
    }
    if (!Object.values(entry.labels).every((v) => typeof v === 'string')) {
      return fail(`a native entry of ${entry.name} has a label value that is not a string`)
    }
    if (!isPlainObject(entry.state)) return fail(`a native entry of ${entry.name} has no state`)
  }
  return value as NativeSeries[]
}

/** Scope and worker id are short names; a long one is not from this app, and would fill logs. */
const MAX_TEXT_CHARS = 256

function isShortText(value: unknown): value is string {
  return typeof value === 'string' && value.length > 0 && value.length <= MAX_TEXT_CHARS
}

function isPositiveInteger(value: unknown): value is number {
  return Number.isSafeInteger(value) && (value as number) > 0
}
