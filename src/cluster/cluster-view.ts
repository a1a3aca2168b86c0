// The cluster view: whichever worker receives GET /metrics gathers every sibling's exposition
// over its unix socket, in parallel and under a deadline, renders its own in process, and
// answers with the merged text plus the gather's own health metrics. Each worker renders its
// own registry; the answering worker only merges text.
import { readdirSync } from 'node:fs'
import { Registry } from 'prom-client'
import { CarriedMetrics } from './carried-metrics'
import { type ExpositionFormat, mergeExpositions, renderRegistry } from './exposition'
import { addGatherMetrics } from './gather-health'
import { fetchExposition, type WorkerExposition } from './snapshot-client'
import { SnapshotServer } from './snapshot-server'
import { type SocketPaths, workerIdOfLink } from './socket-paths'
import { Succession, type SuccessionLog } from './succession'

/** Share of Prometheus' scrape timeout the gather may use, leaving the rest for the reply. */
export const SCRAPE_TIMEOUT_SHARE = 0.5
/** How often a worker checks that its directory, socket and link are still in place. */
const HEAL_INTERVAL_MS = 1000

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
   * same format (0: never). It bounds the work of scrapers that come faster than any
   * Prometheus does (a storm, many replicas) to one gather per window per worker.
   */
  reuseMs?: number
  /** Told about workers that did not answer. */
  onMissing?: (workerIds: string[], budgetMs: number) => void
  onError?: (err: Error) => void
  log?: SuccessionLog
}

export interface GatherResult {
  text: string
  expected: string[]
  answered: string[]
  durationMs: number
}

const quietLog: SuccessionLog = { info: () => {}, warn: () => {} }

export class ClusterView {
  private readonly server: SnapshotServer
  private readonly socketPath: string
  private succession: Succession | undefined
  private healTimer: NodeJS.Timeout | undefined
  private healing = false
  /** Gathers in flight, one per format: scrapes arriving meanwhile share them. */
  private readonly gathering = new Map<ExpositionFormat, Promise<GatherResult>>()
  /** The last gather of each format and when it ended, for `reuseMs`. */
  private readonly lastGather = new Map<
    ExpositionFormat,
    { result: GatherResult; endedAt: number }
  >()

  constructor(private readonly options: ClusterViewOptions) {
    const { registry, workerId, paths } = options
    this.socketPath = paths.ownSocket(workerId, process.pid)
    this.server = new SnapshotServer(
      this.socketPath,
      { workerId, pid: process.pid },
      (format) => renderRegistry(registry, format),
      options.onError,
    )
  }

  /** Starts answering siblings and takes this worker id over; call once the metrics exist. */
  async start(): Promise<void> {
    const { registry, workerId, paths } = this.options
    this.succession = new Succession({
      paths,
      workerId,
      scope: this.options.scope,
      socketPath: this.socketPath,
      carried: new CarriedMetrics(registry, this.options.carriedMetrics ?? DEFAULT_CARRIED_METRICS),
      log: this.options.log ?? quietLog,
    })
    await this.server.listen()
    this.succession.start()
    this.healTimer = setInterval(() => void this.heal(), HEAL_INTERVAL_MS)
    this.healTimer.unref()
  }

  /** At a graceful stop, after the app's last request: hands the counts on, then closes. */
  async close(): Promise<void> {
    clearInterval(this.healTimer)
    try {
      await this.succession?.release()
    } finally {
      await this.server.close()
    }
  }

