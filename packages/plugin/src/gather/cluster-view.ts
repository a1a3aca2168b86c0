// The cluster view: whichever worker receives GET /metrics gathers every sibling's exposition
// over its unix socket, in parallel and under a deadline, renders its own in process, and
// answers with the merged exposition plus the gather's own health metrics. Each worker renders
// its own registry; the answering worker only merges (text by family, protobuf by message).
import { existsSync, readdirSync, readlinkSync, writeFileSync } from 'node:fs'
import { basename, join } from 'node:path'
import type { Registry } from 'prom-client'
import {
  appendRendered,
  type DroppedFamily,
  type Exposition,
  type ExpositionFormat,
  RenderedMerge,
  type RenderedPart,
  renderRegistry,
  type TextFormat,
} from '../exposition/exposition'
import { InFlight } from '../lib/in-flight'
import { clientFor } from '../lib/metrics-client'
import { KeyedProblemLog, ProblemLog } from '../lib/problem-log'
import { removeIfPresent } from '../lib/remove-if-present'
import { UnsafeDirectoryError, type UnsafeReason } from '../run-dir/private-dir'
import {
  checkWorkerId,
  newInstance,
  parseOwnSocket,
  type SocketPaths,
  workerIdOfLink,
} from '../run-dir/socket-paths'
import { LivenessProbe } from '../run-dir/socket-probe'
import { CarriedMetrics } from '../succession/carried-metrics'
import { DepartedWorkers } from '../succession/departed-workers'
import type { NativeCarry } from '../succession/native-carry'
import { Succession, type SuccessionLog } from '../succession/succession'
import { ClampedScrapes } from './clamped-scrapes'
import { addGatherMetrics } from './gather-health'
import { ReceiveBuffers } from './receive-buffers'
import { type FetchedExposition, fetchExposition, type WorkerExposition } from './snapshot-client'
import { SnapshotServer } from './snapshot-server'

/** Share of Prometheus' scrape timeout the gather may use, leaving the rest for the reply. */
export const SCRAPE_TIMEOUT_SHARE = 0.5
/**
 * The shortest gather a scrape's timeout header can ask for (unless the configured timeout is
 * shorter). The header is anyone's to send: without a floor, `0.001` would cut every sibling
 * off. A healthy gather ends well inside it (tens of ms, docs/performance.md), and it stays
 * below half of any scrape timeout a Prometheus is given in practice (0.2 s or more), so a
 * real Prometheus' deadline is never raised. A gather cut short under it never answers a
 * scrape with a longer deadline (see gather()), so the floor protects the short scrape itself.
 */
export const MIN_GATHER_BUDGET_MS = 100
/** How often a worker checks that its directory, socket and link are still in place. */
const HEAL_INTERVAL_MS = 1000
/**
 * Siblings' receive buffers are dropped after this long without a gather: kept through a
 * burst of scrapes, never between the scrapes of a Prometheus (a second or more apart).
 */
const RECEIVE_IDLE_MS = 500

/** The metrics whose counts continue across a worker's processes (reload, restart). */
export const DEFAULT_CARRIED_METRICS = ['http_requests_total', 'http_request_duration_seconds']

export interface ClusterViewOptions {
  registry: Registry
  workerId: string
  paths: SocketPaths
  /** App and port (e.g. `webapp:5000`): a handover of counts never crosses them. */
  scope: string
  /** Upper bound of one gather, in milliseconds. */
  gatherTimeoutMs: number
  /** Counters and histograms handed from one process of a worker to the next. */
  carriedMetrics?: readonly string[]
  /**
   * A gather that ended less than this many milliseconds ago answers the next scrape in the
   * same format (0: never), and a render of this worker's own part answers every sibling's
   * gather within as long. It bounds the work of scrapers that come faster than any Prometheus
   * does (a storm, many replicas) to one gather and one render per window per worker.
   */
  reuseMs?: number
  /**
   * Native histograms of this worker's histogram series: their fields in protobuf renders, and
   * their contents handed over across the worker's processes like the carried metrics.
   */
  native?: NativeCarry
  /** Told about workers that did not answer. */
  onMissing?: (workerIds: string[], budgetMs: number) => void
  onError?: (err: Error) => void
  log?: SuccessionLog
}

