// Renders bench results as Markdown tables: printed at the end of a run, and pasted as-is into
// the README's Performance section.
import type { CallgrindResults } from './callgrind'
import type { ClusterResults, ScrapeSummary } from './cluster'
import type { CpuResults, SaturationResults } from './single-process'
import type { Spread } from './stats'
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
  targets: Target[]
}

const fmt = (n: number, digits = 2) => (Number.isFinite(n) ? n.toFixed(digits) : 'n/a')
const range = (s: Spread, digits = 2) =>
  `${fmt(s.median, digits)} (${fmt(s.min, digits)}–${fmt(s.max, digits)})`

function table(head: string[], rows: string[][]): string {
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

const ms = (s: ScrapeSummary, pick: 'gatherMs' | 'e2eMs') => {
  const v = s[pick]
  return v ? `${fmt(v.p50, 1)} / ${fmt(v.p99, 1)}` : 'n/a'
}

export function renderCluster(cluster: ClusterResults): string {
  const { settings } = cluster
  const size = (s: ScrapeSummary) =>
    `${fmt(s.series.median, 0)} (${fmt(s.seriesPerWorker.median, 0)} per worker), ` +
    `${fmt(s.responseBytes.median / 1024, 0)} KiB`
  const row = (name: string, traffic: string, s: ScrapeSummary) => [
    name,
    traffic,
    ms(s, 'gatherMs'),
    ms(s, 'e2eMs'),
    `${s.complete}/${s.scrapes}`,
    size(s),
  ]
  const rows = cluster.scenarios.flatMap((sc) => {
    const name = `${sc.name} (${sc.registry.routes} routes × ${sc.registry.statusCodes} codes)`
    return [
      ...(sc.idle ? [row(name, 'idle', sc.idle)] : []),
      ...(sc.underLoad ? [row(name, `${fmt(sc.underLoad.loadRps, 0)} req/s`, sc.underLoad)] : []),
    ]
  })
  const { memory } = cluster
  return [
    `Scrapes through the cluster view, ${settings.instances} PM2 workers, back to back, each on a ` +
      'new connection; gather = server-side time reported in ' +
      '`cluster_metrics_gather_duration_seconds`; GET = the whole request as the client sees it.',
    '',
    table(
      [
        'registry',
        'traffic',
        'gather p50 / p99 ms',
        'GET p50 / p99 ms',
        'all workers answered',
        'series per scrape, size',
      ],
      rows,
    ),
    '',
    `RSS per worker after ${settings.memoryS} s at ${settings.loadRate} req/s with one scrape a ` +
      `second (realistic registry): cluster view on ${range(memory.clusterOnMiB, 1)} MiB, off ` +
      `${range(memory.clusterOffMiB, 1)} MiB, so **${fmt(memory.addedMiBPerWorker, 1)} MiB** ` +
      `added per worker (medians; ${fmt(memory.addedMiBPerWorkerAfterStart, 1)} MiB right after start).`,
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
    '',
    renderTargets(results.targets),
  ].join('\n')
}
