// The gather's own health metrics, added by the worker that answers a scrape. They carry no
// answering-worker label, so their series stay the same whichever worker a scrape lands on.
import type { Registry } from 'prom-client'
import { clientFor } from '../lib/metrics-client'
import type { UnsafeReason } from '../run-dir/private-dir'

/** The gather's own health, from the answering worker's point of view. */
export interface GatherReport {
  expected: readonly string[]
  answered: readonly string[]
  durationSeconds: number
  timeoutSeconds: number
  /** Why the socket directory is not trusted, if it is not: the worker then answered alone. */
  untrusted?: UnsafeReason
  /** Families of one worker left out of the merge: typed otherwise than the first worker's. */
  familiesDropped?: number
}

/**
 * Adds the gather-health metrics to a merged registry. They carry no answering-worker label, so
 * their series stay the same whichever worker a scrape lands on.
 */
export function addGatherMetrics(registry: Registry, report: GatherReport): void {
  const { Gauge } = clientFor(registry)
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
  // A gauge of this scrape, not a counter: a count kept by each answering worker would go up
  // and down as scrapes land on one worker or another.
  gauge(
    'cluster_metrics_families_dropped',
    'Metric families of a worker left out of this scrape because another worker types them differently (as during a rolling deploy that changes a type).',
    report.familiesDropped ?? 0,
  )
  gauge(
    'cluster_metrics_socket_dir_private',
    '1 if the workers’ socket directory is private; 0: the answering worker trusts no sibling and answers alone.',
    report.untrusted === undefined ? 1 : 0,
  )
  if (report.untrusted !== undefined) {
    new Gauge({
      name: 'cluster_metrics_socket_dir_problem',
      help: 'Why the workers’ socket directory is not trusted (1 for the reason that applies).',
      labelNames: ['reason'],
      registers: [registry],
    }).set({ reason: report.untrusted }, 1)
  }
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
