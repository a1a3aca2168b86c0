// Counters and histograms that continue across the processes of one worker id. When a process
// stops gracefully (pm2 reload, restart, stop), its final values are handed to the next process
// of the same worker id, which adds them to its own: the worker's series never step back, so
// Prometheus neither loses the last seconds of the old process nor counts anything twice.
//
// The metrics stay plain prom-client metrics. In the registry each is replaced by a proxy of
// itself that renders the live values plus the carried base, and forgets the base on reset()
// and remove(); everything else (inc, labels, observe, startTimer, zero...) is the metric's own,
// so `registry.getSingleMetric(name)` is as usable as before.
import type { Metric, Registry, RegistryContentType } from 'prom-client'
import { clientFor } from '../lib/metrics-client'
import {
  asRenderable,
  defaultLabelsOf,
  type Labels,
  labelNamesOf,
  labelsOfArguments,
  type MetricData,
  type RenderableMetric,
  renderedData,
  upperBoundsOf,
} from '../lib/prom-client-internals'
import { CarriedBase } from './carried-base'
import type { CarriedFamily, CarriedValue } from './carried-family'

/** What was not carried of a handover's families. */
export interface CarryReport {
  /** Series left out: counter series and histogram label sets. */
  dropped: number
  /** Why, each reason once and the first `MAX_REASONS` of them, for one log line. */
  reasons: string[]
}

const MAX_REASONS = 10

/** The metric's own methods the proxy answers itself; the rest are the metric's. */
type OwnMethods = Pick<CarriedMetric, 'get' | 'getForPromString' | 'reset' | 'remove'>

class CarriedMetric {
  /** What the registry holds in place of the metric. */
  readonly registered: RenderableMetric
  private base: CarriedBase

  constructor(
    /** The registry renames an OpenMetrics counter through `name`: the proxy's, not the metric's. */
    public name: string,
    readonly inner: RenderableMetric,
  ) {
    this.base = new CarriedBase(this.histogram)
    this.registered = delegate(inner, this)
  }

  get type(): CarriedFamily['type'] {
    return this.inner.type as CarriedFamily['type']
  }

  get histogram(): boolean {
    return this.type === 'histogram'
  }

  get upperBounds(): readonly number[] {
    return upperBoundsOf(this.inner)
  }

  get labelNames(): readonly string[] {
    return labelNamesOf(this.inner)
  }

  async get(): Promise<MetricData> {
    return this.named(this.base.addTo(await this.inner.get()))
  }

  async getForPromString(): Promise<MetricData> {
    return this.named(this.base.addTo(await renderedData(this.inner)))
  }

  reset(): void {
    this.base = new CarriedBase(this.histogram)
    ;(this.inner as unknown as Metric).reset()
  }

  /** Removes the series from the metric (prom-client validates the labels) and from the base. */
  remove(...args: unknown[]): void {
    ;(this.inner as unknown as { remove(...args: unknown[]): void }).remove(...args)
    this.base.remove(labelsOfArguments(this.labelNames, args), this.labelNames)
  }

  addBase(values: readonly CarriedValue[], defaults: Readonly<Labels>): string[] {
    return this.base.add(this.name, values, { labelNames: this.labelNames, defaults })
  }

  private named(rendered: MetricData): MetricData {
    // The proxy's name: the registry may have renamed the counter for OpenMetrics.
    rendered.name = this.name
    return rendered
  }
}

/**
 * A proxy of `inner` that takes `name` and the rendering and forgetting methods from `carried`
 * and everything else from `inner`, its methods bound to it (so `labels()` children and
 * `startTimer()` ends write into the live metric).
 */
function delegate(inner: RenderableMetric, carried: CarriedMetric): RenderableMetric {
  const own: OwnMethods = {
    get: () => carried.get(),
    getForPromString: () => carried.getForPromString(),
    reset: () => carried.reset(),
    remove: (...args: unknown[]) => carried.remove(...args),
  }
  const bound = new WeakMap<object, unknown>()
  return new Proxy(inner, {
    get(target, property) {
      if (property === 'name') return carried.name
      if (Object.hasOwn(own, property)) return own[property as keyof OwnMethods]
      const value: unknown = Reflect.get(target, property, target)
      if (typeof value !== 'function') return value
      let method = bound.get(value)
      if (method === undefined) {
        method = value.bind(target)
        bound.set(value, method)
      }
      return method
    },
    set(target, property, value) {
      if (property !== 'name') return Reflect.set(target, property, value, target)
      carried.name = value
      return true
    },
    has(target, property) {
      return property === 'name' || Object.hasOwn(own, property) || Reflect.has(target, property)
    },
  })
}

