// Which process speaks for a worker id, and how one process hands its counts to the next.
//
// The rule (docs/design.md, "Succession"): the link `<id>.sock` names the one process that
// speaks for the worker id. A process takes the link only
//  - at start, when the link names no live process (first start, restart, after a crash), with
//    the handover a stopped predecessor may have left; or
//  - while waiting, with the handover of the very process it waits for (pm2 reload: the new
//    process starts before the old one stops), or once that process is gone, with the handover
//    its last successor left; or
//  - while waiting, when that process died without one (a crash: the series reset).
// A waiting process whose link moves to another live process (a second reload, a scale) waits
// for that one instead; it never takes the link from a live process without its handover. A
// stopping process hands over after its last request, so the values served never step back.
// Processes are told apart by a random instance token in their socket's name, and a process
// is alive while its socket accepts connections. A silent socket whose pid exists counts as
// alive for SOCKET_RETURN_MS (3 s), so a reused pid passes for the dead process that long,
// then no longer.
import { lstatSync, readdirSync, readlinkSync, renameSync, symlinkSync } from 'node:fs'
import { basename, join } from 'node:path'
import { ProblemLog } from '../lib/problem-log'
import { removeIfPresent } from '../lib/remove-if-present'
import {
  parseClaim,
  parseOwnSocket,
  pidOfInstance,
  type SocketPaths,
} from '../run-dir/socket-paths'
import { LivenessProbe, pidExists } from '../run-dir/socket-probe'
import type { CarriedMetrics } from './carried-metrics'
import {
  type Handover,
  handoverMismatch,
  MalformedHandoverError,
  moveAside,
  readHandoverFile,
  writeHandover,
} from './handover'
import type { NativeCarry } from './native-carry'

/** How often a waiting successor looks for its predecessor's handover or exit. */
const POLL_MS = 100
/** A predecessor that neither hands over nor exits by then is overruled (PM2 kills it sooner). */
const MAX_WAIT_MS = 30_000
/**
 * How long a stopping process keeps answering for its worker id until its successor takes over
 * (a waiting successor looks every POLL_MS); part of the time a stop takes after its last
 * request, which the app's kill timeout must leave room for.
 */
const RELEASE_WAIT_MS = 300

export interface SuccessionLog {
  info(obj: object, msg: string): void
  warn(obj: object, msg: string): void
  /** Counts lost (a handover that could not be written); `warn` where absent. */
  error?(obj: object, msg: string): void
}

/** Which processes behind the directory's sockets are alive (see `LivenessProbe`). */
export type Liveness = Pick<LivenessProbe, 'isLive' | 'isDead'>

export interface SuccessionOptions {
  paths: SocketPaths
  workerId: string
  /** App and port: a handover never crosses them. */
  scope: string
  /** This process' instance token, as in its socket's name. */
  instance: string
  carried: CarriedMetrics
  /** Native histograms of the carried histograms' series, handed over with them. */
  native?: NativeCarry
  log: SuccessionLog
  /** The liveness of other processes; by their sockets unless given (tests hold it). */
  probe?: Liveness
  /**
   * A monotonic clock in ms for the waits of this process: a step of the wall clock (NTP, an
   * operator) neither ends a wait early nor makes one last for ever.
   */
  clock?: () => number
}

type State = 'starting' | 'waiting' | 'current' | 'released'

export class Succession {
  private state: State = 'starting'
  /** Socket name of the process this one waits for. */
  private predecessor: string | undefined
  private waitingSince = 0
  private timer: NodeJS.Timeout | undefined
  /** The round of the rule running now, if any: `release()` lets it finish first. */
  private checking: Promise<void> | undefined
  /** Set by `release()`: from then on this process never takes the worker id over. */
  private releasing = false
  private readonly linkPath: string
  private readonly handoverPath: string
  private readonly claimPath: string
  private readonly ownName: string
  private readonly problems: ProblemLog
  private readonly probe: Liveness
  private readonly clock: () => number

  constructor(private readonly options: SuccessionOptions) {
    const { paths, workerId, instance } = options
    this.linkPath = paths.linkFor(workerId)
    this.handoverPath = paths.handoverFor(workerId)
    this.claimPath = paths.claimFor(workerId, instance)
    this.ownName = basename(paths.ownSocket(workerId, instance))
    this.probe = options.probe ?? new LivenessProbe(paths.dir)
    this.clock = options.clock ?? (() => performance.now())
    this.problems = new ProblemLog((err) =>
      options.log.warn({ err }, 'worker succession check failed; retrying'),
    )
  }

