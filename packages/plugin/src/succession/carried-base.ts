// The carried base of one metric: what its worker's previous processes counted, kept apart from
// the live prom-client metric and added to its values whenever they are rendered. A series is
// carried only if it still fits the metric (same label names), and only if the sum stays a
// finite number; a histogram series (its buckets, sum and count) is carried whole or not at all.
import { type Labels, type MetricData, seriesLabelsOf } from '../lib/prom-client-internals'
import { seriesKey } from '../lib/series-key'
import type { CarriedValue } from './carried-family'

/** The label names a carried series must have to continue a metric. */
export interface SeriesShape {
  /** The metric's own label names. */
  labelNames: readonly string[]
  /**
   * The registry's default labels, which prom-client adds at render time. A carried series may
   * hold one with the registry's own value (it is dropped, as the live series lack it), but not
   * with another: that series is another worker's.
   */
  defaults: Readonly<Labels>
}

export class CarriedBase {
  /** In render order; a series absent from the live metric is rendered from here alone. */
  private values: CarriedValue[] = []
  private readonly indexByKey = new Map<string, number>()

  /** `histogram`: the values are buckets, sums and counts, whose series is their labels but `le`. */
  constructor(private readonly histogram: boolean) {}

  /**
   * Adds a predecessor's final values of `family`, series by series. Returns one reason per
   * series left out (a counter series, or a histogram's label set).
   */
  add(family: string, values: readonly CarriedValue[], shape: SeriesShape): string[] {
    const dropped: string[] = []
    for (const series of this.bySeries(values)) {
      const fitted = fitLabels(series.labels, shape)
      if (typeof fitted === 'string') {
        dropped.push(`${family}: ${fitted}`)
        continue
      }
      const sums = series.values.map((value) => {
        const { le } = value.labels
        const labels = this.histogram && le !== undefined ? { ...fitted, le } : fitted
        // A counter's live values have no sample name: a carried one must not either.
        const metricName = this.histogram ? value.metricName : undefined
        const key = seriesKey(metricName, labels)
        const at = this.indexByKey.get(key)
        const sum = (at === undefined ? 0 : this.values[at].value) + value.value
        return { key, carried: carriedValue(metricName, labels, sum) }
      })
      if (sums.some(({ carried }) => !Number.isFinite(carried.value))) {
        dropped.push(`${family}: a series whose sum with the values already carried is not finite`)
        continue
      }
      for (const { key, carried } of sums) {
        const at = this.indexByKey.get(key)
        if (at !== undefined) this.values[at] = carried
        else {
          this.indexByKey.set(key, this.values.length)
          this.values.push(carried)
        }
      }
    }
    return dropped
  }

  /**
   * Forgets the series `remove(labels)` removes from the live metric: prom-client matches the
   * given label names' values, as text, and the others' absence.
   */
  remove(labels: Readonly<Labels>, labelNames: readonly string[]): void {
    const removed = labelHash(labels, labelNames)
    const kept = this.values.filter(
      (value) => labelHash(this.seriesLabels(value), labelNames) !== removed,
    )
    if (kept.length === this.values.length) return
    this.values = []
    this.indexByKey.clear()
    for (const value of kept) {
      this.indexByKey.set(seriesKey(value.metricName, value.labels), this.values.length)
      this.values.push(value)
    }
  }

  /** `rendered` with the carried values added series by series, and carried-only series after. */
  addTo(rendered: MetricData): MetricData {
    if (this.values.length === 0) return rendered
    const used = new Set<number>()
    const values = rendered.values.map((value) => {
      const at = this.indexByKey.get(seriesKey(value.metricName, seriesLabelsOf(value)))
      if (at === undefined) return value
      used.add(at)
      return { ...value, value: value.value + this.values[at].value }
    })
    // Series the old process had and this one has not seen yet keep their carried values.
    this.values.forEach((value, i) => {
      if (!used.has(i)) values.push({ ...value, labels: { ...value.labels } })
    })
    return { ...rendered, values }
  }

  /** Counter values one by one; a histogram's values by label set, buckets, sum and count. */
  private bySeries(values: readonly CarriedValue[]): Series[] {
    const series = new Map<string, Series>()
    for (const value of values) {
      const labels = this.seriesLabels(value)
      const key = seriesKey(this.histogram ? '' : value.metricName, labels)
      let one = series.get(key)
      if (one === undefined) {
        one = { labels, values: [] }
        series.set(key, one)
      }
      one.values.push(value)
    }
    return [...series.values()]
  }

  /** A value's series labels: all of a counter's, a histogram's but `le`. */
  private seriesLabels(value: CarriedValue): Labels {
    if (!this.histogram) return value.labels
    const { le: _le, ...labels } = value.labels
    return labels
  }
}

interface Series {
  /** The series' labels (`le` apart). */
  labels: Labels
  values: CarriedValue[]
}

/** `labels` as the metric's live series have them, or why the series does not fit it. */
function fitLabels(labels: Labels, shape: SeriesShape): Labels | string {
  const fitted: Labels = {}
  for (const [name, value] of Object.entries(labels)) {
    if (shape.labelNames.includes(name)) fitted[name] = value
    else if (!Object.hasOwn(shape.defaults, name)) {
      return `a series with the label ${name}, which the metric does not have`
    } else if (String(value) !== String(shape.defaults[name])) {
      return `a series whose ${name} is not this registry's`
    }
  }
  for (const name of shape.labelNames) {
    if (!Object.hasOwn(fitted, name)) return `a series without the label ${name}`
  }
  return fitted
}

function carriedValue(metricName: string | undefined, labels: Labels, value: number) {
  const carried: CarriedValue = { labels: { ...labels }, value }
  if (metricName !== undefined) carried.metricName = metricName
  return carried
}

/** As prom-client's label hash (lib/util.js `hashObject` with the metric's label names). */
function labelHash(labels: Readonly<Labels>, labelNames: readonly string[]): string {
  let hash = ''
  for (const name of [...labelNames].sort()) {
    const value = labels[name]
    if (value !== undefined) hash += `${name}:${value},`
  }
  return hash
}
