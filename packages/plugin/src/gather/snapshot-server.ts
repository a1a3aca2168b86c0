// Serves this worker's own exposition on a private unix socket. A sibling connects, writes the
// format it wants on one line, and reads back one header line (who answered) and the exposition
// rendered here, text or protobuf's bytes as they are; then the connection ends. The socket's
// path is unique to this process, so during `pm2 reload` two processes of one worker id never
// clash, and closing (which unlinks the path) only ever removes this process' own socket.
import { statSync } from 'node:fs'
import { createServer, type Server, type Socket } from 'node:net'
import type { Exposition, ExpositionFormat } from '../exposition/exposition'

/** The one line a gatherer sends: the format it wants. */
const FORMATS: readonly ExpositionFormat[] = ['prometheus', 'openmetrics', 'protobuf']
const MAX_REQUEST_BYTES = 64
/** A sibling that connects and says nothing is dropped after this long. */
const REQUEST_TIMEOUT_MS = 2000

export interface SnapshotHeader {
  workerId: string
  pid: number
  /** The process' instance token, as in its socket's name. */
  instance: string
  /**
   * The exposition's length in bytes, after the header line: the gatherer reads it into a
   * buffer of that size. Absent from an older release's answers.
   */
  bytes?: number
}

export type Render = (format: ExpositionFormat) => Promise<Exposition>

/**
 * One render, shared by this worker's own gathers and every sibling that asks while it runs
 * or within the reuse window after it; the bytes a sibling receives are made from it once,
 * for all of them.
 */
interface SharedRender {
  body: Promise<Exposition>
  wire?: Promise<Buffer>
  /** When the render ended (performance.now()); undefined while it runs. */
  endedAt?: number
}

export class SnapshotServer {
  private server: Server | undefined
  private readonly connections = new Set<Socket>()
  /** The current render of each format: in flight, or ended within the reuse window. */
  private readonly rendering = new Map<ExpositionFormat, SharedRender>()
  private readonly header: SnapshotHeader

  constructor(
    readonly socketPath: string,
    header: SnapshotHeader,
    private readonly render: Render,
    private readonly onError: (err: Error) => void = () => {},
    /**
     * A render that ended less than this many ms ago answers the next request in its format
     * (0: only renders in flight are shared). With the cluster view's own reuse window, a
     * worker renders its part once per window however many siblings gather.
     */
    private readonly reuseMs = 0,
  ) {
    this.header = { workerId: header.workerId, pid: header.pid, instance: header.instance }
  }

  async listen(): Promise<void> {
    const server = createServer({ allowHalfOpen: true }, (socket) => this.answer(socket))
    server.on('error', (err) => this.onError(err))
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen({ path: this.socketPath, exclusive: true }, () => {
        server.off('error', reject)
        resolve()
      })
    })
    server.unref() // never keep the process alive on its own
    this.server = server
  }

  /** True while the socket's path still names a socket (a cleaner may have removed it). */
  isReachable(): boolean {
    try {
      return statSync(this.socketPath).isSocket()
    } catch {
      return false
    }
  }

  /** Listens again on the same path, after the path was removed from under the server. */
  async relisten(): Promise<void> {
    await this.close()
    await this.listen()
  }

  /** Stops listening and ends every open connection: a closing process answers no sibling. */
  async close(): Promise<void> {
    const server = this.server
    this.server = undefined
    if (server === undefined) return
    const closed = new Promise<void>((resolve) => server.close(() => resolve()))
    for (const socket of this.connections) socket.destroy()
    await closed
  }

  private answer(socket: Socket): void {
    this.connections.add(socket)
    socket.once('close', () => this.connections.delete(socket))
    socket.on('error', () => socket.destroy())
    // A peer that hangs up before asking (a liveness probe) leaves nothing to answer: without
    // this, the half-open socket would linger until the request timeout.
    socket.once('end', () => {
      if (!asked) socket.destroy()
    })
    let asked = false
    socket.setTimeout(REQUEST_TIMEOUT_MS, () => socket.destroy())
    let request = ''
    const onData = (chunk: Buffer) => {
      request += chunk.toString('latin1')
      const end = request.indexOf('\n')
      if (end === -1) {
        if (request.length > MAX_REQUEST_BYTES) socket.destroy()
        return
      }
      socket.off('data', onData)
      asked = true
      // The request is read: from here the render's own deadline (the gatherer's) applies.
      socket.setTimeout(0)
      const format = request.slice(0, end) as ExpositionFormat
      if (!FORMATS.includes(format)) {
        socket.destroy()
        return
      }
      this.answerShared(format).then(
        (answer) => socket.end(answer),
        (err: Error) => {
          this.onError(err)
          socket.destroy()
        },
      )
    }
    socket.on('data', onData)
  }

  /** This worker's exposition; renders in flight are shared by everyone who asks meanwhile. */
  renderShared(format: ExpositionFormat): Promise<Exposition> {
    return this.sharedRender(format).body
  }

  /**
   * The header line, then the body, as one buffer: encoded once per render, so the siblings
   * that share a render are written the same bytes rather than each a string of their own.
   */
  private answerShared(format: ExpositionFormat): Promise<Buffer> {
    const render = this.sharedRender(format)
    render.wire ??= render.body.then((body) => withHeader(this.header, body))
    return render.wire
  }

  private sharedRender(format: ExpositionFormat): SharedRender {
    const current = this.rendering.get(format)
    if (
      current !== undefined &&
      (current.endedAt === undefined || performance.now() - current.endedAt < this.reuseMs)
    ) {
      return current
    }
    const shared: SharedRender = { body: this.render(format) }
    const forget = () => {
      if (this.rendering.get(format) === shared) this.rendering.delete(format)
    }
    shared.body.then(() => {
      shared.endedAt = performance.now()
      if (this.reuseMs <= 0) forget()
      // Not kept past its window: a worker holds no exposition between Prometheus' scrapes.
      else setTimeout(forget, this.reuseMs).unref()
    }, forget)
    this.rendering.set(format, shared)
    return shared
  }
}

function withHeader(header: SnapshotHeader, body: Exposition): Buffer {
  const bytes = typeof body === 'string' ? Buffer.byteLength(body, 'utf8') : body.byteLength
  const line = `${JSON.stringify({ ...header, bytes })}\n`
  const headerBytes = Buffer.byteLength(line, 'utf8')
  const answer = Buffer.allocUnsafe(headerBytes + bytes)
  answer.write(line, 0, 'utf8')
  if (typeof body === 'string') answer.write(body, headerBytes, 'utf8')
  else answer.set(body, headerBytes)
  return answer
}
