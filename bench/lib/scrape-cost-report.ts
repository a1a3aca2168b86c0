// What a scrape costs, as Markdown: one row per goal, the cluster view on beside off, then the
// readings behind the rows. Written into docs/performance.md by the bench, never by hand.

import type { WorkerHeaps } from './cluster'
import { type Target, table } from './report'
import { growth, type ScrapeCostResults, type StormPair } from './scrape-cost'
import { spread } from './stats'

/** Restart limit of the service's PM2 process file (max_memory_restart). */
const RESTART_LIMIT_MIB = 320

interface Row {
  measure: string
  on: string
  off: string
  goal: string
  met: boolean
}

const fmt = (n: number, digits = 1) => (Number.isFinite(n) ? n.toFixed(digits) : 'n/a')
const signed = (n: number) => `${n >= 0 ? '+' : ''}${fmt(n)}`
const med = (values: number[]) => spread(values).median

/** What V8's heap (total) grew by in the median worker, beside the RSS it is part of. */
function heapGrowth(
  heap: { before: WorkerHeaps; settled?: WorkerHeaps; end?: WorkerHeaps } | null,
) {
  const later = heap?.settled ?? heap?.end
  if (!heap || !later) return ''
  return `; V8 heap ${signed(later.heapTotal - heap.before.heapTotal)}, external ${signed(later.external - heap.before.external)}`
}

const heapText = (before: WorkerHeaps, later: WorkerHeaps) =>
  `${fmt(before.heapTotal)} → ${fmt(later.heapTotal)} (${fmt(before.heapUsed)} → ${fmt(later.heapUsed)} used), ${fmt(before.external)} → ${fmt(later.external)}`

const p99Ratio = (s: StormPair['on']) => s.serviceMs.during.p99 / s.serviceMs.quiet.p99
const ratioText = (s: StormPair['on']) =>
  `${fmt(s.serviceMs.during.p99)} / ${fmt(s.serviceMs.quiet.p99)} ms = ${fmt(p99Ratio(s), 2)} ×; ` +
  `workers on ${fmt(s.workerCores.quiet, 2)} → ${fmt(s.workerCores.during, 2)} cores`

function stormMemoryRows(pair: StormPair, what: string, settleS: number): Row[] {
  const peak = (s: StormPair['on']) => growth(s.rssMiB.before, s.rssMiB.peak)
  const settled = (s: StormPair['on']) => growth(s.rssMiB.before, s.rssMiB.settled)
  const text = (g: { worst: number; median: number }) =>
    `${signed(g.worst)} MiB (median worker ${signed(g.median)})`
  const settledText = (s: StormPair['on']) => `${text(settled(s))}${heapGrowth(s.heapMiB)}`
  return [
    {
      measure: `${what}: RSS peak above before, worst worker`,
      on: text(peak(pair.on)),
      off: text(peak(pair.off)),
      goal: '≤ +40 MiB',
      met: peak(pair.on).worst <= 40,
    },
    {
      measure: `${what}: RSS ${settleS} s after, above before, worst worker`,
      on: settledText(pair.on),
      off: settledText(pair.off),
      goal: '≤ +8 MiB',
      met: settled(pair.on).worst <= 8,
    },
  ]
}

