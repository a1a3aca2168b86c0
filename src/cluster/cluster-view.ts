// The cluster view: whichever worker receives GET /metrics gathers every live sibling's
// snapshot over its unix socket, in parallel and under a deadline, adds its own registry
// directly, and answers with the merge plus the gather's own health metrics.
import { readdirSync } from 'node:fs'
import type { Registry } from 'prom-client'
import { addGatherMetrics, mergeSnapshots, snapshotOf, type WorkerSnapshot } from './merge'
import { fetchSnapshot } from './snapshot-client'
import { SnapshotServer } from './snapshot-server'
import type { SocketPaths } from './socket-paths'

/** Share of Prometheus' scrape timeout the gather may use, leaving the rest for the reply. */
export const SCRAPE_TIMEOUT_SHARE = 0.5

export interface ClusterViewOptions {
  registry: Registry
  workerId: string
  paths: SocketPaths
  /** Number of PM2 instances; when unknown, the worker links found on disk are expected. */
  instances: number | undefined
  /** Upper bound of one gather, in milliseconds. */
  gatherTimeoutMs: number
  /** Told about workers that did not answer and about socket errors. */
  onMissing?: (workerIds: string[], budgetMs: number) => void
  onError?: (err: Error) => void
}

export interface GatherResult {
  text: string
  expected: string[]
  answered: string[]
  durationMs: number
}

export class ClusterView {
  private readonly server: SnapshotServer

  constructor(private readonly options: ClusterViewOptions) {
    this.server = new SnapshotServer(
      options.registry,
      options.workerId,
      options.paths,
      options.onError,
    )
  }

  start(): Promise<void> {
    return this.server.start()
  }

  close(): Promise<void> {
    return this.server.close()
  }

  /**
   * Gathers every expected worker. `scrapeTimeoutSeconds` is Prometheus'
   * `X-Prometheus-Scrape-Timeout-Seconds`: the gather then ends well inside it.
   */
  async gather(scrapeTimeoutSeconds?: string): Promise<GatherResult> {
    const started = performance.now()
    const budgetMs = gatherBudgetMs(this.options.gatherTimeoutMs, scrapeTimeoutSeconds)
    const deadline = new AbortController()
    const timer = setTimeout(() => deadline.abort(), budgetMs)
    const { registry, workerId, paths } = this.options
    // After a reload replaced this process' worker id, its successor speaks for that id.
    const selfIsCurrent = !this.server.isSuperseded()
    const expected = this.expectedWorkerIds()

    const results = await Promise.allSettled(
      expected.map((id): Promise<WorkerSnapshot> => {
        if (id === workerId && selfIsCurrent) {
          return snapshotOf(registry).then((metrics) => ({ workerId, pid: process.pid, metrics }))
        }
        return fetchSnapshot(paths.linkFor(id), deadline.signal)
      }),
    )
    clearTimeout(timer)

    const snapshots: WorkerSnapshot[] = []
    const missing: string[] = []
    results.forEach((result, i) => {
      if (result.status === 'fulfilled') snapshots.push(result.value)
      else missing.push(expected[i])
    })
    if (missing.length > 0) this.options.onMissing?.(missing, budgetMs)

    const merged = mergeSnapshots(snapshots)
    const answered = snapshots.map((snapshot) => snapshot.workerId)
    const durationMs = performance.now() - started
    addGatherMetrics(merged, {
      expected,
      answered,
      durationSeconds: durationMs / 1000,
      timeoutSeconds: budgetMs / 1000,
    })
    return { text: await merged.metrics(), expected, answered, durationMs }
  }

  /** Worker ids 0..instances-1 as PM2 numbers them, this worker's own id always among them. */
  private expectedWorkerIds(): string[] {
    const { instances, workerId, paths } = this.options
    const ids = new Set<string>([workerId])
    if (instances !== undefined) {
      for (let i = 0; i < instances; i++) ids.add(String(i))
    } else {
      for (const name of readdirSync(paths.dir)) {
        const match = /^(\d+)\.sock$/.exec(name)
        if (match) ids.add(match[1])
      }
    }
    return [...ids].sort((a, b) => Number(a) - Number(b) || a.localeCompare(b))
  }
}

/** The configured timeout, shortened to a share of Prometheus' own scrape timeout if smaller. */
export function gatherBudgetMs(configuredMs: number, scrapeTimeoutSeconds?: string): number {
  const scrapeSeconds =
    scrapeTimeoutSeconds === undefined ? Number.NaN : Number(scrapeTimeoutSeconds)
  if (!Number.isFinite(scrapeSeconds) || scrapeSeconds <= 0) return configuredMs
  return Math.max(1, Math.min(configuredMs, scrapeSeconds * 1000 * SCRAPE_TIMEOUT_SHARE))
}