/** A gather's answer; `text` is the merged exposition: text, or protobuf's bytes. */
export interface GatherResult<Body extends Exposition = Exposition> {
  /**
   * The merged exposition in its format's own form: for the text formats a string, decoded
   * from `bytes` when first read; for protobuf the bytes themselves.
   */
  readonly exposition: Body
  /** The merged exposition as /metrics sends it (UTF-8 for the text formats). */
  bytes: Buffer
  expected: string[]
  answered: string[]
  durationMs: number
  /** The deadline the gather ran under. */
  budgetMs: number
}

const quietLog: SuccessionLog = { info: () => {}, warn: () => {} }

/** Errors of a dial that mean nobody listens behind a link any more. */
const GONE_CODES = new Set(['ECONNREFUSED', 'ENOENT'])

export class ClusterView {
  private readonly server: SnapshotServer
  private readonly instance = newInstance()
  private readonly socketPath: string
  private succession: Succession | undefined
  private departed: DepartedWorkers | undefined
  private healTimer: NodeJS.Timeout | undefined
  private healing = false
  /** Why the socket directory is not trusted now; this worker then answers alone. */
  private untrusted: UnsafeReason | undefined
  private readonly healProblems: ProblemLog
  /** Families a worker types otherwise than the others, logged once each. */
  private readonly droppedFamilies: KeyedProblemLog<DroppedFamily>
  private readonly probe: LivenessProbe
  private readonly clamped: ClampedScrapes
  private readonly receiveBuffers = new ReceiveBuffers(RECEIVE_IDLE_MS)
  /** The gather running in each format, with its budget (ms), shared by scrapes meanwhile. */
  private readonly gathering = new InFlight<ExpositionFormat, GatherResult, number>()
  /** The last gather of each format and when it ended, for `reuseMs`. */
  private readonly lastGather = new Map<
    ExpositionFormat,
    { result: GatherResult; endedAt: number }
  >()

  constructor(private readonly options: ClusterViewOptions) {
    const { workerId, paths } = options
    checkWorkerId(workerId)
    this.healProblems = new ProblemLog((err) => options.onError?.(err))
    this.droppedFamilies = new KeyedProblemLog(
      (dropped) => dropped.family,
      (dropped) =>
        (options.log ?? quietLog).warn(
          {
            family: dropped.family,
            source_worker_id: dropped.workerId,
            type: dropped.type,
            family_type: dropped.familyType,
          },
          'left a worker’s metric family out of the scrape: another worker types it differently',
        ),
    )
    this.probe = new LivenessProbe(paths.dir)
    this.socketPath = paths.ownSocket(workerId, this.instance)
    this.clamped = new ClampedScrapes(workerId, options.registry)
    this.server = new SnapshotServer(
      this.socketPath,
      { workerId, pid: process.pid, instance: this.instance },
      (format) => this.renderOwn(format),
      options.onError,
      options.reuseMs,
    )
  }

  /** Starts answering siblings and takes this worker id over; call once the metrics exist. */
  async start(): Promise<void> {
    const { registry, workerId, paths, scope } = this.options
    const carried = new CarriedMetrics(
      registry,
      this.options.carriedMetrics ?? DEFAULT_CARRIED_METRICS,
    )
    const log = this.options.log ?? quietLog
    this.succession = new Succession({
      paths,
      workerId,
      scope,
      instance: this.instance,
      carried,
      native: this.options.native,
      log,
    })
    this.departed = new DepartedWorkers({
      paths,
      scope,
      registry,
      carried,
      native: this.options.native,
      log,
    })
    await this.server.listen()
    await this.succession.start()
    this.healTimer = setInterval(() => void this.heal(), HEAL_INTERVAL_MS)
    this.healTimer.unref()
  }

  /**
   * Marks this process as stopping (call when a stop begins, before the drain): should it die
   * before it hands over, its worker id is not expected back, as after a graceful stop.
   */
  beginStop(): void {
    try {
      writeFileSync(this.stoppingMark(), '', { mode: 0o600 })
    } catch (err) {
      this.options.onError?.(err as Error)
    }
  }

