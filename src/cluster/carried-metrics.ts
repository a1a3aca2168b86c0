// Counters and histograms that continue across the processes of one worker id. When a process
// stops gracefully (pm2 reload, restart, stop), its final values are handed to the next process
// of the same worker id, which adds them to its own: the worker's series never step back, so
// Prometheus neither loses the last seconds of the old process nor counts anything twice.
//
// The metrics stay plain prom-client metrics; each is wrapped in the registry by an object that
// renders the live values plus the carried base (prom-client renders any registered object
// with a name, help, type and get()). With no base the wrapper returns the live values as is.
import type { Metric, Registry } from 'prom-client'
import {
  asRenderable,
  type MetricData,
  type RenderableMetric,
  renderedData,
  seriesLabelsOf,
  upperBoundsOf,
} from '../lib/prom-client-internals'

export interface CarriedValue {
  /** Sample name for histograms (`_bucket`, `_sum`, `_count`); absent for counters. */
  metricName?: string
  labels: Record<string, string | number>
  value: number
}

export interface CarriedFamily {
  name: string
  type: 'counter' | 'histogram'
  values: CarriedValue[]
}

/** A carried base: its values in render order, and where each series' value sits. */
interface Base {
  values: CarriedValue[]
  indexByKey: Map<string, number>
}

class CarriedMetric {
  readonly help: string
  readonly type: string
  readonly aggregator: string
  private base: Base | undefined

  constructor(
    public name: string,
    readonly inner: RenderableMetric,
  ) {
    this.help = inner.help
    this.type = inner.type
    this.aggregator = inner.aggregator
  }

  get upperBounds(): readonly number[] {
    return upperBoundsOf(this.inner)
  }

  async get(): Promise<MetricData> {
    return this.withBase(await this.inner.get())
  }

  async getForPromString(): Promise<MetricData> {
    return this.withBase(await renderedData(this.inner))
  }

  reset(): void {
    this.base = undefined
    ;(this.inner as unknown as Metric).reset()
  }

  addBase(values: readonly CarriedValue[]): void {
    const merged = this.base?.values.map((value) => ({ ...value })) ?? []
    const indexByKey = new Map(this.base?.indexByKey)
    for (const value of values) {
      const key = seriesKey(value.metricName, value.labels)
      const at = indexByKey.get(key)
      if (at === undefined) {
        indexByKey.set(key, merged.length)
        merged.push({ ...value })
      } else merged[at].value += value.value
    }
    this.base = { values: merged, indexByKey }
  }

  private withBase(rendered: MetricData): MetricData {
    const base = this.base
    // The metric's own name: a registry may rename counters for OpenMetrics.
    rendered.name = this.name
    if (base === undefined) return rendered
    const used = new Set<number>()
    const values = rendered.values.map((value) => {
      const at = base.indexByKey.get(seriesKey(value.metricName, seriesLabelsOf(value)))
      if (at === undefined) return value
      used.add(at)
      return { ...value, value: value.value + base.values[at].value }
    })
    // Series the old process had and this one has not seen yet keep their carried values.
    base.values.forEach((value, i) => {
      if (!used.has(i)) values.push({ ...value, labels: { ...value.labels } })
    })
    return { ...rendered, values }
  }
}

function seriesKey(metricName: string | undefined, labels: Record<string, unknown>): string {
  const names = Object.keys(labels).sort()
  let key = metricName ?? ''
  for (const name of names) key += `\u0000${name}\u0001${String(labels[name])}`
  return key
}

/** The carried metrics of one registry. */
export class CarriedMetrics {
  private readonly metrics = new Map<string, CarriedMetric>()

  /**
   * Wraps each named counter or histogram of `registry` (missing names are skipped, so an app
   * without the HTTP metrics still works). Other types are refused: a gauge is not a count.
   */
  constructor(registry: Registry, names: readonly string[]) {
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
      registry.registerMetric(carried as unknown as Metric)
      this.metrics.set(name, carried)
    }
  }

  /** Every carried series' current value (own plus carried base), to hand to a successor. */
  async values(): Promise<CarriedFamily[]> {
    const families: CarriedFamily[] = []
    for (const metric of this.metrics.values()) {
      const rendered = await metric.get()
      families.push({
        name: metric.name,
        type: metric.type as CarriedFamily['type'],
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
   * Why `families` cannot continue this registry's metrics, or `undefined` if they can: same
   * names and types, and a histogram's buckets are this histogram's buckets.
   */
  incompatibility(families: readonly CarriedFamily[]): string | undefined {
    for (const family of families) {
      const metric = this.metrics.get(family.name)
      if (metric === undefined) return `${family.name} is not a carried metric here`
      if (metric.type !== family.type)
        return `${family.name} is a ${metric.type}, not a ${family.type}`
      if (family.type !== 'histogram') continue
      const bounds = new Set(metric.upperBounds.map(String))
      bounds.add('+Inf')
      for (const value of family.values) {
        const le = value.labels.le
        if (le !== undefined && !bounds.has(String(le))) {
          return `${family.name} has a bucket le="${le}" that this process does not have`
        }
      }
    }
    return undefined
  }

  /** Adds a predecessor's final values to this registry's series. */
  add(families: readonly CarriedFamily[]): void {
    for (const family of families) this.metrics.get(family.name)?.addBase(family.values)
  }
}
