// Merges workers' protobuf expositions without decoding a value: each family's first message
// whole, followed by the later parts' `metric` fields. Protobuf merges a repeated field by
// appending, so the result reads as one family holding every worker's metrics.
import { type FamilyHead, MalformedProtobufError, readFamilies, varint } from './wire'

/** One worker's registry rendered as delimited MetricFamily messages. */
export interface ProtobufPart {
  readonly workerId: string
  readonly bytes: Uint8Array
}

interface Family {
  type: number
  /** The first message, then each later `metric` field, in part order. */
  chunks: Uint8Array[]
  size: number
}

/**
 * Merges delimited expositions into one, with the rules of mergeExpositions: families in
 * first-seen order, each one message holding the first part's message (its name, help, type
 * and metrics) followed by every later part's metrics of that family; parts in the order
 * given, at most one per worker id (the first); a part whose type for a family differs from
 * the first one's has that family's metrics left out. A part that is not well-formed is left
 * out whole (the sibling client refuses such an answer before it gets here).
 */
export function mergeProtobuf(parts: ReadonlyArray<ProtobufPart>): Buffer {
  const families = new Map<string, Family>()
  const seenWorkers = new Set<string>()
  for (const part of parts) {
    if (seenWorkers.has(part.workerId)) continue
    seenWorkers.add(part.workerId)
    const heads = headsOf(part.bytes)
    if (heads !== undefined) for (const head of heads) addFamily(head, families)
  }
  const chunks: Uint8Array[] = []
  let total = 0
  for (const family of families.values()) {
    const prefix = varint(family.size)
    chunks.push(prefix)
    for (const chunk of family.chunks) chunks.push(chunk)
    total += prefix.length + family.size
  }
  return Buffer.concat(chunks, total)
}

function headsOf(bytes: Uint8Array): FamilyHead[] | undefined {
  try {
    return readFamilies(bytes)
  } catch (err) {
    if (err instanceof MalformedProtobufError) return undefined
    throw err
  }
}

function addFamily(head: FamilyHead, families: Map<string, Family>): void {
  const family = families.get(head.name)
  if (family === undefined) {
    families.set(head.name, { type: head.type, chunks: [head.message], size: head.message.length })
    return
  }
  if (family.type !== head.type) return
  for (const [start, end] of head.metrics) {
    family.chunks.push(head.message.subarray(start, end))
    family.size += end - start
  }
}
