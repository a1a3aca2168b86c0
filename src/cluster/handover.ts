// The handover: a stopping process' final carried values, written for the next process of its
// worker id. It is a file in the private socket directory, so it reaches a successor that is
// already running (pm2 reload) and one that starts later (pm2 restart, stop then start) alike.
// Written atomically (rename), read once (unlinked before use: a crash can lose a handover,
// which resets the series, but never apply one twice). Whatever is found at its path is read
// as untrusted: only a bounded regular file, and anything refused is moved aside.
import { renameSync, unlinkSync, writeFileSync } from 'node:fs'
import type { CarriedFamily, CarriedValue } from './carried-metrics'
import { moveAside, RefusedFileError, readRegularFile } from './untrusted-file'

export { moveAside }

const VERSION = 1

/**
 * The largest handover file read. The plugin's own handovers take about 160 bytes per value,
 * so this holds tens of thousands of series; the limit is there so that a stray file cannot
 * make a worker allocate without bound.
 */
export const MAX_HANDOVER_BYTES = 8 * 1024 * 1024

export interface Handover {
  /** Which app and port the series belong to: a handover never crosses them. */
  scope: string
  workerId: string
  /** The process that wrote it. */
  pid: number
  families: CarriedFamily[]
}

export class MalformedHandoverError extends Error {
  override name = 'MalformedHandoverError'
}

export function writeHandover(path: string, handover: Handover): void {
  const temporary = `${path}.${process.pid}.tmp`
  writeFileSync(temporary, JSON.stringify({ version: VERSION, ...handover }), { mode: 0o600 })
  renameSync(temporary, path)
}

/**
 * Reads and validates the handover at `path` without removing it. Throws
 * `MalformedHandoverError` naming the problem for anything that is not a valid handover file
 * (a link, FIFO, directory, a file above `MAX_HANDOVER_BYTES`, bad content), and the original
 * ENOENT error when there is none.
 */
export function readHandoverFile(path: string): Handover {
  let bytes: Buffer
  try {
    bytes = readRegularFile(path, MAX_HANDOVER_BYTES)
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
  return parseHandover(text)
}

/**
 * Takes the handover at `path`: reads it, removes it, and returns it validated; `undefined` if
 * there is none. A refused one is moved aside (see `moveAside`) before `MalformedHandoverError`
 * is thrown, so it is refused once and never blocks a later start.
 */
export function takeHandover(path: string): Handover | undefined {
  let handover: Handover
  try {
    handover = readHandoverFile(path)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    if (err instanceof MalformedHandoverError) moveAside(path, err.message)
    throw err
  }
  try {
    unlinkSync(path)
  } catch (err) {
    // Someone else took it between our read and unlink: it is theirs.
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw err
  }
  return handover
}

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
  if (!isObject(parsed)) return fail('not an object')
  if (parsed.version !== VERSION) fail(`version ${String(parsed.version)} is not ${VERSION}`)
  if (typeof parsed.scope !== 'string') fail('scope is not a string')
  if (typeof parsed.workerId !== 'string') fail('workerId is not a string')
  if (!Number.isInteger(parsed.pid)) fail('pid is not an integer')
  if (!Array.isArray(parsed.families)) fail('families is not an array')
  const families = (parsed.families as unknown[]).map((family, i): CarriedFamily => {
    if (!isObject(family) || typeof family.name !== 'string') return fail(`family ${i} has no name`)
    if (family.type !== 'counter' && family.type !== 'histogram') {
      return fail(`${family.name} has type ${String(family.type)}`)
    }
    if (!Array.isArray(family.values)) return fail(`${family.name} has no values`)
    const values = (family.values as unknown[]).map((value) =>
      checkValue(family.name as string, value, fail),
    )
    return { name: family.name, type: family.type, values }
  })
  return {
    scope: parsed.scope as string,
    workerId: parsed.workerId as string,
    pid: parsed.pid as number,
    families,
  }
}

function checkValue(family: string, value: unknown, fail: (what: string) => never): CarriedValue {
  if (!isObject(value)) return fail(`${family} has a value that is not an object`)
  // Counts only grow from zero: a negative or non-finite one would corrupt the series.
  if (typeof value.value !== 'number' || !Number.isFinite(value.value) || value.value < 0) {
    return fail(`${family} has a value that is not a finite count`)
  }
  if (value.metricName !== undefined && typeof value.metricName !== 'string') {
    return fail(`${family} has a sample name that is not a string`)
  }
  if (!isObject(value.labels)) return fail(`${family} has a value without labels`)
  for (const label of Object.values(value.labels)) {
    if (typeof label !== 'string' && typeof label !== 'number') {
      return fail(`${family} has a label value that is not a string or number`)
    }
  }
  const carried: CarriedValue = {
    labels: value.labels as CarriedValue['labels'],
    value: value.value,
  }
  if (value.metricName !== undefined) carried.metricName = value.metricName as string
  return carried
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}