  /** True while this process speaks for its worker id (not waiting for a predecessor). */
  speaksForWorker(): boolean {
    return this.succession?.isCurrent() ?? false
  }

  /** At a graceful stop, after the app's last request: hands the counts on, then closes. */
  async close(): Promise<void> {
    clearInterval(this.healTimer)
    try {
      await this.succession?.release()
    } finally {
      await this.server.close()
      this.receiveBuffers.clear()
      removeIfPresent(this.stoppingMark())
    }
  }

  private stoppingMark(): string {
    return this.options.paths.stoppingMarkFor(basename(this.socketPath))
  }

  /**
   * Gathers every expected worker in `format`. `scrapeTimeoutSeconds` is Prometheus'
   * `X-Prometheus-Scrape-Timeout-Seconds`: the gather then ends well inside it, but never
   * sooner than MIN_GATHER_BUDGET_MS (such scrapes are counted). A scrape that arrives while a
   * gather in the same format runs shares its result, as does one that arrives within
   * `reuseMs` of the last gather's end, unless that gather ran under a shorter deadline than
   * this scrape's and missed a worker: then this scrape gathers again.
   */
  gather(format?: TextFormat, scrapeTimeoutSeconds?: string): Promise<GatherResult<string>>
  gather(format: 'protobuf', scrapeTimeoutSeconds?: string): Promise<GatherResult<Uint8Array>>
  gather(format: ExpositionFormat, scrapeTimeoutSeconds?: string): Promise<GatherResult>
  async gather(
    format: ExpositionFormat = 'prometheus',
    scrapeTimeoutSeconds?: string,
  ): Promise<GatherResult> {
    const budget = gatherBudget(this.options.gatherTimeoutMs, scrapeTimeoutSeconds)
    if (budget.clamped) this.clamped.inc()
    const budgetMs = budget.ms
    for (;;) {
      const pending = this.gathering.get(format)
      if (pending === undefined) break
      if (pending.note >= budgetMs) return pending.promise
      const shorter = await pending.promise
      if (isComplete(shorter)) return shorter
      // Its deadline cut a worker off that this scrape would have waited for: gather again
      // (sharing any gather another such scrape started meanwhile).
    }
    const last = this.lastGather.get(format)
    const reuseMs = this.options.reuseMs ?? 0
    if (
      last !== undefined &&
      performance.now() - last.endedAt < reuseMs &&
      (last.result.budgetMs >= budgetMs || isComplete(last.result))
    ) {
      return last.result
    }
    const result = this.gatherNow(format, budgetMs).then((done) => {
      this.lastGather.set(format, { result: done, endedAt: performance.now() })
      return done
    })
    return this.gathering.start(format, result, budgetMs)
  }

  private async gatherNow(format: ExpositionFormat, budgetMs: number): Promise<GatherResult> {
    const started = performance.now()
    const deadline = new AbortController()
    const timer = setTimeout(() => deadline.abort(), budgetMs)
    const { workerId, paths } = this.options
    const untrusted = this.untrusted
    const selfIsCurrent = untrusted !== undefined || (this.succession?.isCurrent() ?? true)
    // In a directory others may write to, no sibling's answer can be trusted: answer alone.
    const expected = untrusted === undefined ? this.expectedWorkerIds() : [workerId]

    const results = await Promise.allSettled(
      expected.map((id): Promise<FetchedExposition> => {
        if (id === workerId && selfIsCurrent) {
          // Shared with the siblings asking for this worker's part meanwhile.
          return this.server
            .renderShared(format)
            .then((body) => ({ workerId, pid: process.pid, body, release: () => {} }))
        }
        return fetchExposition(paths.linkFor(id), id, format, deadline.signal, this.receiveBuffers)
      }),
    )
    clearTimeout(timer)
    try {
      return await this.mergeParts(format, budgetMs, started, expected, untrusted, results)
    } finally {
      // The merged answer is a copy: the siblings' buffers serve the next gather.
      for (const result of results) if (result.status === 'fulfilled') result.value.release()
    }
  }

