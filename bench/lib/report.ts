// Renders bench results as Markdown tables: printed at the end of a run, and pasted as-is into
// the README's Performance section.
import type { CallgrindResults } from './callgrind'
import type { ClusterResults, Latency } from './cluster'
import { FORMATS, type FormatsResults } from './formats'
import type { ScrapeCostResults } from './scrape-cost'
import type { CpuResults, SaturationResults } from './single-process'
import { type Spread, spread } from './stats'
import { CALLGRIND_VARIANTS, VARIANT_LABELS, VARIANTS } from './variants'

export interface Target {
  name: string
  target: string
  value: string
  met: boolean
}

export interface BenchResults {
  schema: 'bench-results/1'
  mode: 'full' | 'quick'
  startedAt: string
  durationS: number
  machine: {
    cores: number
    cpuModel: string
    totalMemoryMiB: number
    loadavgBefore: number[]
    loadavgAfter: number[]
  }
  versions: Record<string, string>
  /** Instructions per request under callgrind; null when not measured (quick runs). */
  callgrind: CallgrindResults | null
  cpu: CpuResults
  saturation: SaturationResults | null
  cluster: ClusterResults | null
  /** Protobuf, OpenMetrics and the text format side by side; null without the PM2 parts. */
  formats: FormatsResults | null
  /** Each goal of a scrape's cost, cluster view on and off; null in quick runs. */
  scrapeCost: ScrapeCostResults | null
  targets: Target[]
}

const fmt = (n: number, digits = 2) => (Number.isFinite(n) ? n.toFixed(digits) : 'n/a')
const range = (s: Spread, digits = 2) =>
  `${fmt(s.median, digits)} (${fmt(s.min, digits)}–${fmt(s.max, digits)})`

/** A Markdown table. */
export function table(head: string[], rows: string[][]): string {
  return [
    `| ${head.join(' | ')} |`,
    `|${head.map(() => '---').join('|')}|`,
    ...rows.map((row) => `| ${row.join(' | ')} |`),
  ].join('\n')
}

export function renderCpu(cpu: CpuResults): string {
  const { settings } = cpu
  return [
    `CPU per request at ${settings.rate} req/s, ${settings.rounds} interleaved rounds of ` +
      `${settings.durationS} s; median (min–max over rounds); ratios taken within each round.`,
    '',
    table(
      [
        'variant',
        'µs CPU / request',
        '÷ bare',
        'p50 latency ms',
        'p99 latency ms',
        'p50 added ms',
        'p99 added ms',
      ],
      VARIANTS.map((v) => {
        const s = cpu.summary[v]
        return [
          VARIANT_LABELS[v],
          range(s.cpuMicrosPerRequest, 1),
          range(s.ratioToBare, 3),
          fmt(s.latencyP50Ms.median, 3),
          fmt(s.latencyP99Ms.median, 3),
          v === 'bare' ? '' : fmt(s.addedLatencyP50Ms.median, 3),
          v === 'bare' ? '' : fmt(s.addedLatencyP99Ms.median, 3),
        ]
      }),
    ),
  ].join('\n')
}

export function renderCallgrind(callgrind: CallgrindResults): string {
  const { settings } = callgrind
  const runs = settings.runs
  return [
    `Instructions per request (callgrind): GET ${settings.path}, ${settings.requests} requests ` +
      `on one keep-alive connection after ${settings.warmupRequests} unmeasured; ` +
      `${runs === 1 ? 'one run' : `median of ${runs} runs, each in a fresh process`}; ` +
      `node ${callgrind.nodeFlags.join(' ')}, valgrind ${callgrind.valgrindFlags.join(' ')}.`,
    '',
    table(
      ['variant', 'instructions / request', '÷ bare', 'added / request', 'spread of runs'],
      CALLGRIND_VARIANTS.map((v) => {
        const s = callgrind.variants[v]
        const bare = callgrind.variants.bare.summary.median
        return [
          VARIANT_LABELS[v],
          fmt(s.summary.median, 0),
          fmt(s.ratioToBare, 3),
          v === 'bare' ? '' : fmt(s.summary.median - bare, 0),
          runs > 1 ? `${fmt(s.summary.spreadPercent, 2)} %` : '',
        ]
      }),
    ),
  ].join('\n')
}

export function renderSaturation(saturation: SaturationResults): string {
  return [
    `Saturation (${saturation.label}; ${saturation.rounds.length} rounds of ` +
      `${saturation.settings.durationS} s):`,
    '',
    table(
      ['variant', 'req/s', '÷ bare'],
      VARIANTS.map((v) => [
        VARIANT_LABELS[v],
        range(saturation.summary[v].rps, 0),
        range(saturation.summary[v].ratioToBare, 3),
      ]),
    ),
  ].join('\n')
}

const pair = (l: Latency | null) => (l ? `${fmt(l.p50, 1)} / ${fmt(l.p99, 1)}` : 'n/a')
const kib = (bytes: number) => `${fmt(bytes / 1024, 1)} KiB`

