// One labelled series of the request counter and histogram, written on every request.
// prom-client's `inc(labels)` / `observe(labels, v)` (and their `labels()` children) rebuild
// the label hash, validate every label name and allocate on each call: about half of what the
// plugin adds to a request. Here prom-client creates the series once through its public API,
// and later requests add to that same stored entry directly. The entry is checked on every
// write (`reset()`, `remove()` or `resetMetrics()` replace it; how the entry is found is the
// client's own, lib/prom-client-internals.ts), and anything unexpected falls
// back to the public API, so the exposition is always exactly what prom-client would produce.
// A traced request goes through the public API too: prom-client keeps its exemplar.
import type { Counter, Histogram } from 'prom-client'
import { clientOf } from '../lib/metrics-client'
import {
  type ClientInternals,
  type CounterEntry,
  exemplarsEnabled,
  type HistogramEntry,
  type Labels,
  type StoredSeries,
  upperBoundsOf,
} from '../lib/prom-client-internals'

export class RequestSeries {
  private counterSeries: StoredSeries<CounterEntry> | undefined
  private histogramSeries: StoredSeries<HistogramEntry> | undefined
  /** How the metrics' client stores a series. */
  private readonly internals: ClientInternals
  /** Whether the metrics keep exemplars, which changes prom-client's `inc` / `observe` form. */
  private readonly exemplars: boolean
  /** Histogram upper bounds, and the same as the property names prom-client keys buckets by. */
  private readonly bounds: readonly number[]
  private readonly boundKeys: readonly string[]

  constructor(
    private readonly counter: Counter<string>,
    private readonly histogram: Histogram<string>,
    private readonly labels: Labels,
  ) {
    this.bounds = upperBoundsOf(histogram)
    this.boundKeys = this.bounds.map(String)
    this.exemplars = exemplarsEnabled(counter) && exemplarsEnabled(histogram)
    this.internals = clientOf(counter).internals
  }

  /** One answered request: counted, and its duration observed. */
  record(seconds: number): void {
    this.count()
    if (!this.observeDirect(seconds)) this.observeThroughApi(seconds)
  }

  /**
   * One answered request of a trace: counted and observed through prom-client's API, each with
   * `exemplar` (e.g. `{ trace_id }`) as the exemplar of the counter and of the request's bucket.
   */
  recordTraced(seconds: number, exemplar: Labels): void {
    if (this.exemplars) {
      this.countTraced(exemplar)
      this.histogram.observe({ labels: this.labels, value: seconds, exemplarLabels: exemplar })
    } else this.record(seconds)
  }

  /** One request of a trace counted without a duration, `exemplar` on the counter. */
  countTraced(exemplar: Labels): void {
    if (this.exemplars)
      this.counter.inc({ labels: this.labels, value: 1, exemplarLabels: exemplar })
    else this.count()
  }

  /** One request counted without a duration (the client left before the answer). */
  count(): void {
    const series = this.counterSeries
    if (series?.stillStored()) {
      series.entry.value += 1
      return
    }
    if (this.exemplars) this.counter.inc({ labels: this.labels })
    else this.counter.inc(this.labels)
    const found = this.internals.counterSeries(this.counter, this.labels)
    this.counterSeries = typeof found?.entry.value === 'number' ? found : undefined
  }

  /**
   * Adds the duration to the stored entry, if it is still prom-client's; `false` when the caller
   * must go through the API instead (no entry yet, or it was replaced).
   */
  protected observeDirect(seconds: number): boolean {
    const series = this.histogramSeries
    if (series === undefined || !Number.isFinite(seconds) || !series.stillStored()) return false
    const entry = series.entry
    entry.sum += seconds
    entry.count += 1
    // As prom-client does: the first bucket whose bound holds the value; none above the last.
    const bounds = this.bounds
    for (let i = 0; i < bounds.length; i++) {
      if (seconds <= bounds[i]) {
        entry.bucketValues[this.boundKeys[i]] += 1
        return true
      }
    }
    return true
  }

  /** Observes through prom-client's API, then finds the stored entry for the direct path. */
  protected observeThroughApi(seconds: number): void {
    if (this.exemplars) this.histogram.observe({ labels: this.labels, value: seconds })
    else this.histogram.observe(this.labels, seconds)
    const found = this.internals.histogramSeries(this.histogram, this.labels)
    const entry = found?.entry
    // Only an entry shaped as expected, with a bucket for every bound, is written directly.
    const usable =
      entry !== undefined &&
      typeof entry.sum === 'number' &&
      typeof entry.count === 'number' &&
      this.bounds.length > 0 &&
      this.boundKeys.every((k) => typeof entry.bucketValues?.[k] === 'number')
    this.histogramSeries = usable ? found : undefined
  }
}
