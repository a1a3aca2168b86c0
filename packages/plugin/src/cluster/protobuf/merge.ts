// Merges workers' protobuf expositions without decoding a value: each family's first message
// whole, followed by the later parts' `metric` fields. Protobuf merges a repeated field by
// appending, so the result reads as one family holding every worker's metrics.
import { METRIC_TYPE } from './metrics-schema'
import {
  type FamilyHead,
  hasNativeHistogram,
  MalformedProtobufError,
  readFamilies,
  varint,
} from './wire'

/** One worker's registry rendered as delimited MetricFamily messages. */
export interface ProtobufPart {
  readonly workerId: string
  readonly bytes: Uint8Array
}

interface Family {
  type: number
  /** The first message, then each later `metric` field, in part order. */
  chunks: Uint8Array[]
  /**
   * A histogram family's metrics with native fields, sent after those without: Prometheus
   * reads a family as native or classic by its first metric, and refuses a classic-only
   * histogram read as native (workers differ while a reload switches native histograms on).
   */
  native: Uint8Array[]
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
    for (const chunk of family.native) chunks.push(chunk)
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
  const histogram = head.type === METRIC_TYPE.HISTOGRAM || head.type === METRIC_TYPE.GAUGE_HISTOGRAM
  let family = families.get(head.name)
  if (family === undefined) {
    family = { type: head.type, chunks: [], native: [], size: head.message.length }
    families.set(head.name, family)
    if (!histogram) {
      family.chunks.push(head.message)
      return
    }
    // The first message apart from its metrics, which are sorted as every later part's are.
    let at = 0
    for (const [start, end] of head.metrics) {
      if (start > at) family.chunks.push(head.message.subarray(at, start))
      at = end
    }
    if (at < head.message.length) family.chunks.push(head.message.subarray(at))
    family.size = 0
    for (const chunk of family.chunks) family.size += chunk.length
  } else if (family.type !== head.type) return
  for (const [start, end] of head.metrics) {
    const metric = head.message.subarray(start, end)
    if (histogram && isNative(metric)) family.native.push(metric)
    else family.chunks.push(metric)
    family.size += end - start
  }
}

/** A metric whose fields are not well-formed keeps its place, as before they were read. */
function isNative(metric: Uint8Array): boolean {
  try {
    return hasNativeHistogram(metric)
  } catch (err) {
    if (err instanceof MalformedProtobufError) return false
    throw err
  }
}
