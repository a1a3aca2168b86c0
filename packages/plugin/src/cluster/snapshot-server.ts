// Serves this worker's own exposition on a private unix socket. A sibling connects, writes the
// format it wants on one line, and reads back one header line (who answered) and the exposition
// rendered here, text or protobuf's bytes as they are; then the connection ends. The socket's
// path is unique to this process, so during `pm2 reload` two processes of one worker id never
// clash, and closing (which unlinks the path) only ever removes this process' own socket.
import { statSync } from 'node:fs'
import { createServer, type Server, type Socket } from 'node:net'
import type { Exposition, ExpositionFormat } from './exposition'

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
}

export type Render = (format: ExpositionFormat) => Promise<Exposition>

export class SnapshotServer {
  private server: Server | undefined
  private readonly connections = new Set<Socket>()
  /** Renders in flight, one per format: concurrent gatherers share them. */
  private readonly rendering = new Map<ExpositionFormat, Promise<Exposition>>()

  constructor(
    readonly socketPath: string,
    private readonly header: SnapshotHeader,
    private readonly render: Render,
    private readonly onError: (err: Error) => void = () => {},
  ) {}

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
      this.renderShared(format).then(
        (body) => this.reply(socket, body),
        (err: Error) => {
          this.onError(err)
          socket.destroy()
        },
      )
    }
    socket.on('data', onData)
  }

  /** The header line, then the body: text in one write, as before; bytes after the header. */
  private reply(socket: Socket, body: Exposition): void {
    const header = `${JSON.stringify(this.header)}\n`
    if (typeof body === 'string') {
      socket.end(header + body)
    } else {
      socket.write(header)
      socket.end(body)
    }
  }

  /** This worker's exposition; renders in flight are shared by everyone who asks meanwhile. */
  renderShared(format: ExpositionFormat): Promise<Exposition> {
    let pending = this.rendering.get(format)
    if (pending === undefined) {
      pending = this.render(format).finally(() => this.rendering.delete(format))
      this.rendering.set(format, pending)
    }
    return pending
  }
}
