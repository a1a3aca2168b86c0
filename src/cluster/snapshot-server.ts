// Serves this worker's metrics snapshot on a private unix socket: a sibling connects, reads one
// JSON document, and the connection ends. The socket's path is unique to this process; a link
// named after the worker id is switched to it atomically, so during `pm2 reload` the new
// process takes over the worker id and the old one can close without breaking the new one.
import { readdirSync, readlinkSync, renameSync, symlinkSync, unlinkSync } from 'node:fs'
import { createServer, type Server } from 'node:net'
import { basename, dirname, join } from 'node:path'
import type { Registry } from 'prom-client'
import { encodeSnapshot, snapshotOf } from './merge'
import type { SocketPaths } from './socket-paths'

export class SnapshotServer {
  private server: Server | undefined
  readonly socketPath: string
  readonly linkPath: string

  constructor(
    private readonly registry: Registry,
    private readonly workerId: string,
    paths: SocketPaths,
    private readonly onError: (err: Error) => void = () => {},
  ) {
    this.socketPath = paths.ownSocket(workerId, process.pid)
    this.linkPath = paths.linkFor(workerId)
  }

  async start(): Promise<void> {
    this.removeDeadPredecessors()
    const server = createServer({ allowHalfOpen: false }, (socket) => {
      socket.on('error', () => socket.destroy())
      snapshotOf(this.registry).then(
        (metrics) =>
          socket.end(encodeSnapshot({ workerId: this.workerId, pid: process.pid, metrics })),
        (err: Error) => {
          this.onError(err)
          socket.destroy()
        },
      )
    })
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
    this.pointLinkHere()
  }

  /**
   * True once a newer process of this worker id (a reload) has taken the link over. A missing
   * link does not count: this process is then still the one that speaks for its worker id.
   */
  isSuperseded(): boolean {
    const target = this.linkTarget()
    return target !== undefined && target !== basename(this.socketPath)
  }

  async close(): Promise<void> {
    // Remove the link only if it is still ours: after a reload it names our successor.
    if (this.linkTarget() === basename(this.socketPath)) removeIfPresent(this.linkPath)
    const server = this.server
    this.server = undefined
    if (server === undefined) return
    // Closing unlinks our own, pid-unique socket path: nobody else's.
    await new Promise<void>((resolve) => server.close(() => resolve()))
  }

  private linkTarget(): string | undefined {
    try {
      return readlinkSync(this.linkPath)
    } catch {
      return undefined
    }
  }

  /** Sockets of earlier processes of this worker id that died without closing (kill -9). */
  private removeDeadPredecessors(): void {
    const dir = dirname(this.socketPath)
    const pattern = new RegExp(
      `^${this.workerId.replace(/[^0-9A-Za-z]/g, '\\$&')}\\.(\\d+)\\.sock$`,
    )
    for (const name of readdirSync(dir)) {
      const pid = Number(pattern.exec(name)?.[1])
      if (pid > 0 && (pid === process.pid || !isAlive(pid))) removeIfPresent(join(dir, name))
    }
  }

  private pointLinkHere(): void {
    const temporary = `${this.linkPath}.${process.pid}.tmp`
    removeIfPresent(temporary)
    symlinkSync(basename(this.socketPath), temporary)
    renameSync(temporary, this.linkPath) // atomic: siblings see the old target or the new one
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'
  }
}

function removeIfPresent(path: string): void {
  try {
    unlinkSync(path)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
  }
}