/** The goals of a scrape's cost, each with the cluster view on and off. */
function rows(results: ScrapeCostResults): Row[] {
  const { settings } = results
  const out: Row[] = []
  const goals: Record<string, number> = { realistic: 5, large: 12 }
  for (const r of results.registries) {
    const goal = goals[r.registry.name]
    if (goal === undefined) continue
    out.push({
      measure: `RSS the cluster view keeps per worker, 1 scrape/s, ${r.registry.name} (${r.seriesPerWorker} series per worker)`,
      on: `${signed(r.rss.addedMiBPerWorker)} MiB (${fmt(r.rss.clusterOnMiB.median)} MiB)`,
      off: `(${fmt(r.rss.clusterOffMiB.median)} MiB)`,
      goal: `≤ +${goal} MiB`,
      met: r.rss.addedMiBPerWorker <= goal,
    })
  }
  const storm = (label: string) => results.storms.find((s) => s.label === label)
  const s20 = storm('storm-20')
  if (s20) {
    const what = `${s20.on.scrapers} scrapers for ${settings.storm20.durationS} s`
    out.push(...stormMemoryRows(s20, what, settings.storm20.settleS))
  }
  const s50 = storm('storm-50')
  if (s50) {
    const what = `${s50.on.scrapers} scrapers for ${settings.storm50.durationS} s`
    out.push(...stormMemoryRows(s50, what, settings.storm50.settleS))
    const highest = (s: StormPair['on']) => Math.max(...s.rssMiB.peak)
    out.push({
      measure: `${what}: highest worker RSS, and restarts (limit ${RESTART_LIMIT_MIB} MiB)`,
      on: `${fmt(highest(s50.on))} MiB, ${s50.on.restarts} restarts`,
      off: `${fmt(highest(s50.off))} MiB, ${s50.off.restarts} restarts`,
      goal: 'no restart',
      met: s50.on.restarts === 0,
    })
  }
  if (s20) {
    out.push({
      measure: `service p99 during ${s20.on.scrapers} scrapers ÷ quiet (${settings.storm20.serviceRate} req/s)`,
      on: ratioText(s20.on),
      off: ratioText(s20.off),
      goal: '≤ 1.5 ×',
      met: p99Ratio(s20.on) <= 1.5,
    })
  }
  const service = storm('service')
  if (service) {
    const what = `service registry, ${service.on.scrapers} scrapers for ${settings.service.durationS} s beside ${settings.service.serviceRate} req/s`
    out.push({
      measure: `${what}: service p99 ÷ quiet`,
      on: `${ratioText(service.on)}; ${fmt(service.on.scrapesPerSecond, 0)} scrapes/s`,
      off: `${ratioText(service.off)}; ${fmt(service.off.scrapesPerSecond, 0)} scrapes/s`,
      goal: '≤ 1.5 ×',
      met: p99Ratio(service.on) <= 1.5,
    })
    const settled = (s: StormPair['on']) => growth(s.rssMiB.before, s.rssMiB.settled)
    const text = (s: StormPair['on']) =>
      `${signed(settled(s).worst)} MiB (median worker ${signed(settled(s).median)})${heapGrowth(s.heapMiB)}`
    out.push({
      measure: `${what}: RSS ${settings.service.settleS} s after, above before, worst worker`,
      on: text(service.on),
      off: text(service.off),
      goal: '≤ +8 MiB',
      met: settled(service.on).worst <= 8,
    })
  }
  if (results.bursts) {
    const { count, scrapers, durationS, gapS } = settings.bursts
    // Flat: no reading after the second burst above the one after it by more than the margin
    // RSS is allowed to keep after a burst.
    const rise = (b: typeof results.bursts.on) =>
      Math.max(...b.afterBurstMiB.slice(1)) - (b.afterBurstMiB[1] ?? Number.NaN)
    const text = (b: typeof results.bursts.on) =>
      `${[b.beforeMiB, ...b.afterBurstMiB].map((v) => fmt(v)).join(' → ')} MiB (${signed(rise(b))} from the second${heapGrowth(b.heapMiB)})`
    out.push({
      measure: `${count} bursts of ${scrapers} scrapers for ${durationS} s, ${gapS} s apart, no other traffic: mean worker RSS before, after each`,
      on: text(results.bursts.on),
      off: text(results.bursts.off),
      goal: 'flat from the second burst (≤ +8 MiB)',
      met: rise(results.bursts.on) <= 8,
    })
  }
  for (const r of results.registries) {
    if (r.registry.name !== 'realistic' && r.registry.name !== 'large') continue
    const ratio = r.idle.getMs.p50 / r.floorMs
    out.push({
      measure: `GET p50 ÷ floor, ${r.registry.name}`,
      on: `${fmt(r.idle.getMs.p50)} / ${fmt(r.floorMs)} ms = ${fmt(ratio, 2)} ×`,
      off: `own GET p50 ${fmt(r.ownGetMs.p50)} ms`,
      goal: '≤ 1.3 ×',
      met: ratio <= 1.3,
    })
  }
  const own = results.registries.find((r) => r.registry.name === 'service')
  if (own?.idle.gatherMs) {
    const g = own.idle.gatherMs
    out.push({
      measure: `gather p50 / p99, service registry (${own.seriesPerWorker} series per worker), idle`,
      on: `${fmt(g.p50)} / ${fmt(g.p99)} ms`,
      off: '',
      goal: '≤ 5 / 15 ms',
      met: g.p50 <= 5 && g.p99 <= 15,
    })
  }
  return out
}

