// Whether the process behind a socket in the directory is alive. A connect answers at once: a
// listener takes it (even a stopped or busy process: the kernel queues it), a socket file
// without a listener refuses it. A refused socket whose pid no longer exists is dead at once
// (kill -9, a crash). One whose pid still exists is either a live process whose socket a
// cleaner removed (it heals within a second) or a reused pid: it counts as alive for a grace,
// then as dead, so a leftover never holds a worker id for long.
import { connect } from 'node:net'
import { join } from 'node:path'
import { parseOwnSocket, pidOfInstance } from './socket-paths'

/** Errors that mean nobody listens at the path. */
const GONE = new Set(['ECONNREFUSED', 'ENOENT', 'ENOTSOCK'])
/** A connect that neither succeeds nor fails by then is taken as a live but slow listener. */
const PROBE_TIMEOUT_MS = 1000
/** How long a silent socket whose pid exists is given to come back (heal runs every second). */
export const SOCKET_RETURN_MS = 3000

export function isListening(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ path })
    const done = (listening: boolean) => {
      socket.destroy()
      resolve(listening)
    }
    socket.setTimeout(PROBE_TIMEOUT_MS, () => done(true))
    socket.once('connect', () => done(true))
    // Anything else (EAGAIN: a full backlog, EACCES) cannot prove the process gone.
    socket.once('error', (err: NodeJS.ErrnoException) => done(!GONE.has(err.code ?? '')))
  })
}

export function pidExists(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'
  }
}

/** Liveness of the processes behind the sockets of one directory, by socket name. */
export class LivenessProbe {
  /** Sockets found silent while their pid exists, and since when (monotonic ms). */
  private readonly silentSince = new Map<string, number>()

  constructor(
    private readonly dir: string,
    private readonly graceMs = SOCKET_RETURN_MS,
  ) {}

  async isLive(socketName: string): Promise<boolean> {
    if (await isListening(join(this.dir, socketName))) {
      this.silentSince.delete(socketName)
      return true
    }
    const socket = parseOwnSocket(socketName)
    if (socket === undefined || !pidExists(pidOfInstance(socket.instance))) {
      this.silentSince.delete(socketName)
      return false
    }
    // Monotonic: a step of the wall clock neither ends the grace early nor extends it.
    const now = performance.now()
    const since = this.silentSince.get(socketName) ?? now
    this.silentSince.set(socketName, since)
    return now - since < this.graceMs
  }

  /** Dead beyond doubt: silent, and its pid is gone (safe to remove its files). */
  async isDead(socketName: string): Promise<boolean> {
    if (await isListening(join(this.dir, socketName))) return false
    const socket = parseOwnSocket(socketName)
    return socket !== undefined && !pidExists(pidOfInstance(socket.instance))
  }
}
