// Which process speaks for a worker id, and how one process hands its counts to the next.
//
// The link `<id>.sock` names the process that speaks for the worker id. A new process whose
// predecessor is still alive (pm2 reload starts the new process before it stops the old one)
// waits: the old process keeps the link, so scrapes keep reading its values. When the old
// process stops, after its last request, it writes its final carried values as a handover;
// the new one adds them to its own and only then takes the link. The worker's series therefore
// never step back and lose nothing. A process that finds no live predecessor takes the link at
// once, with the handover a stopped predecessor may have left (pm2 restart, stop then start).
// After a crash there is no handover: the series start again from zero, a full reset, which
// Prometheus' rate() and increase() handle.
import { existsSync, readdirSync, readlinkSync, renameSync, symlinkSync, unlinkSync } from 'node:fs'
import { basename, join } from 'node:path'
import type { CarriedMetrics } from './carried-metrics'
import { type Handover, MalformedHandoverError, takeHandover, writeHandover } from './handover'
import { parseOwnSocket, type SocketPaths } from './socket-paths'

/** How often a waiting successor looks for its predecessor's handover or exit. */
const POLL_MS = 100
/** A predecessor that neither hands over nor exits by then is overruled (PM2 kills it sooner). */
const MAX_WAIT_MS = 30_000
/** How long a stopping process keeps answering for its worker id until its successor takes over. */
const RELEASE_WAIT_MS = 1500

export interface SuccessionLog {
  info(obj: object, msg: string): void
  warn(obj: object, msg: string): void
}

export interface SuccessionOptions {
  paths: SocketPaths
  workerId: string
  /** App and port: a handover never crosses them. */
  scope: string
  /** This process' own socket. */
  socketPath: string
  carried: CarriedMetrics
  log: SuccessionLog
}

type State = 'waiting' | 'current' | 'superseded' | 'released'

export class Succession {
  private state: State = 'waiting'
  private predecessorPid: number | undefined
  private timer: NodeJS.Timeout | undefined
  private readonly linkPath: string
  private readonly handoverPath: string
  private readonly ownName: string

  constructor(private readonly options: SuccessionOptions) {
    this.linkPath = options.paths.linkFor(options.workerId)
    this.handoverPath = options.paths.handoverFor(options.workerId)
    this.ownName = basename(options.socketPath)
  }

  /** Takes the worker id at once, or waits for a live predecessor to hand over. */
  start(): void {
    this.removeDeadSockets()
    const holder = this.linkHolder()
    if (holder !== undefined && holder !== process.pid && isAlive(holder)) {
      this.predecessorPid = holder
      const since = Date.now()
      this.timer = setInterval(() => this.poll(since), POLL_MS)
      this.timer.unref()
      this.options.log.info(
        { predecessor: holder },
        'waiting for the previous process of this worker to hand over',
      )
    } else {
      this.takeOver()
    }
  }

  /** True while this process speaks for its worker id (its own values are the worker's). */
  isCurrent(): boolean {
    return this.state === 'current'
  }

  /**
   * Puts the link back if it went missing or points at a dead process (a cleaner, `rm`), and
   * notices a successor that took the link over without a handover.
   */
  heal(): void {
    if (this.state !== 'current') return
    const target = this.linkTarget()
    if (target === this.ownName) return
    const holder = target === undefined ? undefined : parseOwnSocket(target)?.pid
    if (holder !== undefined && holder !== process.pid && isAlive(holder)) {
      this.state = 'superseded'
      return
    }
    this.pointLinkHere()
  }