export function renderCluster(cluster: ClusterResults): string {
  const { settings } = cluster
  const rows = cluster.registries.map((r) => [
    `${r.registry.name} (${r.seriesPerWorker} series per worker)`,
    `${fmt(r.floorMs, 1)} (own GET p50 ${fmt(r.ownGetMs.p50, 1)})`,
    pair(r.idle.gatherMs),
    pair(r.idle.getMs),
    `${fmt(r.idle.getMs.p50 / r.floorMs, 2)} ×`,
    `${pair(r.underLoad.gatherMs)} at ${fmt(r.underLoad.loadRps, 0)} req/s`,
    `${r.idle.complete + r.underLoad.complete}/${r.idle.scrapes + r.underLoad.scrapes}`,
    `${kib(r.idle.wireBytes.median)} (${kib(r.plainBytes)} plain)`,
    `${fmt(r.rss.addedMiBPerWorker, 1)} MiB`,
  ])
  const storms = cluster.storms.map((s) => [
    `${s.scrapers} ${s.anonymous ? 'anonymous (text, no gzip, new connection each)' : 'Prometheus-like (OpenMetrics, gzip, keep-alive)'}`,
    fmt(s.scrapesPerSecond, 0),
    `${s.complete}/${s.scrapes}`,
    pair(s.getMs),
    `${fmt(s.serviceMs.quiet.p99, 1)} → ${fmt(s.serviceMs.during.p99, 1)}`,
    `${fmt(spread(s.rssMiB.before).median, 1)} → ${fmt(spread(s.rssMiB.after).median, 1)} → ${fmt(spread(s.rssMiB.settled).median, 1)}`,
    String(s.restarts),
  ])
  return [
    `Scrapes through the cluster view, ${settings.instances} PM2 workers on ${settings.cores} cores, ` +
      "as Prometheus scrapes (OpenMetrics, gzip, one keep-alive connection). Floor = the workers' " +
      `own renders shared by the cores: ${settings.instances} × each worker's own /metrics (cluster ` +
      `view off, same registry, the whole GET) ÷ ${settings.cores}. Gather = \`cluster_metrics_gather_duration_seconds\`; ` +
      'GET = the whole request as the client sees it. RSS added = median worker RSS with the cluster ' +
      `view minus without, after ${settings.memoryS} s of traffic and one scrape a second.`,
    '',
    table(
      [
        'registry',
        'floor ms',
        'gather p50 / p99 ms',
        'GET p50 / p99 ms',
        'GET p50 ÷ floor',
        'under load, gather p50 / p99 ms',
        'complete scrapes',
        'on the wire',
        'RSS added',
      ],
      rows,
    ),
    '',
    `Concurrent scrapers for ${settings.storm.durationS} s (realistic registry), beside ` +
      `${settings.storm.serviceRate} req/s of service traffic, with the service's default reuse ` +
      `window; RSS per worker (median) before, ` +
      `right after, and ${settings.storm.settleS} s after.`,
    '',
    table(
      [
        'scrapers',
        'scrapes/s',
        'complete',
        'GET p50 / p99 ms',
        'service p99 ms, quiet → during',
        'RSS MiB',
      ],
      storms,
    ),
  ].join('\n')
}

export function renderFormats(formats: FormatsResults): string {
  const ratio = (s: Spread) => `${range(s, 2)} ×`
  const rows = formats.registries.flatMap((r) =>
    FORMATS.map((format) => {
      const f = r.formats[format]
      const toText = r.toText[format]
      return [
        r.registry.name,
        format,
        kib(f.plainBytes.median),
        kib(f.gzipBytes.median),
        format === 'text' ? '' : ratio(toText.plainBytes),
        format === 'text' ? '' : ratio(toText.gzipBytes),
        pair(f.gatherMs),
        format === 'text' ? '' : `${fmt(toText.gatherMsP50, 2)} ×`,
        pair(f.getMs),
      ]
    }),
  )
  return [
    `Exposition formats through the cluster view, ${formats.instances} PM2 workers: ` +
      `${formats.settings.rounds} rounds of one scrape in each format (as Prometheus 3.5 asks ` +
      'for it, gzip, one keep-alive connection, each round in another order), after ' +
      `${formats.settings.warmupRounds} unmeasured. Bytes: median; ÷ text: median (min–max) of ` +
      'the ratios within each round. Gather = `cluster_metrics_gather_duration_seconds`.',
    '',
    table(
      [
        'registry',
        'format',
        'plain',
        'gzip',
        'plain ÷ text',
        'gzip ÷ text',
        'gather p50 / p99 ms',
        'gather p50 ÷ text',
        'GET p50 / p99 ms',
      ],
      rows,
    ),
  ].join('\n')
}

export function renderTargets(targets: Target[]): string {
  return table(
    ['target', 'goal', 'measured', 'met'],
    targets.map((t) => [t.name, t.target, t.value, t.met ? 'yes' : '**no**']),
  )
}

export function renderAll(results: BenchResults): string {
  const { machine } = results
  return [
    `${results.mode} run, ${results.startedAt}, ${fmt(results.durationS, 0)} s; ${machine.cores} cores ` +
      `(${machine.cpuModel}), Node ${results.versions.node}; load average before ` +
      `${machine.loadavgBefore.map((l) => fmt(l)).join(' ')}, after ${machine.loadavgAfter.map((l) => fmt(l)).join(' ')}.`,
    results.callgrind ? `\n${renderCallgrind(results.callgrind)}\n` : '',
    renderCpu(results.cpu),
    results.saturation ? `\n${renderSaturation(results.saturation)}` : '',
    results.cluster ? `\n${renderCluster(results.cluster)}` : '',
    results.formats ? `\n${renderFormats(results.formats)}` : '',
    '',
    renderTargets(results.targets),
  ].join('\n')
}