  /**
   * Gathers every expected worker in `format`. `scrapeTimeoutSeconds` is Prometheus'
   * `X-Prometheus-Scrape-Timeout-Seconds`: the gather then ends well inside it. A scrape that
   * arrives while a gather in the same format runs shares its result, as does one that arrives
   * within `reuseMs` of the last gather's end.
   */
  gather(
    format: ExpositionFormat = 'prometheus',
    scrapeTimeoutSeconds?: string,
  ): Promise<GatherResult> {
    let pending = this.gathering.get(format)
    if (pending !== undefined) return pending
    const last = this.lastGather.get(format)
    const reuseMs = this.options.reuseMs ?? 0
    if (last !== undefined && performance.now() - last.endedAt < reuseMs) {
      return Promise.resolve(last.result)
    }
    pending = this.gatherNow(format, scrapeTimeoutSeconds)
      .then((result) => {
        this.lastGather.set(format, { result, endedAt: performance.now() })
        return result
      })
      .finally(() => this.gathering.delete(format))
    this.gathering.set(format, pending)
    return pending
  }

  private async gatherNow(
    format: ExpositionFormat,
    scrapeTimeoutSeconds: string | undefined,
  ): Promise<GatherResult> {
    const started = performance.now()
    const budgetMs = gatherBudgetMs(this.options.gatherTimeoutMs, scrapeTimeoutSeconds)
    const deadline = new AbortController()
    const timer = setTimeout(() => deadline.abort(), budgetMs)
    const { registry, workerId, paths } = this.options
    const selfIsCurrent = this.succession?.isCurrent() ?? true
    const expected = this.expectedWorkerIds()

    const results = await Promise.allSettled(
      expected.map((id): Promise<WorkerExposition> => {
        if (id === workerId && selfIsCurrent) {
          return renderRegistry(registry, format).then((text) => ({
            workerId,
            pid: process.pid,
            text,
          }))
        }
        return fetchExposition(paths.linkFor(id), id, format, deadline.signal)
      }),
    )
    clearTimeout(timer)

    const parts: WorkerExposition[] = []
    const missing: string[] = []
    results.forEach((result, i) => {
      if (result.status === 'fulfilled') parts.push(result.value)
      else missing.push(expected[i])
    })
    if (missing.length > 0) this.options.onMissing?.(missing, budgetMs)

    const answered = parts.map((part) => part.workerId)
    const durationMs = performance.now() - started
    const health = new Registry()
    addGatherMetrics(health, {
      expected,
      answered,
      durationSeconds: durationMs / 1000,
      timeoutSeconds: budgetMs / 1000,
    })
    parts.push({ workerId: '', pid: process.pid, text: await renderRegistry(health, format) })
    return { text: mergeExpositions(parts, format), expected, answered, durationMs }
  }

  /**
   * The workers PM2 runs now: one link per worker id in the directory. A process that stops
   * gracefully (scale down, stop) removes its link; a crashed one leaves it, so it stays
   * expected (and shows as down) until PM2 has restarted it. This worker is always expected.
   */
  private expectedWorkerIds(): string[] {
    const ids = new Set<string>([this.options.workerId])
    try {
      for (const name of readdirSync(this.options.paths.dir)) {
        const id = workerIdOfLink(name)
        if (id !== undefined) ids.add(id)
      }
    } catch {
      // The directory is gone (a temp cleaner): this worker answers alone until heal() runs.
    }
    return [...ids].sort(compareWorkerIds)
  }

  /** Recreates the directory, the socket and the link if something removed them. */
  private async heal(): Promise<void> {
    if (this.healing) return
    this.healing = true
    try {
      this.options.paths.ensure()
      if (!this.server.isReachable()) await this.server.relisten()
      this.succession?.heal()
    } catch (err) {
      this.options.onError?.(err as Error)
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

/** The configured timeout, shortened to a share of Prometheus' own scrape timeout if smaller. */
export function gatherBudgetMs(configuredMs: number, scrapeTimeoutSeconds?: string): number {
  const scrapeSeconds =
    scrapeTimeoutSeconds === undefined ? Number.NaN : Number(scrapeTimeoutSeconds)
  if (!Number.isFinite(scrapeSeconds) || scrapeSeconds <= 0) return configuredMs
  return Math.max(1, Math.min(configuredMs, scrapeSeconds * 1000 * SCRAPE_TIMEOUT_SHARE))
}
