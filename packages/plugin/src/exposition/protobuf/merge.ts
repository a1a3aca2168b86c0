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

/** One worker's samples of one family, left out of a merge: its type is not the family's. */
export interface DroppedFamily {
  readonly workerId: string
  readonly family: string
  /** The type this worker gave the family, and the one the merged family has. */
  readonly type: string
  readonly familyType: string
}

/** Told of each family a part has left out of a merge. */
export type OnDropped = (dropped: DroppedFamily) => void

/** io.prometheus.client.MetricType's names, for logs. */
const TYPE_NAMES = ['counter', 'gauge', 'summary', 'untyped', 'histogram', 'gaugehistogram']

/**
 * Merges delimited expositions into one, with the rules of mergeExpositions: families in
 * first-seen order, each one message holding the first part's message (its name, help, type
 * and metrics) followed by every later part's metrics of that family; parts in the order
 * given, at most one per worker id (the first); a part whose type for a family differs from
 * the first one's has that family's metrics left out, and `onDropped` is told. A part that is
 * not well-formed is left out whole (the sibling client refuses such an answer before it gets
 * here).
 */
export function mergeProtobuf(parts: ReadonlyArray<ProtobufPart>, onDropped?: OnDropped): Buffer {
  const merge = new ProtobufMerge(onDropped)
  for (const part of parts) merge.add(part)
  return merge.finish()
}

/** mergeProtobuf a part at a time, so that a last part can depend on what the others dropped. */
export class ProtobufMerge {
  private readonly families = new Map<string, Family>()
  private readonly seenWorkers = new Set<string>()

  constructor(private readonly onDropped?: OnDropped) {}

  add(part: ProtobufPart): void {
    if (this.seenWorkers.has(part.workerId)) return
    this.seenWorkers.add(part.workerId)
    const heads = headsOf(part.bytes)
    if (heads !== undefined) for (const head of heads) this.addFamily(part.workerId, head)
  }

  finish(): Buffer {
    const chunks: Uint8Array[] = []
    let total = 0
    for (const family of this.families.values()) {
      const prefix = varint(family.size)
      chunks.push(prefix)
      for (const chunk of family.chunks) chunks.push(chunk)
      for (const chunk of family.native) chunks.push(chunk)
      total += prefix.length + family.size
    }
    return Buffer.concat(chunks, total)
  }

  private addFamily(workerId: string, head: FamilyHead): void {
    const histogram =
      head.type === METRIC_TYPE.HISTOGRAM || head.type === METRIC_TYPE.GAUGE_HISTOGRAM
    let family = this.families.get(head.name)
    if (family === undefined) {
      family = { type: head.type, chunks: [], native: [], size: head.message.length }
      this.families.set(head.name, family)
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
    } else if (family.type !== head.type) {
      this.onDropped?.({
        workerId,
        family: head.name,
        type: typeName(head.type),
        familyType: typeName(family.type),
      })
      return
    }
    for (const [start, end] of head.metrics) {
      const metric = head.message.subarray(start, end)
      if (histogram && isNative(metric)) family.native.push(metric)
      else family.chunks.push(metric)
      family.size += end - start
    }
  }
}

function typeName(type: number): string {
  return TYPE_NAMES[type] ?? `type ${type}`
}

function headsOf(bytes: Uint8Array): FamilyHead[] | undefined {
  try {
    return readFamilies(bytes)
  } catch (err) {
    if (err instanceof MalformedProtobufError) return undefined
    throw err
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
