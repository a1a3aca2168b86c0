// The pure half of the cluster view: snapshots of each worker's registry in, one registry out.
// No sockets and no Fastify here, so it can be tested with plain fixtures.
import { Gauge, type Metric, Registry } from 'prom-client'

/** One metric as `Registry.getMetricsAsJSON()` returns it (histograms name each value). */
export interface MetricJson {
  name: string
  help: string
  type: string
  aggregator: string
  values: Array<{ value: number; labels: Record<string, string | number>; metricName?: string }>
}

export type MetricsSnapshot = MetricJson[]

/** `getMetricsAsJSON()` as the plain JSON shape it really is (prom-client's types are narrower). */
export async function snapshotOf(registry: Registry): Promise<MetricsSnapshot> {
  return (await registry.getMetricsAsJSON()) as unknown as MetricsSnapshot
}

/** One worker's answer to a gather: who it is and its `getMetricsAsJSON()`. */
export interface WorkerSnapshot {
  workerId: string
  pid: number
  metrics: MetricsSnapshot
}

/**
 * JSON drops properties whose value is `undefined`, so a label set to `undefined` would vanish
 * in transit and its series could collide with another. prom-client's own text output prints
 * such a value as "undefined"; do the same, in place (getMetricsAsJSON's label objects are
 * copies), before serialising.
 */
export function encodeSnapshot(snapshot: WorkerSnapshot): string {
  for (const metric of snapshot.metrics) {
    for (const value of metric.values) {
      for (const name in value.labels) {
        if (value.labels[name] === undefined) value.labels[name] = 'undefined'
      }
    }
  }
  return JSON.stringify(snapshot)
}

export function decodeSnapshot(text: string): WorkerSnapshot {
  const parsed = JSON.parse(text) as WorkerSnapshot
  if (typeof parsed?.workerId !== 'string' || !Array.isArray(parsed.metrics)) {
    throw new Error('malformed worker snapshot')
  }
  return parsed
}

/**
 * Merges workers' snapshots into one prom-client registry, which then renders the text.
 *
 * What AggregatorRegistry.aggregate does, less its per-series label hashing: every worker's
 * series carry a distinct `worker_id`, so nothing is ever combined and each metric's values are
 * simply gathered under its name, whatever its aggregator (`aggregate` would drop `omit`
 * metrics such as `process_start_time_seconds`, and sum series that share labels). At most one
 * snapshot per worker id is used, the first given, so two processes of one worker (old and new
 * during a reload) are never both in a scrape.
 */
export function mergeSnapshots(snapshots: readonly WorkerSnapshot[]): Registry {
  const byName = new Map<string, MetricJson>()
  const seen = new Set<string>()
  for (const snapshot of snapshots) {
    if (seen.has(snapshot.workerId)) continue
    seen.add(snapshot.workerId)
    for (const metric of snapshot.metrics) {
      shareSeriesLabels(metric)
      const merged = byName.get(metric.name)
      if (merged === undefined) byName.set(metric.name, { ...metric, values: [...metric.values] })
      else for (const value of metric.values) merged.values.push(value)
    }
  }
  const registry = new Registry()
  for (const metric of byName.values()) {
    // prom-client renders any object with a name, help, type and get(): as aggregate() does.
    registry.registerMetric({ ...metric, get: () => metric } as unknown as Metric)
  }
  return registry
}

type ValueWithSharedLabels = MetricJson['values'][number] & {
  sharedLabels?: Record<string, string | number>
}

/**
 * Gives a histogram's values one shared label object per series (the buckets, sum and count of
 * a series differ only by `le`), as prom-client's own histograms do. Its renderer formats a
 * shared object once, not once per bucket: this halves the cost of rendering a merged scrape.
 */
function shareSeriesLabels(metric: MetricJson): void {
  if (metric.type !== 'histogram') return
  let shared: Record<string, string | number> | undefined
  for (const value of metric.values as ValueWithSharedLabels[]) {
    if (value.sharedLabels !== undefined) continue // already shared
    const { le, ...seriesLabels } = value.labels
    if (shared === undefined || !sameLabels(shared, seriesLabels)) shared = seriesLabels
    value.sharedLabels = shared
    value.labels = le === undefined ? {} : { le }
  }
}

function sameLabels(a: Record<string, unknown>, b: Record<string, unknown>): boolean {
  let count = 0
  for (const key in b) {
    if (a[key] !== b[key]) return false
    count++
  }
  for (const _ in a) count--
  return count === 0
}

/** The gather's own health, from the answering worker's point of view. */
export interface GatherReport {
  expected: readonly string[]
  answered: readonly string[]
  durationSeconds: number
  timeoutSeconds: number
}

/**
 * Adds the gather-health metrics to a merged registry. They carry no answering-worker label, so
 * their series stay the same whichever worker a scrape lands on.
 */
export function addGatherMetrics(registry: Registry, report: GatherReport): void {
  const gauge = (name: string, help: string, value: number) => {
    new Gauge({ name, help, registers: [registry] }).set(value)
  }
  gauge(
    'cluster_metrics_workers_expected',
    'Workers the cluster view expected to answer this scrape.',
    report.expected.length,
  )
  gauge(
    'cluster_metrics_workers_answered',
    'Workers whose metrics are in this scrape.',
    report.answered.length,
  )
  gauge(
    'cluster_metrics_gather_duration_seconds',
    "Time taken to gather every worker's metrics for this scrape.",
    report.durationSeconds,
  )
  gauge(
    'cluster_metrics_gather_timeout_seconds',
    'Deadline the gather ran under for this scrape.',
    report.timeoutSeconds,
  )
  const up = new Gauge({
    name: 'cluster_metrics_worker_up',
    help: '1 if the worker answered the gather for this scrape, 0 if it was expected and did not.',
    labelNames: ['worker_id'],
    registers: [registry],
  })
  const answered = new Set(report.answered)
  for (const workerId of new Set([...report.expected, ...report.answered])) {
    up.set({ worker_id: workerId }, answered.has(workerId) ? 1 : 0)
  }
}
