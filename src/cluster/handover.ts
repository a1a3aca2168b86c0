// The handover: a stopping process' final carried values, written for the next process of its
// worker id. It is a file in the private socket directory, so it reaches a successor that is
// already running (pm2 reload) and one that starts later (pm2 restart, stop then start) alike.
// Written atomically (rename), read once (unlinked before use: a crash can lose a handover,
// which resets the series, but never apply one twice).
import { readFileSync, renameSync, unlinkSync, writeFileSync } from 'node:fs'
import type { CarriedFamily, CarriedValue } from './carried-metrics'

const VERSION = 1
export const MAX_HANDOVER_AGE_MS = 10 * 60 * 1000

export function readHandoverFile(path: string): Handover {
  return parseHandover(readFileSync(path, 'utf8'))
}

export function moveAside(path: string, _reason: string): string | undefined {
  const aside = `${path}.refused-${Date.now()}`
  try {
    renameSync(path, aside)
    return aside
  } catch {
    return undefined
  }
}

export interface Handover {
  /** Which app and port the series belong to: a handover never crosses them. */
  scope: string
  workerId: string
  /** The process that wrote it. */
  pid: number
  instance: string
  writtenAt: number
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
 * Takes the handover at `path`: reads it, removes it, and returns it validated; `undefined` if
 * there is none. Throws `MalformedHandoverError` (after removing it) if it cannot be used.
 */
export function takeHandover(path: string): Handover | undefined {
  let text: string
  try {
    text = readFileSync(path, 'utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw err
  }
  try {
    unlinkSync(path)
  } catch (err) {
    // Someone else took it between our read and unlink: it is theirs.
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw err
  }
  return parseHandover(text)
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
    instance: parsed.instance as string,
    writtenAt: parsed.writtenAt as number,
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