  /** The answered parts, the departed workers' and the gather's health, merged. */
  private async mergeParts(
    format: ExpositionFormat,
    budgetMs: number,
    started: number,
    expected: string[],
    untrusted: UnsafeReason | undefined,
    results: PromiseSettledResult<WorkerExposition>[],
  ): Promise<GatherResult> {
    const parts: WorkerExposition[] = []
    const missing: string[] = []
    const departed = new Set<string>()
    for (const [i, result] of results.entries()) {
      if (result.status === 'fulfilled') parts.push(result.value)
      else if (this.hasDeparted(expected[i], result.reason)) departed.add(expected[i])
      else missing.push(expected[i])
    }
    if (missing.length > 0) this.options.onMissing?.(missing, budgetMs)

    const answered = parts.map((part) => part.workerId)
    const durationMs = performance.now() - started
    // In a directory others may write to, a handover is no worker's either.
    const left = untrusted === undefined ? await this.departedParts(expected, format) : []
    const dropped: DroppedFamily[] = []
    const merge = new RenderedMerge(format, (one) => dropped.push(one))
    for (const part of [...parts, ...left]) merge.add(part)
    this.droppedFamilies.round(dropped)
    const health = new (clientFor(this.options.registry).Registry)()
    addGatherMetrics(health, {
      expected: expected.filter((id) => !departed.has(id)),
      answered,
      untrusted,
      durationSeconds: durationMs / 1000,
      timeoutSeconds: budgetMs / 1000,
      familiesDropped: dropped.length,
    })
    merge.add({ workerId: '', body: await renderRegistry(health, format) })
    const bytes = merge.finish()
    let exposition: Exposition | undefined = format === 'protobuf' ? bytes : undefined
    return {
      bytes,
      get exposition() {
        exposition ??= bytes.toString('utf8')
        return exposition
      },
      expected,
      answered,
      durationMs,
      budgetMs,
    }
  }

  /**
   * This worker's registry in `format`, for its own part and for its siblings, followed by
   * the cluster view's own per-worker counters. Every series that lacks `worker_id` gets this
   * worker's (a registry of the app's own has no such default label), so two workers' series
   * never collide.
   */
  private async renderOwn(format: ExpositionFormat): Promise<Exposition> {
    const [registry, own] = await Promise.all([
      renderRegistry(this.options.registry, format, {
        nativeSnapshot: this.options.native?.snapshot,
        defaultLabels: { worker_id: this.options.workerId },
      }),
      this.clamped.render(format),
    ])
    return appendRendered(registry, own, format)
  }

  /** The last counts of workers that left, rendered by DepartedWorkers; none if unreadable. */
  private async departedParts(
    expected: readonly string[],
    format: ExpositionFormat,
  ): Promise<RenderedPart[]> {
    try {
      return (await this.departed?.render(new Set(expected), format)) ?? []
    } catch (err) {
      this.options.onError?.(err as Error)
      return []
    }
  }

  /**
   * The workers PM2 runs now: one link per worker id in the directory, a symbolic link to a
   * socket of that worker id. A process that stops gracefully (scale down, stop) removes its
   * link; a crashed one leaves it, so it stays expected (and shows as down) until PM2 has
   * restarted it. This worker is always expected.
   */
  private expectedWorkerIds(): string[] {
    const ids = new Set<string>([this.options.workerId])
    try {
      for (const entry of readdirSync(this.options.paths.dir, { withFileTypes: true })) {
        const id = workerIdOfLink(entry.name)
        if (id !== undefined && entry.isSymbolicLink()) ids.add(id)
      }
    } catch {
      // The directory is gone (a temp cleaner): this worker answers alone until heal() runs.
    }
    return [...ids].sort(compareWorkerIds)
  }

  /**
   * True if the worker did not answer because its process began a stop and is gone: a stop
   * that ended abnormally (killed at PM2's kill_timeout, scale down). PM2 will not restart it.
   * A crash leaves no stopping mark, so a crashed worker stays expected until PM2 restarts it.
   */
  private hasDeparted(workerId: string, reason: unknown): boolean {
    const code = (reason as NodeJS.ErrnoException | undefined)?.code
    if (code === undefined || !GONE_CODES.has(code)) return false
    const target = this.linkTarget(workerId)
    return target !== undefined && existsSync(this.options.paths.stoppingMarkFor(target))
  }