  /** Takes the worker id at once, or starts waiting for the live process that holds it. */
  async start(): Promise<void> {
    await this.removeDeadSockets()
    this.removeDeadWritersTemporaries()
    const holder = this.linkTarget()
    if (holder !== undefined && this.isSibling(holder) && (await this.isLive(holder))) {
      this.waitFor(holder)
    } else {
      this.takeOver(undefined)
    }
    this.timer = setInterval(() => void this.check(), POLL_MS)
    this.timer.unref()
  }

  /** True while this process speaks for its worker id (its own values are the worker's). */
  isCurrent(): boolean {
    return this.state === 'current'
  }

  /**
   * At a graceful stop, after the last request: hands the final values over and lets a running
   * successor take the link, or removes the link when no process of this worker id is left
   * (pm2 scale down, stop): the worker is then no longer expected in scrapes.
   */
  async release(): Promise<void> {
    clearInterval(this.timer)
    // A round that is awaiting a predecessor's liveness would otherwise take over afterwards,
    // pointing the link at a process that is exiting.
    this.releasing = true
    await this.checking
    const wasCurrent = this.state === 'current' && this.linkTarget() === this.ownName
    this.state = 'released'
    if (!wasCurrent) return
    const { scope, workerId, instance, carried } = this.options
    let movedAside: string[]
    try {
      movedAside = writeHandover(this.handoverPath, {
        scope,
        workerId,
        instance,
        pid: process.pid,
        writtenAt: Date.now(),
        families: await carried.values(),
        ...(this.options.native === undefined ? {} : { native: this.options.native.states() }),
      })
    } catch (err) {
      const error = this.options.log.error ?? this.options.log.warn
      error.call(
        this.options.log,
        { err, path: this.handoverPath },
        'could not write this worker’s handover; its counts restart from zero',
      )
      return
    }
    if (movedAside.length > 0) {
      this.options.log.warn(
        { path: this.handoverPath, moved_to: movedAside },
        'moved aside what was in the way of this worker’s handover',
      )
    }
    const started = this.clock()
    if (await this.hasLiveSibling()) {
      while (this.linkTarget() === this.ownName && this.clock() - started < RELEASE_WAIT_MS) {
        await sleep(POLL_MS / 4)
      }
    }
    const passed = this.linkTarget() !== this.ownName
    if (!passed) removeIfPresent(this.linkPath)
    this.options.log.info(
      { waited_ms: Math.round(this.clock() - started), successor_took_over: passed },
      'handed this worker’s counts over',
    )
  }

  /** One round of the rule; an error is logged once and the round is tried again later. */
  private check(): Promise<void> {
    if (this.checking !== undefined || this.releasing || this.state === 'released') {
      return Promise.resolve()
    }
    this.checking = this.checkOnce().finally(() => {
      this.checking = undefined
    })
    return this.checking
  }

  private async checkOnce(): Promise<void> {
    try {
      if (this.state === 'waiting') await this.checkWaiting()
      else if (this.state === 'current') await this.checkCurrent()
      this.problems.clear()
    } catch (err) {
      this.problems.report(err as Error)
    }
  }

  private async checkWaiting(): Promise<void> {
    const holder = this.linkTarget()
    if (holder === this.ownName) {
      // Pointed here from outside: scrapes already read this process, so it speaks now.
      this.options.log.warn(
        { predecessor: this.predecessor },
        'the link names this process; it speaks now',
      )
      return this.takeOver(undefined)
    }
    // The link names the process that speaks, and only that process writes a handover: when it
    // moved on (an overlapping reload took the handover first), the one to wait for moved too.
    if (holder !== undefined && holder !== this.predecessor && this.isSibling(holder)) {
      this.waitFor(holder)
    }
    const predecessor = this.predecessor as string
    const live = await this.isLive(predecessor)
    if (this.releasing) return
    if (live) {
      if (this.takeHandoverFrom(predecessor)) return
      if (this.clock() - this.waitingSince < MAX_WAIT_MS) return
      this.options.log.warn(
        { predecessor },
        'the process this one waits for neither handed over nor exited; taking over',
      )
      return this.takeOver(undefined)
    }
    // Gone, so no live process speaks: as at a start, the handover left is the last speaker's
    // (the predecessor's, or a sibling's that spoke after it while this process was stalled).
    const handover = this.claimHandover((found) => this.notFromLastSpeaker(found))
    if (handover !== undefined) return this.takeOver(handover)
    const claimer = await this.liveClaimer()
    if (this.releasing) return
    if (claimer !== undefined) return this.waitFor(claimer)
    // A sibling that finished taking over while this round ran: follow it next round.
    if (this.linkTarget() !== holder) return
    this.options.log.warn(
      { predecessor },
      'the previous process of this worker exited without handing over; its series start from zero',
    )
    this.takeOver(undefined)
  }

