// The pure half of the cluster view: snapshots of each worker's registry in, one registry out.
// No sockets and no Fastify here, so it can be tested with plain fixtures.
import { AggregatorRegistry, Gauge, type Registry } from 'prom-client'

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
 * such a value as "undefined"; do the same before serialising.
 */
export function encodeSnapshot(snapshot: WorkerSnapshot): string {
  return JSON.stringify(snapshot, (key, value) => {
    if (key === 'labels' && value !== null && typeof value === 'object') {
      const labels: Record<string, string | number> = {}
      for (const [name, labelValue] of Object.entries(value)) {
        labels[name] = labelValue === undefined ? 'undefined' : (labelValue as string | number)
      }
      return labels
    }
    return value
  })
}

export function decodeSnapshot(text: string): WorkerSnapshot {
  const parsed = JSON.parse(text) as WorkerSnapshot
  if (typeof parsed?.workerId !== 'string' || !Array.isArray(parsed.metrics)) {
    throw new Error('malformed worker snapshot')
  }
  return parsed
}

/**
 * Merges workers' snapshots into one registry with prom-client's AggregatorRegistry.
 *
 * Every worker's series carry a distinct `worker_id`, so series never meet; the aggregator is
 * forced to `first` for all metrics because (a) `omit` metrics such as
 * `process_start_time_seconds` must still appear per worker, and (b) should two snapshots ever
 * share a label set, emitting one of them is right and summing them is not.
 * At most one snapshot per worker id is used: the first given wins.
 */
export function mergeSnapshots(snapshots: readonly WorkerSnapshot[]): Registry {
  const seen = new Set<string>()
  const arrays: MetricsSnapshot[] = []
  for (const snapshot of snapshots) {
    if (seen.has(snapshot.workerId)) continue
    seen.add(snapshot.workerId)
    arrays.push(snapshot.metrics.map((metric) => ({ ...metric, aggregator: 'first' })))
  }
  return AggregatorRegistry.aggregate(
    arrays as unknown as Parameters<typeof AggregatorRegistry.aggregate>[0],
  )
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
