// One labelled series of the request counter and histogram, written on every request.
// prom-client's `inc(labels)` / `observe(labels, v)` (and their `labels()` children) rebuild
// the label hash, validate every label name and allocate on each call: about half of what the
// plugin adds to a request. Here prom-client creates the series once through its public API,
// and later requests add to that same stored entry directly. The entry is checked on every
// write (`reset()`, `remove()` or `resetMetrics()` replace it), and anything unexpected falls
// back to the public API, so the exposition is always exactly what prom-client would produce.
// A traced request goes through the public API too: prom-client keeps its exemplar.
import type { Counter, Histogram } from 'prom-client'
import {
  type CounterEntry,
  counterEntries,
  exemplarsEnabled,
  type HistogramEntry,
  histogramEntries,
  type Labels,
  upperBoundsOf,
} from '../lib/prom-client-internals'

/** The key under which prom-client stores the series with these labels, once it exists. */
function keyOf(entries: Record<string, { labels: Labels }> | undefined, labels: Labels) {
  if (entries === undefined) return undefined
  const names = Object.keys(labels)
  for (const key of Object.keys(entries)) {
    const stored = entries[key]?.labels
    if (
      stored !== undefined &&
      Object.keys(stored).length === names.length &&
      names.every((name) => stored[name] === labels[name])
    ) {
      return key
    }
  }
  return undefined
}

export class RequestSeries {
  private counterKey: string | undefined
  private counterEntry: CounterEntry | undefined
  private histogramKey: string | undefined
  private histogramEntry: HistogramEntry | undefined
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
    const entry = this.counterEntry
    if (
      entry !== undefined &&
      counterEntries(this.counter)?.[this.counterKey as string] === entry
    ) {
      entry.value += 1
      return
    }
    if (this.exemplars) this.counter.inc({ labels: this.labels })
    else this.counter.inc(this.labels)
    const entries = counterEntries(this.counter)
    this.counterKey = keyOf(entries, this.labels)
    const found = this.counterKey === undefined ? undefined : entries?.[this.counterKey]
    this.counterEntry = typeof found?.value === 'number' ? found : undefined
  }

  /**
   * Adds the duration to the stored entry, if it is still prom-client's; `false` when the caller
   * must go through the API instead (no entry yet, or it was replaced).
   */
  protected observeDirect(seconds: number): boolean {
    const entry = this.histogramEntry
    if (
      entry === undefined ||
      !Number.isFinite(seconds) ||
      histogramEntries(this.histogram)?.[this.histogramKey as string] !== entry
    ) {
      return false
    }
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
    const entries = histogramEntries(this.histogram)
    const key = keyOf(entries, this.labels)
    const found = key === undefined ? undefined : entries?.[key]
    // Only an entry shaped as expected, with a bucket for every bound, is written directly.
    const usable =
      found !== undefined &&
      typeof found.sum === 'number' &&
      typeof found.count === 'number' &&
      this.bounds.length > 0 &&
      this.boundKeys.every((k) => typeof found.bucketValues?.[k] === 'number')
    this.histogramKey = usable ? key : undefined
    this.histogramEntry = usable ? found : undefined
  }
}
