// Merges workers' rendered expositions: text by family (one header per metric family, then
// every worker's samples of that family, no parsing of samples beyond finding line ends), and
// protobuf by family too, without decoding values (protobuf/merge.ts).
import type { Exposition, ExpositionFormat, TextFormat } from './exposition-format'
import { type OnDropped, ProtobufMerge } from './protobuf/merge'

export type { DroppedFamily, OnDropped } from './protobuf/merge'

/** One worker's registry rendered in a text format (see renderRegistry). */
export interface ExpositionPart {
  readonly workerId: string
  readonly text: string
}

/**
 * One worker's registry rendered in the scrape's format: protobuf's bytes, or a text format as
 * text or as its UTF-8 bytes (a sibling's part as it came off the socket).
 */
export interface RenderedPart {
  readonly workerId: string
  readonly body: Exposition
}

/**
 * Merges parts rendered in `format` with that format's merge (mergeExpositions, mergeProtobuf),
 * into the bytes /metrics sends; `onDropped` is told of each family a part has left out.
 */
export function mergeRendered(
  parts: ReadonlyArray<RenderedPart>,
  format: ExpositionFormat,
  onDropped?: OnDropped,
): Buffer {
  const merge = new RenderedMerge(format, onDropped)
  for (const part of parts) merge.add(part)
  return merge.finish()
}

/** mergeRendered a part at a time, so that a last part can depend on what the others dropped. */
export class RenderedMerge {
  private readonly protobuf: ProtobufMerge | undefined
  private readonly text: TextMerge | undefined

  constructor(format: ExpositionFormat, onDropped?: OnDropped) {
    if (format === 'protobuf') this.protobuf = new ProtobufMerge(onDropped)
    else this.text = new TextMerge(format, onDropped)
  }

  add(part: RenderedPart): void {
    if (this.protobuf !== undefined) {
      this.protobuf.add({ workerId: part.workerId, bytes: bytesOf(part) })
    } else this.text?.add(part)
  }

  finish(): Buffer {
    return this.protobuf?.finish() ?? (this.text as TextMerge).finish()
  }
}

function bytesOf(part: RenderedPart): Uint8Array {
  if (typeof part.body === 'string') throw new TypeError(`worker ${part.workerId}: text, not bytes`)
  return part.body
}

function asBuffer(body: Exposition): Buffer {
  return typeof body === 'string'
    ? Buffer.from(body, 'utf8')
    : Buffer.from(body.buffer, body.byteOffset, body.byteLength)
}

/** Consecutive sample lines of one part, as a byte range without the final newline. */
interface Run {
  readonly bytes: Buffer
  readonly start: number
  readonly end: number
}

interface Family {
  help?: string
  type?: string
  unit?: string
  /** Runs of consecutive sample lines, in part order. */
  samples: Run[]
}

const HASH = 0x23 // '#'
const NEWLINE = 0x0a
const OPENMETRICS_EOF = '# EOF\n'

/**
 * Merges expositions rendered in `format` into one, in that format.
 *
 * Families come in first-seen order; each gets its `# HELP`, `# TYPE` and `# UNIT` lines once
 * (the first part's), then each part's samples of it, part by part. A family some parts lack
 * is kept; one with no samples keeps its header. A sample belongs to the family of the last
 * header line above it in its part (OpenMetrics counters are typed as `x` but sampled as
 * `x_total`, histograms as `x_bucket`...), so sample names are never read.
 *
 * Parts are used in the order given, at most one per worker id (the first), so two processes
 * of one worker during a reload never both appear. A part whose `# TYPE` for a family differs
 * from the first one's has its samples of that family left out: one family cannot hold both.
 * Comments other than HELP/TYPE/UNIT, blank lines and each part's `# EOF` are dropped; the
 * OpenMetrics answer ends with a single `# EOF`. Extra series such as the gather's own health
 * are merged by passing their rendered text as one more part.
 */
export function mergeExpositions(
  parts: ReadonlyArray<ExpositionPart>,
  format: TextFormat,
  onDropped?: OnDropped,
): string {
  const merge = new TextMerge(format, onDropped)
  for (const part of parts) merge.add({ workerId: part.workerId, body: part.text })
  return merge.finish().toString('utf8')
}

/**
 * mergeExpositions a part at a time, on bytes, into bytes: sample lines are copied from each
 * part's bytes into the answer once, with no string of a part or of the answer in between
 * (strings that large live in V8's large-object space until a full collection; buffers are
 * freed with their young wrappers).
 */
export class TextMerge {
  private readonly families = new Map<string, Family>()
  private readonly seenWorkers = new Set<string>()

  constructor(
    private readonly format: TextFormat,
    private readonly onDropped?: OnDropped,
  ) {}

