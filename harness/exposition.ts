// Reading /metrics in tests: scraping it, parsing expositions into families, and comparing
// series across scrapes (duplicate label sets, per-worker counters, gauges).
import parsePrometheusTextFormat, { type MetricFamily } from 'parse-prometheus-text-format'
import { httpGet } from './net'

export async function scrape(baseUrl: string, token?: string): Promise<string> {
  const res = await httpGet(`${baseUrl}/metrics`, {
    headers: token ? { authorization: `Bearer ${token}` } : {},
  })
  if (res.status !== 200) throw new Error(`GET /metrics answered ${res.status}: ${res.body}`)
  return res.body
}

export function parseExposition(text: string): MetricFamily[] {
  return parsePrometheusTextFormat(text)
}

/** A stable key for one series of a family: its name and sorted labels. */
export function seriesKey(name: string, labels: Record<string, string> = {}): string {
  const pairs = Object.keys(labels)
    .sort()
    .map((k) => `${k}=${JSON.stringify(labels[k])}`)
  return `${name}{${pairs.join(',')}}`
}

/** Every series key in an exposition (histograms count once per label set, without `le`). */
export function seriesKeys(families: MetricFamily[]): string[] {
  return families.flatMap((family) =>
    family.metrics.map((metric) => seriesKey(family.name, metric.labels)),
  )
}

/**
 * Label sets that occur more than once in one scrape, found two ways: in the parsed families
 * and in the raw sample lines (a parser could merge what the text repeats).
 */
export function duplicateSeries(text: string): string[] {
  const duplicates = new Set<string>()
  const seen = new Set<string>()
  for (const key of seriesKeys(parseExposition(text))) {
    if (seen.has(key)) duplicates.add(key)
    seen.add(key)
  }
  const seenLines = new Set<string>()
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue
    const key = line.slice(0, line.lastIndexOf(' '))
    if (seenLines.has(key)) duplicates.add(key)
    seenLines.add(key)
  }
  return [...duplicates]
}

/** `http_requests_total` per worker, summed over its other labels. */
export function requestsByWorker(text: string): Map<string, number> {
  const totals = new Map<string, number>()
  const family = parseExposition(text).find((f) => f.name === 'http_requests_total')
  for (const metric of family?.metrics ?? []) {
    const worker = metric.labels?.worker_id ?? '?'
    totals.set(worker, (totals.get(worker) ?? 0) + Number(metric.value))
  }
  return totals
}

/** The value of one gauge series, e.g. `cluster_metrics_workers_answered`. */
export function gaugeValue(text: string, name: string): number | undefined {
  const family = parseExposition(text).find((f) => f.name === name)
  const value = family?.metrics[0]?.value
  return value === undefined ? undefined : Number(value)
}