export function scrapeCostTargets(results: ScrapeCostResults): Target[] {
  return rows(results).map((r) => ({
    name: r.measure,
    target: r.goal,
    value: r.on,
    met: r.met,
  }))
}

function stormDetails(results: ScrapeCostResults): string {
  const line = (pair: StormPair, s: StormPair['on']) => {
    const heap = s.heapMiB
    return [
      `${pair.label} (${pair.registry}, ${s.scrapers} scrapers)`,
      s.clusterView ? 'on' : 'off',
      fmt(s.scrapesPerSecond, 0),
      `${s.complete}/${s.scrapes}`,
      `${fmt(s.getMs.p50)} / ${fmt(s.getMs.p99)}`,
      `${fmt(s.serviceMs.quiet.p99)} → ${fmt(s.serviceMs.during.p99)}`,
      [s.rssMiB.before, s.rssMiB.peak, s.rssMiB.after, s.rssMiB.settled]
        .map((v) => fmt(med(v)))
        .join(' → '),
      heap ? heapText(heap.before, heap.settled) : '',
      `${fmt(s.workerCores.quiet, 2)} → ${fmt(s.workerCores.during, 2)}`,
      String(s.restarts),
    ]
  }
  return table(
    [
      'burst',
      'cluster view',
      'scrapes/s',
      'complete',
      'GET p50 / p99 ms',
      'service p99 ms, quiet → during',
      'RSS MiB (median worker): before → peak → right after → settled',
      'V8 heap MiB before → settled (median worker), external',
      'workers’ cores, quiet → during',
      'restarts',
    ],
    results.storms.flatMap((pair) => [line(pair, pair.on), line(pair, pair.off)]),
  )
}

function burstDetails(results: ScrapeCostResults): string {
  if (!results.bursts) return ''
  const line = (b: NonNullable<ScrapeCostResults['bursts']>['on']) => [
    b.clusterView ? 'on' : 'off',
    fmt(b.beforeMiB),
    b.afterBurstMiB.map((v) => fmt(v)).join(' / '),
    b.afterGapMiB.map((v) => fmt(v)).join(' / '),
    b.scrapesPerBurst.join(' / '),
    b.heapMiB ? heapText(b.heapMiB.before, b.heapMiB.end) : '',
    String(b.restarts),
  ]
  return table(
    [
      'cluster view',
      'mean RSS MiB before',
      'right after each burst',
      'at the end of each gap',
      'scrapes per burst',
      'V8 heap MiB before → at the end (median worker), external',
      'restarts',
    ],
    [line(results.bursts.on), line(results.bursts.off)],
  )
}

export function renderScrapeCost(results: ScrapeCostResults): string {
  const parts = [
    'Each goal of a scrape’s cost, with the cluster view on and, where the row is about it, ' +
      'off (same registry, traffic and scrapers; each worker answers only for itself). ' +
      'Scrapers are Prometheus-like (OpenMetrics, gzip, one keep-alive connection each, back ' +
      'to back), with the service’s default reuse window; RSS is read from /proc for each ' +
      'worker, every 250 ms during a burst for its peak. The RSS the cluster view keeps and ' +
      'the floor rows come from the cluster view part above, every scrape a real gather. ' +
      'V8 heap: the workers’ own `nodejs_heap_size_total_bytes` (median worker) before and ' +
      'after, read through the cluster view, so a growth in RSS can be told apart as V8’s ' +
      'heap or memory outside it (allocator, buffers); external is `nodejs_external_memory_bytes`. ' +
      'Workers’ cores: their CPU time from /proc over the wall time, while the service is ' +
      'quiet and during the burst. "met" judges the cluster view on.',
    '',
    table(
      ['measure', 'cluster view on', 'cluster view off', 'goal', 'met'],
      rows(results).map((r) => [r.measure, r.on, r.off, r.goal, r.met ? 'yes' : '**no**']),
    ),
  ]
  if (results.storms.length > 0) parts.push('', stormDetails(results))
  if (results.bursts) parts.push('', burstDetails(results))
  return parts.join('\n')
}