  /**
   * Puts the link back if it went missing, or names a dead or foreign socket (a cleaner, a
   * hijack). If it names another live process of this worker id, that process speaks now: this
   * one's values were replaced in every scrape, so they restart from zero (as after a crash)
   * and it waits for that process' handover.
   */
  private async checkCurrent(): Promise<void> {
    const target = this.linkTarget()
    if (target === this.ownName) return
    if (target !== undefined && this.isSibling(target) && (await this.isLive(target))) {
      if (this.releasing) return
      this.options.log.warn(
        { holder: target },
        'another process took this worker over; its counts restart from zero until it hands over',
      )
      this.options.carried.reset()
      return this.waitFor(target)
    }
    // A link to a socket that is gone would only fail: the view's heal listens again first.
    if (!isSocket(this.options.paths.ownSocket(this.options.workerId, this.options.instance)))
      return
    this.pointLinkHere()
  }

  private waitFor(holder: string): void {
    if (this.predecessor !== holder) {
      this.options.log.info(
        { predecessor: holder },
        'waiting for the process that speaks for this worker to hand over',
      )
    }
    this.predecessor = holder
    this.waitingSince = this.clock()
    this.state = 'waiting'
  }

  /** Takes the link, first adding `handover` (if any) to this process' counts. */
  private takeOver(handover: Handover | undefined): void {
    if (handover === undefined && this.state === 'starting') {
      handover = this.claimHandover((found) => this.notFromLastSpeaker(found))
    }
    if (handover !== undefined) {
      const { dropped, reasons } = this.options.carried.add(handover.families)
      const nativeDropped = this.options.native?.add(handover.native ?? [], handover.families) ?? 0
      if (nativeDropped > 0) {
        this.options.log.warn(
          { from: handover.pid, dropped: nativeDropped },
          'left native histograms out of the handover that this process cannot continue',
        )
      }
      if (dropped > 0) {
        this.options.log.warn(
          { from: handover.pid, dropped, reasons },
          'left series out of the handover that this process’ metrics no longer define',
        )
      }
      this.options.log.info(
        { from: handover.pid, instance: handover.instance },
        'continued this worker’s counts from its previous process',
      )
    }
    this.pointLinkHere()
    removeIfPresent(this.claimPath)
    this.predecessor = undefined
    this.state = 'current'
  }

  /** Takes over with the handover of `predecessor`, if it left one; true if it did. */
  private takeHandoverFrom(predecessor: string): boolean {
    const author = parseOwnSocket(predecessor)?.instance
    const handover = this.claimHandover((found) =>
      found.instance !== author
        ? `it is from ${found.instance}, not from ${author}, the process this one waited for`
        : this.staleness(found),
    )
    if (handover === undefined) return false
    this.takeOver(handover)
    return true
  }

  /**
   * Takes the handover file for this process alone (a rename: one successor wins), reads it
   * and checks it; a refused one is moved aside, named in a log line, and `undefined` returned.
   */
  private claimHandover(refusal: (handover: Handover) => string | undefined): Handover | undefined {
    try {
      renameSync(this.handoverPath, this.claimPath)
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
      throw err
    }
    let handover: Handover
    try {
      handover = readHandoverFile(this.claimPath)
    } catch (err) {
      // Whatever it is (malformed, a directory, unreadable), it must not block a start again.
      const reason = err instanceof MalformedHandoverError ? err.message : String(err)
      this.refuse(reason)
      return undefined
    }
    const reason = refusal(handover) ?? this.options.carried.incompatibility(handover.families)
    if (reason !== undefined) {
      this.refuse(reason, handover)
      return undefined
    }
    // The claim stays until the link names this process (takeOver), so a sibling that finds
    // neither a handover nor a live predecessor sees who is taking over, and waits for it.
    return handover
  }