  private linkTarget(workerId: string): string | undefined {
    try {
      return readlinkSync(this.options.paths.linkFor(workerId))
    } catch {
      return undefined
    }
  }

  /**
   * Removes the links of processes that began a stop and died before they removed them, so
   * membership follows PM2's live workers even when a stop went wrong.
   */
  private async sweepDeparted(): Promise<void> {
    const { paths } = this.options
    for (const name of readdirSync(paths.dir)) {
      const id = workerIdOfLink(name)
      if (id === undefined || id === this.options.workerId) continue
      const target = this.linkTarget(id)
      if (target === undefined || parseOwnSocket(target)?.workerId !== id) continue
      if (!existsSync(paths.stoppingMarkFor(target))) continue
      if (!(await this.probe.isDead(target))) continue
      // Only if it still names that process: a successor may have just taken it.
      if (this.linkTarget(id) !== target) continue
      removeIfPresent(paths.linkFor(id))
      removeIfPresent(join(paths.dir, target))
      removeIfPresent(paths.stoppingMarkFor(target))
      this.options.log?.info(
        { departed_worker_id: id },
        'removed the link of a worker that stopped and died',
      )
    }
  }

  /**
   * Checks the directory is still private, and recreates the directory, the socket and the
   * link if something removed them. Until the directory is private again this worker trusts
   * no sibling and answers alone, saying why in its gather metrics.
   */
  private async heal(): Promise<void> {
    if (this.healing) return
    this.healing = true
    try {
      this.options.paths.ensure()
      if (this.untrusted !== undefined) {
        this.options.log?.info({}, 'the metrics socket directory is private again')
        this.untrusted = undefined
      }
      if (!this.server.isReachable()) await this.server.relisten()
      await this.sweepDeparted()
      this.healProblems.clear()
    } catch (err) {
      if (err instanceof UnsafeDirectoryError) {
        if (this.untrusted === undefined) {
          this.options.log?.warn(
            { err },
            'not trusting the metrics socket directory; answering alone',
          )
        }
        this.untrusted = err.reason
      } else {
        this.healProblems.report(err as Error)
      }
    } finally {
      this.healing = false
    }
  }
}

/** Numeric ids in numeric order (2 before 10), then any others by name. */
export function compareWorkerIds(a: string, b: string): number {
  const an = Number(a)
  const bn = Number(b)
  const aNumeric = a !== '' && Number.isInteger(an)
  const bNumeric = b !== '' && Number.isInteger(bn)
  if (aNumeric && bNumeric) return an - bn
  if (aNumeric !== bNumeric) return aNumeric ? -1 : 1
  return a < b ? -1 : a > b ? 1 : 0
}

/** True if every worker the gather expected answered: no longer deadline could add to it. */
function isComplete(result: GatherResult): boolean {
  const answered = new Set(result.answered)
  return result.expected.every((id) => answered.has(id))
}

/**
 * The configured timeout, shortened to a share of Prometheus' own scrape timeout if smaller,
 * but not below MIN_GATHER_BUDGET_MS; `clamped` if the header asked for less than that.
 */
export function gatherBudget(
  configuredMs: number,
  scrapeTimeoutSeconds?: string,
): { ms: number; clamped: boolean } {
  const scrapeSeconds =
    scrapeTimeoutSeconds === undefined ? Number.NaN : Number(scrapeTimeoutSeconds)
  if (!Number.isFinite(scrapeSeconds) || scrapeSeconds <= 0) {
    return { ms: configuredMs, clamped: false }
  }
  const floor = Math.min(configuredMs, MIN_GATHER_BUDGET_MS)
  const asked = scrapeSeconds * 1000 * SCRAPE_TIMEOUT_SHARE
  if (asked < floor) return { ms: floor, clamped: true }
  return { ms: Math.min(configuredMs, asked), clamped: false }
}

/** The gather's deadline in milliseconds (see gatherBudget). */
export function gatherBudgetMs(configuredMs: number, scrapeTimeoutSeconds?: string): number {
  return gatherBudget(configuredMs, scrapeTimeoutSeconds).ms
}
