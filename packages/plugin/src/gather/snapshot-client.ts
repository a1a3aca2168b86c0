// Reads one sibling's exposition over its unix socket, or fails by the deadline: a dead worker
// fails at once (no listener), a hung one is cut off when the signal aborts. An answer from
// another worker than the one asked for (a link pointing at the wrong socket) is refused, and
// so are one shorter or longer than its header announces and a protobuf answer that is not
// well-framed MetricFamily messages.
import { connect } from 'node:net'
import type { Exposition, ExpositionFormat } from '../exposition/exposition'
import { MalformedProtobufError, readFamilies } from '../exposition/protobuf/wire'
import { FIRST_SIZE, grow, type ReceiveBuffers, sizeFor } from './receive-buffers'
import type { SnapshotHeader } from './snapshot-server'

/** Expositions bigger than this are refused rather than buffered (about 200k series). */
const MAX_SNAPSHOT_BYTES = 64 * 1024 * 1024
/** Room each socket read is given at least. */
const MIN_READ = 16 * 1024

export interface WorkerExposition {
  workerId: string
  pid: number
  /** The exposition's bytes as they came (UTF-8 for the text formats): merged, never decoded. */
  body: Exposition
}

/** A sibling's answer, whose body points into memory lent by the gather's ReceiveBuffers. */
export interface FetchedExposition extends WorkerExposition {
  /** Gives that memory back for the next gather: call once the body is no longer read. */
  release(): void
}

const NEWLINE = 0x0a

export function fetchExposition(
  socketPath: string,
  workerId: string,
  format: ExpositionFormat,
  signal: AbortSignal,
  buffers?: ReceiveBuffers,
): Promise<FetchedExposition> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) {
      reject(new Error('gather deadline passed'))
      return
    }
    const key = `${format}\n${socketPath}`
    let buffer = buffers?.take(key) ?? Buffer.allocUnsafe(FIRST_SIZE)
    let filled = 0
    // Once the header line is read: where it ends, and the buffer the answer it announces needs.
    let headerEnd = -1
    let size: number | undefined
    const release = () => buffers?.give(key, buffer)
    const fail = (err: Error) => {
      signal.removeEventListener('abort', onAbort)
      release()
      reject(err)
    }
    // Read straight into `buffer`, grown to the answer's size once the header tells it, or as
    // reads fill it: no chunk of its own per read. One byte is always free for the read that
    // finds the end.
    const socket = connect({
      path: socketPath,
      onread: {
        buffer: () => {
          buffer =
            size !== undefined && filled < size
              ? grow(buffer, filled, size, true)
              : grow(buffer, filled, filled + MIN_READ, false)
          return buffer.subarray(filled)
        },
        callback: (bytes) => {
          const from = filled
          filled += bytes
          if (headerEnd === -1) {
            const at = buffer.subarray(from, filled).indexOf(NEWLINE)
            if (at !== -1) {
              headerEnd = from + at
              size = answerSize(buffer, headerEnd)
            }
          }
          if (filled <= MAX_SNAPSHOT_BYTES) return true
          socket.destroy(new Error(`exposition larger than ${MAX_SNAPSHOT_BYTES} bytes`))
          return false
        },
      },
    })
    const onAbort = () => socket.destroy(new Error('gather deadline passed'))
    signal.addEventListener('abort', onAbort, { once: true })
    socket.on('connect', () => socket.write(`${format}\n`))
    socket.on('error', fail)
    socket.on('end', () => {
      signal.removeEventListener('abort', onAbort)
      socket.end()
      try {
        resolve({ ...decodeAnswer(buffer.subarray(0, filled), workerId, format), release })
      } catch (err) {
        fail(err as Error)
      }
    })
  })
}

/**
 * The buffer an answer whose header line ends at `newline` needs, from the header's `bytes`;
 * undefined if it names none (an older release) or an impossible one.
 */
function answerSize(answer: Buffer, newline: number): number | undefined {
  try {
    const bytes = (JSON.parse(answer.toString('utf8', 0, newline)) as Partial<SnapshotHeader>).bytes
    if (typeof bytes === 'number' && Number.isSafeInteger(bytes) && bytes >= 0) {
      if (bytes <= MAX_SNAPSHOT_BYTES) return sizeFor(newline + 1 + bytes)
    }
  } catch {
    // A malformed header is refused once the answer has ended.
  }
  return undefined
}

/** The header line (JSON, so it holds no raw newline), then the body as it came. */
function decodeAnswer(
  answer: Buffer,
  expectedWorkerId: string,
  format: ExpositionFormat,
): WorkerExposition {
  const end = answer.indexOf(NEWLINE)
  let header: Partial<SnapshotHeader> | undefined
  try {
    header = end === -1 ? undefined : JSON.parse(answer.toString('utf8', 0, end))
  } catch {
    header = undefined
  }
  if (typeof header?.workerId !== 'string' || typeof header.pid !== 'number') {
    throw new Error('malformed answer from a sibling')
  }
  if (header.workerId !== expectedWorkerId) {
    throw new Error(
      `the socket of worker ${expectedWorkerId} answered as worker ${header.workerId}`,
    )
  }
  const body = answer.subarray(end + 1)
  // A process that dies while it writes ends the connection too: its part would be cut short.
  if (header.bytes !== undefined && header.bytes !== body.length) {
    throw new Error(
      `the answer of worker ${expectedWorkerId} ended after ${body.length} of ${header.bytes} bytes`,
    )
  }
  if (format === 'protobuf') checkProtobuf(body, expectedWorkerId)
  return { workerId: header.workerId, pid: header.pid, body }
}

/** Refuses bytes that the merge could not split into families. */
function checkProtobuf(body: Uint8Array, workerId: string): void {
  try {
    readFamilies(body)
  } catch (err) {
    if (!(err instanceof MalformedProtobufError)) throw err
    throw new Error(`malformed protobuf answer from worker ${workerId}: ${err.message}`)
  }
}
