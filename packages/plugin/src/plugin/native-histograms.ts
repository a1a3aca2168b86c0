// Native histograms beside the classic `http_request_duration_seconds`, opt-in: every
// observation that reaches a classic series reaches a native histogram of the same labels, and
// whatever clears a classic series (reset, remove, zero) clears its native histogram, so the two
// always describe the same observations (their count and sum agree). Only the protobuf
// exposition carries native histograms; the text formats never show them.
import { Histogram, type HistogramConfiguration, type LabelValues } from 'prom-client'
import type { NativeCarry, NativeSeries } from '../cluster/native-carry'
import type { NativeFor } from '../cluster/protobuf/render'
import {
  NativeHistogram,
  type NativeHistogramOptions,
  type NativeHistogramSnapshot,
  type NativeHistogramState,
  nativeOptionsProblem,
} from '../lib/native-histogram'
import type { Labels } from '../lib/prom-client-internals'
import { RequestSeries } from './request-series'

/**
 * The plugin's option: `false` (the default) for none, `true` for the default settings, or the
 * histograms' settings.
 */
export type NativeHistogramsOption = boolean | NativeHistogramOptions

/** The option checked, or a TypeError naming what is wrong. */
export function nativeHistogramOptions(
  option: NativeHistogramsOption | undefined,
): NativeHistogramOptions | undefined {
  if (option === undefined || option === false) return undefined
  if (option === true) return {}
  if (typeof option !== 'object' || option === null) {
    throw new TypeError(
      `metrics nativeHistograms must be a boolean or an object, got ${String(option)}`,
    )
  }
  const problem = nativeOptionsProblem(option)
  if (problem !== undefined) throw new TypeError(`metrics nativeHistograms ${problem}`)
  return {
    schema: option.schema,
    maxBuckets: option.maxBuckets,
    zeroThreshold: option.zeroThreshold,
  }
}

/**
 * The native histograms of one metric, one per label set. A label set is keyed by the values of
 * the metric's own label names, in their declared order (a missing one as absent): labels a
 * registry adds to every series when it renders (its default labels) and `le` do not take part,
 * so the key is the same whether it comes from an observation or from a rendered series.
 */
export class NativeHistogramStore {
  private readonly byKey = new Map<string, NativeHistogram>()

  constructor(
    readonly labelNames: readonly string[],
    private readonly options: NativeHistogramOptions,
  ) {}

  keyOf(labels: Readonly<Record<string, string | number | undefined>>): string {
    return JSON.stringify(
      this.labelNames.map((name) => (labels[name] === undefined ? null : String(labels[name]))),
    )
  }

  /** A store with the same label names and settings, and no histograms. */
  emptyCopy(): NativeHistogramStore {
    return new NativeHistogramStore(this.labelNames, this.options)
  }

  /** The histogram of a label set, created empty the first time. */
  histogramFor(labels: Readonly<Record<string, string | number | undefined>>): NativeHistogram {
    const key = this.keyOf(labels)
    let histogram = this.byKey.get(key)
    if (histogram === undefined) {
      histogram = new NativeHistogram(this.options)
      this.byKey.set(key, histogram)
    }
    return histogram
  }

  /** What the exposition shows for a rendered series, or `undefined` if it has no histogram. */
  snapshotFor(labels: Readonly<Record<string, string>>): NativeHistogramSnapshot | undefined {
    return this.byKey.get(this.keyOf(labels))?.snapshot()
  }

  /** Each histogram's label values (by the metric's label names) and contents. */
  states(): Array<{ labels: Record<string, string>; state: NativeHistogramState }> {
    const out: Array<{ labels: Record<string, string>; state: NativeHistogramState }> = []
    for (const [key, histogram] of this.byKey) {
      if (histogram.count === 0) continue
      const values = JSON.parse(key) as Array<string | null>
      const labels: Record<string, string> = {}
      this.labelNames.forEach((name, i) => {
        if (values[i] !== null) labels[name] = values[i] as string
      })
      out.push({ labels, state: histogram.toState() })
    }
    return out
  }

  /**
   * Adds a predecessor's histogram of `labels` to this one's (brought to this store's schema).
   * Throws a TypeError naming the problem if `state` is not a histogram's.
   */
  addState(labels: Readonly<Record<string, string>>, state: unknown): void {
    this.histogramFor(labels).add(NativeHistogram.fromState(state, this.options))
  }

  /**
   * Cleared in place rather than deleted: a recorder keeps its histogram for the direct path,
   * and its next observation starts it afresh, as prom-client starts the classic series.
   */
  clear(labels?: Readonly<Record<string, string | number | undefined>>): void {
    if (labels === undefined) for (const histogram of this.byKey.values()) histogram.reset()
    else this.byKey.get(this.keyOf(labels))?.reset()
  }
}