  private refuse(reason: string, handover?: Handover): void {
    const aside = moveAside(this.claimPath, reason)
    this.options.log.warn(
      { from: handover?.pid, reason, moved_to: aside },
      'refused a handover; it does not continue this worker’s counts',
    )
  }

  /** Why a handover is not for this worker and moment, or `undefined`. */
  private staleness(handover: Handover): string | undefined {
    return handoverMismatch(handover, this.options.scope, this.options.workerId)
  }

  /**
   * Why a handover found with no live process speaking (a start, a predecessor gone) does not
   * continue this worker, or `undefined`. Only the process that spoke last writes a handover,
   * and it held the link: while the link names a process (one killed, say), the handover must
   * be that process'. Without a link (the last process stopped and removed it), its name,
   * scope and age are all there is to check.
   */
  private notFromLastSpeaker(handover: Handover): string | undefined {
    const mismatch = this.staleness(handover)
    if (mismatch !== undefined) return mismatch
    const holder = this.linkTarget()
    if (holder === undefined) return undefined
    const speaker = this.isSibling(holder) ? parseOwnSocket(holder)?.instance : undefined
    if (handover.instance === speaker) return undefined
    return `it is from ${handover.instance} (pid ${handover.pid}), but the link names ${holder}, the last process that spoke for this worker`
  }

  /** The socket of a live sibling that is taking a handover over right now, if any. */
  private async liveClaimer(): Promise<string | undefined> {
    for (const name of readdirSync(this.options.paths.dir)) {
      const claim = parseClaim(name)
      if (claim?.workerId !== this.options.workerId || claim.instance === this.options.instance) {
        continue
      }
      const socket = basename(this.options.paths.ownSocket(claim.workerId, claim.instance))
      if (await this.isLive(socket)) return socket
      removeIfPresent(join(this.options.paths.dir, name)) // the claimer died mid-way
    }
    return undefined
  }

  private linkTarget(): string | undefined {
    try {
      return readlinkSync(this.linkPath)
    } catch {
      return undefined
    }
  }

  /** A socket name of another process of this worker id in this directory. */
  private isSibling(name: string): boolean {
    return name !== this.ownName && parseOwnSocket(name)?.workerId === this.options.workerId
  }

  private isLive(socketName: string): Promise<boolean> {
    return this.probe.isLive(socketName)
  }

  private pointLinkHere(): void {
    const temporary = `${this.linkPath}.${this.options.instance}.tmp`
    removeIfPresent(temporary)
    symlinkSync(this.ownName, temporary)
    renameSync(temporary, this.linkPath) // atomic: siblings see the old target or the new one
  }

  /** Another live process of this worker id: a successor started by a reload. */
  private async hasLiveSibling(): Promise<boolean> {
    for (const name of readdirSync(this.options.paths.dir)) {
      if (this.isSibling(name) && (await this.isLive(name))) return true
    }
    return false
  }

  /**
   * Temporary files of this worker id's handover and link whose writers died mid-way (a
   * kill -9 between write and rename): nobody will ever rename them.
   */
  private removeDeadWritersTemporaries(): void {
    const { dir } = this.options.paths
    const handoverTemporary = `${basename(this.handoverPath)}.`
    const linkTemporary = `${basename(this.linkPath)}.`
    for (const name of readdirSync(dir)) {
      if (!name.endsWith('.tmp')) continue
      let pid: number | undefined
      if (name.startsWith(handoverTemporary)) {
        pid = Number(name.slice(handoverTemporary.length, -'.tmp'.length))
      } else if (name.startsWith(linkTemporary)) {
        const instance = name.slice(linkTemporary.length, -'.tmp'.length)
        if (instance === this.options.instance) continue
        pid = pidOfInstance(instance)
      }
      if (pid !== undefined && Number.isSafeInteger(pid) && pid > 0 && !pidExists(pid)) {
        removeIfPresent(join(dir, name))
      }
    }
  }

  /** Sockets of earlier processes of this worker id that died without closing (kill -9). */
  private async removeDeadSockets(): Promise<void> {
    const { dir } = this.options.paths
    for (const name of readdirSync(dir)) {
      if (this.isSibling(name) && (await this.probe.isDead(name))) {
        removeIfPresent(join(dir, name))
        removeIfPresent(this.options.paths.stoppingMarkFor(name))
      }
    }
  }
}

function isSocket(path: string): boolean {
  return lstatSync(path, { throwIfNoEntry: false })?.isSocket() ?? false
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}