  /**
   * At a graceful stop, after the last request: hands the final values over and lets a running
   * successor take the link, or removes the link when no process of this worker id is left
   * (pm2 scale down, stop): the worker is then no longer expected in scrapes.
   */
  async release(): Promise<void> {
    clearInterval(this.timer)
    const wasCurrent = this.state === 'current' && this.linkTarget() === this.ownName
    this.state = 'released'
    if (!wasCurrent) return
    writeHandover(this.handoverPath, {
      scope: this.options.scope,
      workerId: this.options.workerId,
      pid: process.pid,
      families: await this.options.carried.values(),
    })
    if (this.liveSuccessor()) {
      const until = Date.now() + RELEASE_WAIT_MS
      while (this.linkTarget() === this.ownName && Date.now() < until) await sleep(POLL_MS / 2)
    }
    if (this.linkTarget() === this.ownName) removeIfPresent(this.linkPath)
  }

  private poll(since: number): void {
    if (this.state !== 'waiting') return
    const predecessor = this.predecessorPid as number
    const handedOver = existsSync(this.handoverPath)
    const gone = !isAlive(predecessor) || this.linkHolder() !== predecessor
    if (!handedOver && !gone && Date.now() - since > MAX_WAIT_MS) {
      this.options.log.warn(
        { predecessor },
        'the previous process of this worker neither handed over nor exited; taking over',
      )
    } else if (!handedOver && !gone) return
    this.takeOver()
  }

  private takeOver(): void {
    clearInterval(this.timer)
    this.applyHandover()
    this.pointLinkHere()
    this.state = 'current'
  }

  private applyHandover(): void {
    const { log, carried } = this.options
    let handover: Handover | undefined
    try {
      handover = takeHandover(this.handoverPath)
    } catch (err) {
      if (!(err instanceof MalformedHandoverError)) throw err
      log.warn({ err }, 'refused a malformed handover; the series start from zero')
      return
    }
    if (handover === undefined) return
    const reason = this.refusal(handover)
    if (reason !== undefined) {
      log.warn({ from: handover.pid, reason }, 'refused a handover; the series start from zero')
      return
    }
    carried.add(handover.families)
    log.info({ from: handover.pid }, 'continued this worker’s counts from its previous process')
  }

  /** Why a handover must not be applied here, or `undefined` if it may. */
  private refusal(handover: Handover): string | undefined {
    const { scope, workerId, carried } = this.options
    if (handover.scope !== scope || handover.workerId !== workerId) {
      return `it is for ${handover.scope} worker ${handover.workerId}`
    }
    if (handover.pid === process.pid) return 'it is this process’ own'
    if (this.predecessorPid !== undefined && handover.pid !== this.predecessorPid) {
      return `it is not from the predecessor ${this.predecessorPid}`
    }
    return carried.incompatibility(handover.families)
  }

  private linkTarget(): string | undefined {
    try {
      return readlinkSync(this.linkPath)
    } catch {
      return undefined
    }
  }

  private linkHolder(): number | undefined {
    const target = this.linkTarget()
    return target === undefined ? undefined : parseOwnSocket(target)?.pid
  }

  private pointLinkHere(): void {
    const temporary = `${this.linkPath}.${process.pid}.tmp`
    removeIfPresent(temporary)
    symlinkSync(this.ownName, temporary)
    renameSync(temporary, this.linkPath) // atomic: siblings see the old target or the new one
  }

  /** Another live process of this worker id: a successor started by a reload. */
  private liveSuccessor(): boolean {
    for (const name of readdirSync(this.options.paths.dir)) {
      const socket = parseOwnSocket(name)
      if (
        socket?.workerId === this.options.workerId &&
        socket.pid !== process.pid &&
        isAlive(socket.pid)
      ) {
        return true
      }
    }
    return false
  }

  /** Sockets of earlier processes of this worker id that died without closing (kill -9). */
  private removeDeadSockets(): void {
    const { dir } = this.options.paths
    for (const name of readdirSync(dir)) {
      const socket = parseOwnSocket(name)
      if (socket?.workerId === this.options.workerId && socket.pid !== process.pid) {
        if (!isAlive(socket.pid)) removeIfPresent(join(dir, name))
      }
    }
  }
}

export function isAlive(pid: number): boolean {
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

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}