/** prom-client's reading of `labels(...)` / `remove(...)` arguments: an object, or values in order. */
function labelsOfArguments(labelNames: readonly string[], args: unknown[]): Labels {
  if (typeof args[0] === 'object' && args[0] !== null) return args[0] as Labels
  const labels: Labels = {}
  labelNames.forEach((name, i) => {
    if (args[i] !== undefined) labels[name] = args[i] as string
  })
  return labels
}

type AnyObserve = (...args: unknown[]) => void

/**
 * A classic histogram that also records into native histograms. prom-client sets `observe` on
 * each instance (with or without exemplars), so it is wrapped here rather than overridden.
 */
export class NativeBackedHistogram<T extends string> extends Histogram<T> {
  readonly native: NativeHistogramStore

  constructor(configuration: HistogramConfiguration<T>, options: NativeHistogramOptions) {
    super(configuration)
    const labelNames = configuration.labelNames ?? []
    const native = new NativeHistogramStore(labelNames, options)
    this.native = native
    const exemplars = configuration.enableExemplars === true
    const classic = this.observe as AnyObserve
    this.observe = ((...args: unknown[]) => {
      classic.apply(this, args) // throws on a bad value or label: nothing reaches the native one
      if (exemplars) {
        const data = (args[0] ?? {}) as {
          labels?: Labels
          value: number
          exemplarLabels?: Labels
        }
        const histogram = native.histogramFor(data.labels ?? {})
        const exemplar = data.exemplarLabels
        if (exemplar !== undefined && Object.keys(exemplar).length > 0) {
          histogram.observeWithExemplar(data.value, stringValues(exemplar), Date.now())
        } else histogram.observe(data.value)
      } else if (typeof args[0] === 'object' && args[0] !== null) {
        native.histogramFor(args[0] as Labels).observe(args[1] as number)
      } else {
        // prom-client's `observe(value)`, or `observe(undefined, value)`.
        native.histogramFor({}).observe((typeof args[0] === 'number' ? args[0] : args[1]) as number)
      }
    }) as typeof this.observe
  }

  override labels(...args: unknown[]): Histogram.Internal<T> {
    const child = (Histogram.prototype.labels as (...a: unknown[]) => Histogram.Internal<T>).apply(
      this,
      args,
    )
    const histogram = this.native.histogramFor(labelsOfArguments(this.native.labelNames, args))
    return {
      observe: (value: number) => {
        child.observe(value)
        histogram.observe(value)
      },
      // Its end calls this.observe, which records both.
      startTimer: child.startTimer,
    }
  }

  override reset(): void {
    super.reset()
    // prom-client's constructor calls reset() before this class has set `native`.
    this.native?.clear()
  }

  override remove(...args: unknown[]): void {
    ;(Histogram.prototype.remove as AnyObserve).apply(this, args)
    this.native.clear(labelsOfArguments(this.native.labelNames, args))
  }

  override zero(labels: LabelValues<T>): void {
    super.zero(labels)
    this.native.clear(labels)
  }
}

function stringValues(labels: Labels): Record<string, string> {
  const out: Record<string, string> = {}
  for (const [name, value] of Object.entries(labels)) out[name] = String(value)
  return out
}

/**
 * A request series whose direct writes (the hot path, which bypasses prom-client's API) also
 * reach its native histogram; writes through the API reach it through NativeBackedHistogram.
 * A class of its own, so that without native histograms the hot path is exactly as before.
 */
export class NativeRequestSeries extends RequestSeries {
  constructor(
    counter: ConstructorParameters<typeof RequestSeries>[0],
    histogram: ConstructorParameters<typeof RequestSeries>[1],
    labels: Labels,
    private readonly native: NativeHistogram,
  ) {
    super(counter, histogram, labels)
  }

  override record(seconds: number): void {
    this.count()
    if (this.observeDirect(seconds)) this.native.observe(seconds)
    else this.observeThroughApi(seconds)
  }
}

/** The store as the cluster view carries it across a worker's processes. */
export function nativeCarry(
  name: string,
  store: NativeHistogramStore,
  nativeFor: NativeFor,
): NativeCarry {
  return {
    nativeFor,
    states: () => store.states().map((entry) => ({ name, ...entry })),
    add: (series) => addSeries(name, store, series),
    detached: (series) => {
      const departed = store.emptyCopy()
      const dropped = addSeries(name, departed, series)
      return {
        nativeFor: (metricName, labels) =>
          metricName === name ? departed.snapshotFor(labels) : undefined,
        dropped,
      }
    },
  }
}

/** Adds each of `series` to `store`; returns how many were left out (not valid, unknown). */
function addSeries(name: string, store: NativeHistogramStore, series: readonly NativeSeries[]) {
  let dropped = 0
  for (const entry of series) {
    try {
      if (entry.name !== name) throw new TypeError(`${entry.name} has none here`)
      store.addState(entry.labels, entry.state)
    } catch {
      dropped++
    }
  }
  return dropped
}