/** The carried metrics of one registry. */
export class CarriedMetrics {
  private readonly metrics = new Map<string, CarriedMetric>()

  /**
   * Wraps each named counter or histogram of `registry` (missing names are skipped, so an app
   * without the HTTP metrics still works). Other types are refused: a gauge is not a count.
   */
  constructor(
    private readonly registry: Registry<RegistryContentType>,
    names: readonly string[],
  ) {
    for (const name of names) {
      const found = registry.getSingleMetric(name)
      if (found === undefined) continue
      const metric = asRenderable(found)
      if (metric.type !== 'counter' && metric.type !== 'histogram') {
        throw new TypeError(
          `only counters and histograms can be carried, ${name} is a ${metric.type}`,
        )
      }
      const carried = new CarriedMetric(name, metric)
      registry.removeSingleMetric(name)
      registry.registerMetric(carried.registered as unknown as Metric)
      this.metrics.set(name, carried)
    }
  }

  /** The names of the metrics carried (those the registry has). */
  names(): string[] {
    return [...this.metrics.keys()]
  }

  /**
   * Registers in `registry` empty metrics defined as these are (name, help, label names,
   * buckets), for values of another process to be added to and rendered from.
   */
  defineIn(registry: Registry<RegistryContentType>): void {
    const { Counter, Histogram } = clientFor(registry)
    for (const [name, metric] of this.metrics) {
      const definition = {
        name,
        help: metric.inner.help,
        labelNames: [...metric.labelNames],
        registers: [registry],
      }
      if (metric.histogram) new Histogram({ ...definition, buckets: [...metric.upperBounds] })
      else new Counter(definition)
    }
  }

  /** Every carried series' current value (own plus carried base), to hand to a successor. */
  async values(): Promise<CarriedFamily[]> {
    const families: CarriedFamily[] = []
    for (const metric of this.metrics.values()) {
      const rendered = await metric.get()
      families.push({
        name: metric.name,
        type: metric.type,
        values: rendered.values.map((value) => {
          const carried: CarriedValue = { labels: value.labels, value: value.value }
          if (value.metricName !== undefined) carried.metricName = value.metricName
          return carried
        }),
      })
    }
    return families
  }

  /**
   * Why `families` cannot continue this registry's metrics at all, or `undefined` if they can:
   * same names and types, and a histogram's buckets are exactly this histogram's buckets.
   */
  incompatibility(families: readonly CarriedFamily[]): string | undefined {
    for (const family of families) {
      const metric = this.metrics.get(family.name)
      if (metric === undefined) return `${family.name} is not a carried metric here`
      if (metric.type !== family.type)
        return `${family.name} is a ${metric.type}, not a ${family.type}`
      if (family.type === 'histogram') {
        const problem = bucketMismatch(family, metric.upperBounds)
        if (problem !== undefined) return problem
      }
    }
    return undefined
  }

  /** Back to zero, carried base included: this process' values were replaced by another's. */
  reset(): void {
    for (const metric of this.metrics.values()) metric.reset()
  }

  /**
   * Adds a predecessor's final values to this registry's series. Call it once
   * `incompatibility(families)` found none. A series is left out if its label names are not its
   * metric's (a deploy changed them: it would be rendered stale for ever) or if adding it would
   * not give a finite number; the report says how many and why, for the caller to log once.
   */
  add(families: readonly CarriedFamily[]): CarryReport {
    const defaults = defaultLabelsOf(this.registry)
    const reasons = new Set<string>()
    let dropped = 0
    for (const family of families) {
      const metric = this.metrics.get(family.name)
      if (metric === undefined || metric.type !== family.type) continue
      for (const reason of metric.addBase(family.values, defaults)) {
        dropped++
        if (reasons.size < MAX_REASONS) reasons.add(reason)
      }
    }
    return { dropped, reasons: [...reasons] }
  }
}

/** Why a histogram's carried buckets are not `bounds` (and +Inf), or `undefined`. */
function bucketMismatch(family: CarriedFamily, bounds: readonly number[]): string | undefined {
  const expected = new Set([...bounds.map(String), '+Inf'])
  const carried = new Set<string>()
  for (const value of family.values) {
    const le = value.labels.le
    if (le === undefined) continue
    if (!expected.has(String(le))) {
      return `${family.name} has a bucket le="${le}" that this process does not have`
    }
    carried.add(String(le))
  }
  if (carried.size === 0) return undefined
  for (const le of expected) {
    if (!carried.has(le)) return `${family.name} has no bucket le="${le}", which this process has`
  }
  return undefined
}
