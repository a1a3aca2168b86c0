// Native histograms beside the classic `http_request_duration_seconds`, opt-in: every
// observation that reaches a classic series reaches a native histogram of the same labels, and
// whatever clears a classic series (reset, remove, zero) clears its native histogram, so the two
// always describe the same observations (their count and sum agree). Only the protobuf
// exposition carries native histograms; the text formats never show them.
import type { Histogram, HistogramConfiguration, LabelValues } from 'prom-client'
import {
  NativeHistogram,
  type NativeHistogramOptions,
  type NativeHistogramSnapshot,
  type NativeHistogramState,
  nativeOptionsProblem,
} from '../lib/native-histogram'
import { type Labels, labelsOfArguments } from '../lib/prom-client-internals'
import type { CarriedFamily } from '../succession/carried-family'
import type { NativeCarry, NativeSeries } from '../succession/native-carry'
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

  /**
   * What the exposition shows for each series at this moment, to render with classic values
   * read in the same tick: no observation can fall between the two.
   */
  snapshotNow(): (labels: Readonly<Record<string, string>>) => NativeHistogramSnapshot | undefined {
    const snapshots = new Map<string, NativeHistogramSnapshot>()
    for (const [key, histogram] of this.byKey) snapshots.set(key, histogram.snapshot())
    return (labels) => snapshots.get(this.keyOf(labels))
  }

  /** Adds a classic series' observations, approximated (NativeHistogram.fromClassic). */
  addClassic(labels: Readonly<Record<string, string | number>>, classic: ClassicSeries): void {
    const { buckets, count, sum } = classic
    this.histogramFor(labels).add(NativeHistogram.fromClassic(buckets, count, sum, this.options))
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

type AnyObserve = (...args: unknown[]) => void

/** A classic histogram that also records into native histograms (nativeBackedHistogram). */
export type NativeBackedHistogram<T extends string> = Histogram<T> & {
  readonly native: NativeHistogramStore
}

type NativeBackedClass = new <T extends string>(
  configuration: HistogramConfiguration<T>,
  options: NativeHistogramOptions,
) => NativeBackedHistogram<T>

/** One subclass per client's Histogram, made when first asked for. */
const subclasses = new WeakMap<typeof Histogram, NativeBackedClass>()

/**
 * A histogram of `Base` (the registry's client's Histogram) that also records into native
 * histograms of the same label sets.
 */
export function nativeBackedHistogram<T extends string>(
  Base: typeof Histogram,
  configuration: HistogramConfiguration<T>,
  options: NativeHistogramOptions,
): NativeBackedHistogram<T> {
  let Subclass = subclasses.get(Base)
  if (Subclass === undefined) {
    Subclass = nativeBackedClass(Base)
    subclasses.set(Base, Subclass)
  }
  return new Subclass(configuration, options)
}

function nativeBackedClass(Base: typeof Histogram): NativeBackedClass {
  // The client sets `observe` on each instance (with or without exemplars), so it is wrapped
  // here rather than overridden.
  class NativeBacked<T extends string> extends Base<T> {
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
          native
            .histogramFor({})
            .observe((typeof args[0] === 'number' ? args[0] : args[1]) as number)
        }
      }) as typeof this.observe
    }

    override labels(...args: unknown[]): Histogram.Internal<T> {
      const child = (Base.prototype.labels as (...a: unknown[]) => Histogram.Internal<T>).apply(
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
      ;(Base.prototype.remove as AnyObserve).apply(this, args)
      this.native.clear(labelsOfArguments(this.native.labelNames, args))
    }

    override zero(labels: LabelValues<T>): void {
      super.zero(labels)
      this.native.clear(labels)
    }
  }
  return NativeBacked as unknown as NativeBackedClass
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
export function nativeCarry(name: string, store: NativeHistogramStore): NativeCarry {
  return {
    snapshot: () => {
      const snapshotFor = store.snapshotNow()
      return (metricName, labels) => (metricName === name ? snapshotFor(labels) : undefined)
    },
    states: () => store.states().map((entry) => ({ name, ...entry })),
    add: (series, families) => addSeries(name, store, series, families),
    detached: (series, families) => {
      const departed = store.emptyCopy()
      const dropped = addSeries(name, departed, series, families)
      return {
        nativeFor: (metricName, labels) =>
          metricName === name ? departed.snapshotFor(labels) : undefined,
        dropped,
      }
    },
  }
}

/** A classic histogram series of a handover: cumulative buckets, count and sum. */
export interface ClassicSeries {
  labels: Labels
  buckets: Array<{ upperBound: number; cumulative: number }>
  count: number
  sum: number
}

/**
 * Adds a predecessor's native histograms to `store` so that every classic series of `name` it
 * carries has one holding exactly its observations: a series' native histogram is taken if its
 * count is the classic count, and otherwise (none, as from a process without native
 * histograms; fewer or more observations; not valid) made from the classic buckets. Returns
 * how many native histograms were left out.
 */
function addSeries(
  name: string,
  store: NativeHistogramStore,
  series: readonly NativeSeries[],
  families: readonly CarriedFamily[],
): number {
  const classic = classicSeries(name, store, families)
  const continued = new Set<string>()
  let dropped = 0
  for (const entry of series) {
    const key = entry.name === name ? store.keyOf(entry.labels) : undefined
    const count = key === undefined ? undefined : classic.get(key)?.count
    const state = entry.state as { count?: unknown }
    if (key === undefined || continued.has(key) || state.count !== count) {
      dropped++
      continue
    }
    try {
      store.addState(entry.labels, entry.state)
      continued.add(key)
    } catch {
      dropped++
    }
  }
  for (const [key, one] of classic) if (!continued.has(key)) store.addClassic(one.labels, one)
  return dropped
}

/** The classic series of histogram `name` in `families`, by the store's key of their labels. */
function classicSeries(
  name: string,
  store: NativeHistogramStore,
  families: readonly CarriedFamily[],
): Map<string, ClassicSeries> {
  const bySeries = new Map<string, ClassicSeries>()
  const family = families.find((f) => f.name === name && f.type === 'histogram')
  for (const value of family?.values ?? []) {
    const key = store.keyOf(value.labels)
    let one = bySeries.get(key)
    if (one === undefined) {
      one = { labels: value.labels, buckets: [], count: 0, sum: 0 }
      bySeries.set(key, one)
    }
    if (value.metricName === `${name}_count`) one.count = value.value
    else if (value.metricName === `${name}_sum`) one.sum = value.value
    else if (value.metricName === `${name}_bucket`) {
      const le = value.labels.le
      one.buckets.push({
        upperBound: le === '+Inf' ? Number.POSITIVE_INFINITY : Number(le),
        cumulative: value.value,
      })
    }
  }
  return bySeries
}
