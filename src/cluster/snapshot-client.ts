// Reads one sibling's snapshot over its unix socket, or fails by the deadline: a dead worker
// fails at once (no listener), a hung one is cut off when the signal aborts.
import { connect } from 'node:net'
import { decodeSnapshot, type WorkerSnapshot } from './merge'

/** Snapshots bigger than this are refused rather than buffered (about 50k series). */
const MAX_SNAPSHOT_BYTES = 64 * 1024 * 1024

export function fetchSnapshot(socketPath: string, signal: AbortSignal): Promise<WorkerSnapshot> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) {
      reject(new Error('gather deadline passed'))
      return
    }
    const chunks: Buffer[] = []
    let size = 0
    const socket = connect({ path: socketPath })
    const onAbort = () => socket.destroy(new Error('gather deadline passed'))
    signal.addEventListener('abort', onAbort, { once: true })
    socket.on('data', (chunk: Buffer) => {
      size += chunk.length
      if (size > MAX_SNAPSHOT_BYTES) {
        socket.destroy(new Error(`snapshot larger than ${MAX_SNAPSHOT_BYTES} bytes`))
        return
      }
      chunks.push(chunk)
    })
    socket.on('error', (err) => {
      signal.removeEventListener('abort', onAbort)
      reject(err)
    })
    socket.on('end', () => {
      signal.removeEventListener('abort', onAbort)
      try {
        resolve(decodeSnapshot(Buffer.concat(chunks, size).toString('utf8')))
      } catch (err) {
        reject(err)
      }
    })
  })
}