  add(part: RenderedPart): void {
    if (this.seenWorkers.has(part.workerId)) return
    this.seenWorkers.add(part.workerId)
    collectPart(part.workerId, asBuffer(part.body), this.families, this.onDropped)
  }

  finish(): Buffer {
    const { families, format } = this
    // The text format's blank line between families, as prom-client renders it.
    const blankBetween = format === 'prometheus'
    let size = format === 'openmetrics' ? OPENMETRICS_EOF.length : 0
    let first = true
    for (const family of families.values()) {
      if (blankBetween && !first) size += 1
      first = false
      for (const header of [family.help, family.type, family.unit]) {
        if (header !== undefined) size += Buffer.byteLength(header, 'utf8') + 1
      }
      for (const run of family.samples) size += run.end - run.start + 1
    }
    const answer = Buffer.allocUnsafe(size)
    let at = 0
    first = true
    for (const family of families.values()) {
      if (blankBetween && !first) answer[at++] = NEWLINE
      first = false
      for (const header of [family.help, family.type, family.unit]) {
        if (header === undefined) continue
        at += answer.write(header, at, 'utf8')
        answer[at++] = NEWLINE
      }
      for (const run of family.samples) {
        at += run.bytes.copy(answer, at, run.start, run.end)
        answer[at++] = NEWLINE
      }
    }
    if (format === 'openmetrics') at += answer.write(OPENMETRICS_EOF, at, 'latin1')
    return answer
  }
}

/** Adds one part's headers and sample runs to `families`: one pass over its lines. */
function collectPart(
  workerId: string,
  bytes: Buffer,
  families: Map<string, Family>,
  onDropped: OnDropped | undefined,
): void {
  let family: Family | undefined
  let familyName: string | undefined
  let keepSamples = true
  let runStart = -1
  let runEnd = -1
  const flushRun = () => {
    if (runStart === -1) return
    if (keepSamples) {
      // Samples above any header (never from prom-client) form a family with no header.
      if (family === undefined) family = familyFor('', families)
      family.samples.push({ bytes, start: runStart, end: runEnd })
    }
    runStart = -1
  }
  const length = bytes.length
  let lineStart = 0
  while (lineStart < length) {
    let lineEnd = bytes.indexOf(NEWLINE, lineStart)
    if (lineEnd === -1) lineEnd = length
    if (lineEnd === lineStart) {
      flushRun()
    } else if (bytes[lineStart] !== HASH) {
      if (runStart === -1) runStart = lineStart
      runEnd = lineEnd
    } else {
      flushRun()
      // Only comment lines become strings: they are short, and few.
      const line = bytes.toString('utf8', lineStart, lineEnd)
      if (line === '# EOF') return
      const kind = headerKind(line)
      if (kind !== undefined) {
        const nameEnd = line.indexOf(' ', 7)
        const name = line.slice(7, nameEnd === -1 ? line.length : nameEnd)
        if (name !== familyName) {
          familyName = name
          family = familyFor(name, families)
          keepSamples = true
        }
        const current = family as Family
        if (current[kind] === undefined) current[kind] = line
        else if (kind === 'type' && current.type !== line && keepSamples) {
          keepSamples = false
          onDropped?.({
            workerId,
            family: name,
            type: typeOf(line),
            familyType: typeOf(current.type ?? ''),
          })
        }
      }
    }
    lineStart = lineEnd + 1
  }
  flushRun()
}

/** The type a `# TYPE name type` line names. */
function typeOf(line: string): string {
  return line.slice(line.lastIndexOf(' ') + 1)
}

function headerKind(line: string): 'help' | 'type' | 'unit' | undefined {
  if (line.startsWith('# HELP ')) return 'help'
  if (line.startsWith('# TYPE ')) return 'type'
  if (line.startsWith('# UNIT ')) return 'unit'
  return undefined
}

function familyFor(name: string, families: Map<string, Family>): Family {
  let family = families.get(name)
  if (family === undefined) {
    family = { samples: [] }
    families.set(name, family)
  }
  return family
}

/**
 * One worker's part followed by more families of the same worker (none shared with it), in
 * `format`: text with the first part's `# EOF` dropped, protobuf's messages one after another.
 */
export function appendRendered(
  first: Exposition,
  more: Exposition,
  format: ExpositionFormat,
): Exposition {
  if (typeof first !== 'string' || typeof more !== 'string') {
    if (typeof first === 'string' || typeof more === 'string') {
      throw new TypeError('cannot append text and bytes')
    }
    return Buffer.concat([first, more])
  }
  if (first === '' || (format === 'openmetrics' && first === OPENMETRICS_EOF)) return more
  if (format === 'openmetrics' && first.endsWith(OPENMETRICS_EOF)) {
    return `${first.slice(0, -OPENMETRICS_EOF.length)}${more}`
  }
  return `${first}\n${more}`
}
