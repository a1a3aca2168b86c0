// Just enough of the protobuf wire format to merge delimited MetricFamily messages without
// decoding them: varints, the framing of delimited messages, and a family's top-level fields
// (its name, its type, and where each of its `metric` fields lies).

/** A MetricFamily message's top level, read without decoding its metrics. */
export interface FamilyHead {
  /** The message's bytes (without its length prefix). */
  message: Uint8Array
  /** Field 1; '' when absent. */
  name: string
  /** Field 3, the MetricType number; 0 (COUNTER, proto2's default) when absent. */
  type: number
  /** Each field 4 (`metric`) as [start, end) in `message`, its tag and length included. */
  metrics: Array<[number, number]>
}

const WIRE_VARINT = 0
const WIRE_FIXED64 = 1
const WIRE_LENGTH = 2
const WIRE_FIXED32 = 5

const FIELD_NAME = 1
const FIELD_TYPE = 3
const FIELD_METRIC = 4

const utf8 = new TextDecoder('utf-8', { fatal: true })

export class MalformedProtobufError extends Error {}

/**
 * The families of a delimited exposition, each read to its top level. Throws
 * MalformedProtobufError if the bytes are not well-framed messages whose top-level fields are
 * well-formed.
 */
export function readFamilies(bytes: Uint8Array): FamilyHead[] {
  const heads: FamilyHead[] = []
  let at = 0
  while (at < bytes.length) {
    const [length, start] = readVarint(bytes, at)
    const end = start + length
    if (end > bytes.length) throw new MalformedProtobufError('a message runs past the end')
    heads.push(readHead(bytes.subarray(start, end)))
    at = end
  }
  return heads
}

function readHead(message: Uint8Array): FamilyHead {
  const head: FamilyHead = { message, name: '', type: 0, metrics: [] }
  let at = 0
  while (at < message.length) {
    const fieldStart = at
    const [tag, afterTag] = readVarint(message, at)
    const field = Math.floor(tag / 8)
    const wire = tag % 8
    if (field === 0) throw new MalformedProtobufError('field number 0')
    at = afterTag
    switch (wire) {
      case WIRE_VARINT: {
        const [value, next] = readVarint(message, at)
        if (field === FIELD_TYPE) head.type = value
        at = next
        break
      }
      case WIRE_FIXED64:
        at += 8
        break
      case WIRE_FIXED32:
        at += 4
        break
      case WIRE_LENGTH: {
        const [length, start] = readVarint(message, at)
        at = start + length
        if (at > message.length) throw new MalformedProtobufError('a field runs past its message')
        if (field === FIELD_NAME) head.name = decodeName(message.subarray(start, at))
        else if (field === FIELD_METRIC) head.metrics.push([fieldStart, at])
        break
      }
      default:
        throw new MalformedProtobufError(`wire type ${wire}`)
    }
  }
  if (at !== message.length) throw new MalformedProtobufError('a field runs past its message')
  return head
}

function decodeName(bytes: Uint8Array): string {
  try {
    return utf8.decode(bytes)
  } catch {
    throw new MalformedProtobufError('a family name that is not UTF-8')
  }
}

/**
 * The unsigned varint at `at` and the offset after it. Values up to 2^53 are exact, which
 * covers every length and tag; a varint longer than ten bytes is malformed.
 */
export function readVarint(bytes: Uint8Array, at: number): [number, number] {
  let value = 0
  let scale = 1
  for (let i = at; i < bytes.length && i < at + 10; i++) {
    const byte = bytes[i]
    value += (byte & 0x7f) * scale
    if (byte < 0x80) return [value, i + 1]
    scale *= 128
  }
  throw new MalformedProtobufError('a truncated or overlong varint')
}

/** `value` (a whole number from 0 to 2^53) as an unsigned varint. */
export function varint(value: number): Uint8Array {
  const out: number[] = []
  let rest = value
  while (rest >= 0x80) {
    out.push((rest % 128) | 0x80)
    rest = Math.floor(rest / 128)
  }
  out.push(rest)
  return Uint8Array.from(out)
}

const FIELD_METRIC_HISTOGRAM = 7
/** Histogram fields 5..14: schema, zero bucket, spans, deltas and counts. */
const FIRST_NATIVE_FIELD = 5
const LAST_NATIVE_FIELD = 14

/**
 * Whether a `metric` field (its tag and length included, as FamilyHead.metrics gives it) holds a
 * histogram with native fields. Throws MalformedProtobufError where the fields are not
 * well-formed.
 */
export function hasNativeHistogram(metricField: Uint8Array): boolean {
  const [length, start] = readVarint(metricField, readVarint(metricField, 0)[1])
  const metric = metricField.subarray(start, start + length)
  const histogram = lengthField(metric, FIELD_METRIC_HISTOGRAM)
  if (histogram === undefined) return false
  let found = false
  eachField(histogram, (field) => {
    if (field >= FIRST_NATIVE_FIELD && field <= LAST_NATIVE_FIELD) found = true
  })
  return found
}

/** The last length-delimited field `wanted` of `message` (as protobuf merges it), if any. */
function lengthField(message: Uint8Array, wanted: number): Uint8Array | undefined {
  let value: Uint8Array | undefined
  eachField(message, (field, wire, start, end) => {
    if (field === wanted && wire === WIRE_LENGTH) value = message.subarray(start, end)
  })
  return value
}

/** Calls `visit` with each top-level field of `message`: its number, wire type and value's span. */
function eachField(
  message: Uint8Array,
  visit: (field: number, wire: number, start: number, end: number) => void,
): void {
  let at = 0
  while (at < message.length) {
    const [tag, afterTag] = readVarint(message, at)
    const field = Math.floor(tag / 8)
    const wire = tag % 8
    if (field === 0) throw new MalformedProtobufError('field number 0')
    let start = afterTag
    switch (wire) {
      case WIRE_VARINT:
        at = readVarint(message, afterTag)[1]
        break
      case WIRE_FIXED64:
        at = afterTag + 8
        break
      case WIRE_FIXED32:
        at = afterTag + 4
        break
      case WIRE_LENGTH: {
        const [length, valueStart] = readVarint(message, afterTag)
        start = valueStart
        at = valueStart + length
        break
      }
      default:
        throw new MalformedProtobufError(`wire type ${wire}`)
    }
    if (at > message.length) throw new MalformedProtobufError('a field runs past its message')
    visit(field, wire, start, at)
  }
}
