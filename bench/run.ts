// `npm run bench`: what the metrics plugin and the cluster view cost, side by side with bare
// Fastify and fastify-metrics. One command, one run: CPU per request and latency at a fixed
// arrival rate (interleaved rounds, ratios within rounds), saturation with pinned cores, scrape
// cost through the cluster view under PM2, RSS with the cluster view on and off, and the
// exposition formats (protobuf, OpenMetrics, text) side by side: bytes and gather time.
//   npm run bench                 full run (about 6 to 7 minutes), results in bench/results/
//   npm run bench -- --quick      smoke run (under a minute), figures not meaningful
//   --out <file>                  where to write the JSON (default bench/results/<mode>-<time>.json)
//   --no-cluster                  skip the PM2 parts (the cluster view and the formats)
//   --formats-only                the formats comparison alone (results JSON, no document)
//   --storm-only                  a burst of 20 Prometheus-like scrapers for 10 s, RSS 60 s after,
//                                 with the cluster view on, then off (results JSON, no document)
//   --scrape-cost-only            what a scrape costs, each goal with the cluster view on and off
//                                 (about 20 minutes; rewrites that section of docs/performance.md)
//   --parts <a,b>                 with --scrape-cost-only, only these parts: registries, storm-20,
//                                 storm-50, service, bursts (results JSON, no document)
//   --cpu-prof                    run the single-process servers under --cpu-prof (profiles in
//                                 bench/results/profiles/, summarise with bench/profile-summary.ts)
//   --callgrind-runs <n>          instruction counts under callgrind, n runs per variant
//                                 (full run: 1; quick run: none unless asked)
//   --callgrind-only              the instruction counts alone (3 runs unless --callgrind-runs)
//   --callgrind-profile           also write node's perf maps, to name JS functions in the dumps
//                                 (bench/callgrind-annotate.ts)
// Everything a run writes (results JSON, callgrind dumps, profiles) goes to the ignored
// bench/results/; the figures worth keeping go in the docs.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { cpus, loadavg, totalmem } from 'node:os'
import { dirname, join } from 'node:path'
import { parseArgs } from 'node:util'
import { type CallgrindSettings, runCallgrindBench } from './lib/callgrind'
import {
  benchStorm,
  type ClusterResults,
  type ClusterSettings,
  runClusterBench,
} from './lib/cluster'
import { type FormatsSettings, runFormatsBench } from './lib/formats'
import {
  performanceDocument,
  withCurrentMethod,
  withScrapeCostSection,
} from './lib/performance-doc'
import {
  type BenchResults,
  renderAll,
  renderCallgrind,
  renderFormats,
  type Target,
} from './lib/report'
import {
  runScrapeCostBench,
  SCRAPE_COST_PARTS,
  type ScrapeCostPart,
  type ScrapeCostSettings,
} from './lib/scrape-cost'
import { renderScrapeCost } from './lib/scrape-cost-report'
import {
  type CpuSettings,
  LoadGenerator,
  runSingleProcessBench,
  type SaturationSettings,
} from './lib/single-process'
import { median, round } from './lib/stats'

const ROOT = join(__dirname, '..')
const PERFORMANCE_DOC = join(ROOT, 'docs', 'performance.md')

/** Durations are whole seconds: autocannon runs for at least one second, in whole seconds. */
interface Settings {
  callgrind: CallgrindSettings
  cpu: CpuSettings
  saturation: SaturationSettings
  cluster: ClusterSettings
  formats: FormatsSettings
  scrapeCost: ScrapeCostSettings
}

const FULL: Settings = {
  // GET /, as in the CPU-time bench's mix; see bench/lib/callgrind.ts for the warm-up.
  callgrind: {
    warmupRequests: 10000,
    requests: 3000,
    path: '/',
    runs: 1,
    parallel: 2,
    profile: false,
  },
  cpu: { rate: 3000, durationS: 5, rounds: 6, warmupS: 3, preheatS: 1, connections: 10 },
  saturation: { durationS: 3, rounds: 2, connections: 50 },
  cluster: {
    instances: 5,
    cores: 2,
    registries: [
      // The service's own registry: its six routes and prom-client's process metrics.
      { name: 'service', routes: 0, statusCodes: 0 },
      // 20 routes × 3 codes: 60 label sets, 960 HTTP series per worker, about 1,100 in all.
      { name: 'realistic', routes: 20, statusCodes: 3 },
      // 102 routes × 3 codes: 306 label sets, about 5,000 series per worker.
      { name: 'large', routes: 102, statusCodes: 3 },
    ],
    warmupS: 3,
    scrapes: 200,
    phaseMaxS: 12,
    scrapeGapMs: 25,
    loadRate: 2000,
    loadConnections: 20,
    memoryS: 15,
    storm: { scrapers: [20, 50], durationS: 10, serviceRate: 200, settleS: 20 },
  },
  formats: { rounds: 60, warmupRounds: 5 },
  scrapeCost: {
    storm20: { scrapers: 20, durationS: 10, serviceRate: 200, settleS: 60 },
    storm50: { scrapers: 50, durationS: 30, serviceRate: 200, settleS: 60 },
    service: { scrapers: 20, durationS: 10, serviceRate: 100, settleS: 60 },
    bursts: { count: 3, scrapers: 20, durationS: 10, gapS: 30 },
  },
}

const QUICK: Settings = {
  callgrind: {
    warmupRequests: 300,
    requests: 300,
    path: '/',
    runs: 0,
    parallel: 2,
    profile: false,
  },
  cpu: { rate: 1000, durationS: 1, rounds: 2, warmupS: 1, preheatS: 0, connections: 5 },
  saturation: { durationS: 1, rounds: 1, connections: 20 },
  cluster: {
    instances: 2,
    cores: 2,
    registries: [{ name: 'realistic', routes: 20, statusCodes: 3 }],
    warmupS: 1,
    scrapes: 5,
    phaseMaxS: 3,
    scrapeGapMs: 10,
    loadRate: 300,
    loadConnections: 5,
    memoryS: 1,
    storm: { scrapers: [2, 3], durationS: 1, serviceRate: 100, settleS: 0 },
  },
  formats: { rounds: 3, warmupRounds: 1 },
  scrapeCost: {
    storm20: { scrapers: 2, durationS: 1, serviceRate: 100, settleS: 1 },
    storm50: { scrapers: 3, durationS: 1, serviceRate: 100, settleS: 1 },
    service: { scrapers: 2, durationS: 1, serviceRate: 100, settleS: 1 },
    bursts: { count: 3, scrapers: 2, durationS: 1, gapS: 1 },
  },
}

function versionOf(pkg: string): string {
  const file = join(ROOT, 'node_modules', pkg, 'package.json')
  return (JSON.parse(readFileSync(file, 'utf8')) as { version: string }).version
}

function versionsOf(): Record<string, string> {
  return {
    node: process.versions.node,
    fastify: versionOf('fastify'),
    'prom-client': versionOf('prom-client'),
    protobufjs: versionOf('protobufjs'),
    'fastify-metrics': versionOf('fastify-metrics'),
    autocannon: versionOf('autocannon'),
    pm2: versionOf('pm2'),
  }
}

/** The cluster view's goals, per registry size and for concurrent scrapers. */
function clusterTargets(cluster: ClusterResults): Target[] {
  const targets: Target[] = []
  const add = (name: string, target: string, value: number, limit: number, unit = '') =>
    targets.push({
      name,
      target: `≤ ${target}`,
      value: `${value.toFixed(unit === '×' ? 2 : 1)}${unit === '×' ? ' ×' : ` ${unit}`}`,
      met: value <= limit,
    })
  const goals: Record<
    string,
    { p50?: number; p99?: number; loadedP99?: number; getP99?: number; kib?: number }
  > = {
    service: { p50: 5, p99: 15, kib: 15 },
    realistic: { p50: 8, p99: 20, loadedP99: 35, kib: 90 },
    large: { getP99: 80 },
  }
  for (const r of cluster.registries) {
    const goal = goals[r.registry.name] ?? {}
    const name = `${r.registry.name} (${r.seriesPerWorker} series per worker)`
    const idle = r.idle.gatherMs
    if (idle && goal.p50 !== undefined)
      add(`${name}: gather p50, idle`, `${goal.p50} ms`, idle.p50, goal.p50, 'ms')
    if (idle && goal.p99 !== undefined)
      add(`${name}: gather p99, idle`, `${goal.p99} ms`, idle.p99, goal.p99, 'ms')
    const loaded = r.underLoad.gatherMs
    if (loaded && goal.loadedP99 !== undefined) {
      add(
        `${name}: gather p99 under ${r.underLoad.loadRps} req/s`,
        `${goal.loadedP99} ms`,
        loaded.p99,
        goal.loadedP99,
        'ms',
      )
    }
    if (goal.getP99 !== undefined)
      add(`${name}: GET p99, idle`, `${goal.getP99} ms`, r.idle.getMs.p99, goal.getP99, 'ms')
    if (goal.kib !== undefined)
      add(
        `${name}: bytes on the wire (gzip)`,
        `${goal.kib} KiB`,
        r.idle.wireBytes.median / 1024,
        goal.kib,
        'KiB',
      )
    if (idle)
      add(`${name}: gather p50 ÷ floor (${r.floorMs} ms)`, '1.5 ×', idle.p50 / r.floorMs, 1.5, '×')
    if (r.registry.name === 'realistic') {
      add(`${name}: RSS added per worker`, '3 MiB', r.rss.addedMiBPerWorker, 3, 'MiB')
    }
  }
  for (const storm of cluster.storms) {
    const kind = `${storm.scrapers} ${storm.anonymous ? 'anonymous' : 'Prometheus-like'} scrapers`
    const slower = storm.serviceMs.during.p99 / storm.serviceMs.quiet.p99
    targets.push({
      name: `${kind}: worker restarts (PM2's max_memory_restart)`,
      target: '0',
      value: String(storm.restarts),
      met: storm.restarts === 0,
    })
    if (!storm.anonymous) {
      targets.push({
        name: `${kind}: scrapes per second`,
        target: '≥ 300',
        value: storm.scrapesPerSecond.toFixed(0),
        met: storm.scrapesPerSecond >= 300,
      })
      add(`${kind}: service p99 ÷ without scrapes`, '1.10 ×', slower, 1.1, '×')
    } else {
      targets.push({
        name: `${kind}: complete scrapes`,
        target: 'all',
        value: `${storm.complete} of ${storm.scrapes}`,
        met: storm.complete === storm.scrapes,
      })
      add(`${kind}: service p99 ÷ without scrapes`, '1.25 ×', slower, 1.25, '×')
      const grown = median(storm.rssMiB.settled) - median(storm.rssMiB.before)
      add(
        `${kind}: RSS ${cluster.settings.storm.settleS} s after, above before`,
        '3 MiB',
        grown,
        3,
        'MiB',
      )
    }
  }
  return targets
}

function evaluateTargets(results: BenchResults): Target[] {
  const targets: Target[] = []
  const ratio = (v: keyof BenchResults['cpu']['summary']) => results.cpu.summary[v].ratioToBare
  const ours = ratio('plugin')
  if (results.callgrind) {
    const plugin = results.callgrind.variants.plugin
    targets.push({
      name: 'instructions per request, plugin ÷ bare (callgrind)',
      target: '≤ 1.030',
      value: `${plugin.ratioToBare.toFixed(3)} (runs within ${plugin.summary.spreadPercent.toFixed(2)} %)`,
      met: plugin.ratioToBare <= 1.03,
    })
  }
  targets.push({
    name: 'CPU per request, plugin ÷ bare (median of rounds)',
    target: '≤ 1.08',
    value: `${ours.median.toFixed(3)} (${ours.min.toFixed(3)}–${ours.max.toFixed(3)})`,
    met: ours.median <= 1.08,
  })
  const httpOnly = ratio('plugin-http-only')
  targets.push({
    name: 'CPU per request, plugin (HTTP metrics only) ÷ bare',
    target: '≤ 1.08',
    value: `${httpOnly.median.toFixed(3)} (${httpOnly.min.toFixed(3)}–${httpOnly.max.toFixed(3)})`,
    met: httpOnly.median <= 1.08,
  })
  // Like for like: with process metrics against fastify-metrics' defaults (which has them),
  // HTTP metrics only against its histogram-only setup.
  const pairs = [
    ['plugin', 'fastify-metrics-defaults'],
    ['plugin-http-only', 'fastify-metrics-histogram'],
  ] as const
  for (const [mine, other] of pairs) {
    targets.push({
      name: `CPU per request, ${mine} below ${other}`,
      target: `< ${ratio(other).median.toFixed(3)} × bare`,
      value: `${ratio(mine).median.toFixed(3)} × bare`,
      met: ratio(mine).median < ratio(other).median,
    })
  }
  if (results.cluster) targets.push(...clusterTargets(results.cluster))
  return targets
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      quick: { type: 'boolean', default: false },
      out: { type: 'string' },
      'no-cluster': { type: 'boolean', default: false },
      'cpu-prof': { type: 'boolean', default: false },
      'callgrind-runs': { type: 'string' },
      'callgrind-only': { type: 'boolean', default: false },
      'callgrind-profile': { type: 'boolean', default: false },
      'formats-only': { type: 'boolean', default: false },
      'storm-only': { type: 'boolean', default: false },
      'scrape-cost-only': { type: 'boolean', default: false },
      parts: { type: 'string' },
    },
  })
  const mode = values.quick ? 'quick' : 'full'
  const settings = values.quick ? QUICK : FULL
  const started = new Date()
  const stamp = started.toISOString().replace(/[:.]/g, '-')
  const out = values.out ?? join(ROOT, 'bench', 'results', `${mode}-${stamp}.json`)
  const elapsed = () => ((Date.now() - started.getTime()) / 1000).toFixed(1)
  const log = (line: string) => process.stdout.write(`[bench +${elapsed()} s] ${line}\n`)
  const loadavgBefore = loadavg().map((l) => round(l, 2))
  log(`${mode} run; load average ${loadavgBefore.join(' ')} on ${cpus().length} cores`)

  if (values['formats-only']) {
    const formats = await runFormatsBench(settings.cluster, settings.formats, log)
    mkdirSync(dirname(out), { recursive: true })
    writeFileSync(
      out,
      `${JSON.stringify({ schema: 'bench-formats/1', mode, startedAt: started.toISOString(), versions: versionsOf(), formats }, null, 2)}\n`,
    )
    process.stdout.write(`\n${renderFormats(formats)}\n\n`)
    log(`results written to ${out}`)
    return
  }

  if (values['storm-only']) {
    const cluster = { ...settings.cluster, storm: { ...settings.cluster.storm, settleS: 60 } }
    const registry = cluster.registries.find((r) => r.name === 'realistic') ?? cluster.registries[0]
    const load = LoadGenerator.start()
    const storms = []
    try {
      for (const clusterView of [true, false]) {
        const scrapers = cluster.storm.scrapers[0]
        storms.push(await benchStorm(scrapers, false, registry, cluster, load, log, clusterView))
      }
    } finally {
      await load.stop()
    }
    mkdirSync(dirname(out), { recursive: true })
    writeFileSync(
      out,
      `${JSON.stringify({ schema: 'bench-storm/1', mode, startedAt: started.toISOString(), versions: versionsOf(), storms }, null, 2)}\n`,
    )
    log(`results written to ${out}`)
    return
  }

  if (values['scrape-cost-only']) {
    const parts = (values.parts?.split(',') ?? [...SCRAPE_COST_PARTS]) as ScrapeCostPart[]
    const unknown = parts.filter((p) => !SCRAPE_COST_PARTS.includes(p))
    if (unknown.length > 0) {
      throw new TypeError(
        `--parts takes ${SCRAPE_COST_PARTS.join(', ')}; got ${unknown.join(', ')}`,
      )
    }
    const load = LoadGenerator.start()
    let scrapeCost: Awaited<ReturnType<typeof runScrapeCostBench>>
    try {
      scrapeCost = await runScrapeCostBench(settings.cluster, settings.scrapeCost, parts, load, log)
    } finally {
      await load.stop()
    }
    const loadavgAfter = loadavg().map((l) => round(l, 2))
    const header =
      `${mode} run of the scrape-cost parts, ${started.toISOString()}, ${round((Date.now() - started.getTime()) / 1000, 0)} s; ` +
      `${cpus().length} cores (${cpus()[0]?.model ?? 'unknown'}), Node ${process.versions.node}; ` +
      `load average before ${loadavgBefore.join(' ')}, after ${loadavgAfter.join(' ')}.`
    mkdirSync(dirname(out), { recursive: true })
    writeFileSync(
      out,
      `${JSON.stringify({ schema: 'bench-scrape-cost/1', mode, startedAt: started.toISOString(), loadavgBefore, loadavgAfter, versions: versionsOf(), scrapeCost }, null, 2)}\n`,
    )
    const section = `${header}\n\n${renderScrapeCost(scrapeCost)}`
    process.stdout.write(`\n${section}\n\n`)
    log(`results written to ${out}`)
    // Every part of a full run rewrites its section of the document; the rest stays.
    if (mode === 'full' && values.out === undefined && values.parts === undefined) {
      writeFileSync(
        PERFORMANCE_DOC,
        withScrapeCostSection(withCurrentMethod(readFileSync(PERFORMANCE_DOC, 'utf8')), section),
      )
      log(`scrape-cost section written to ${PERFORMANCE_DOC}`)
    }
    return
  }

  const callgrindRuns =
    values['callgrind-runs'] !== undefined
      ? Number(values['callgrind-runs'])
      : values['callgrind-only']
        ? 3
        : settings.callgrind.runs
  if (!Number.isInteger(callgrindRuns) || callgrindRuns < 0) {
    throw new TypeError(`--callgrind-runs must be a whole number, got ${values['callgrind-runs']}`)
  }
  const callgrind =
    callgrindRuns > 0
      ? await runCallgrindBench(
          { ...settings.callgrind, runs: callgrindRuns, profile: values['callgrind-profile'] },
          () => LoadGenerator.start(),
          join(ROOT, 'bench', 'results', 'callgrind', stamp),
          log,
        )
      : null
  if (values['callgrind-only'] && callgrind) {
    mkdirSync(dirname(out), { recursive: true })
    writeFileSync(
      out,
      `${JSON.stringify({ schema: 'bench-callgrind/1', mode, startedAt: started.toISOString(), versions: versionsOf(), callgrind }, null, 2)}\n`,
    )
    process.stdout.write(`\n${renderCallgrind(callgrind)}\n\n`)
    log(`results written to ${out}`)
    return
  }

  const profileDir = join(ROOT, 'bench', 'results', 'profiles')
  if (values['cpu-prof']) mkdirSync(profileDir, { recursive: true })
  const { cpu, saturation } = await runSingleProcessBench({
    cpu: settings.cpu,
    saturation: settings.saturation,
    serverExecArgv: values['cpu-prof'] ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}`] : [],
    log,
  })

  let cluster: BenchResults['cluster'] = null
  let formats: BenchResults['formats'] = null
  let scrapeCost: BenchResults['scrapeCost'] = null
  if (!values['no-cluster']) {
    const load = LoadGenerator.start()
    try {
      cluster = await runClusterBench(settings.cluster, load, log)
      // The registries were just measured; a quick run has no time for the bursts.
      if (mode === 'full') {
        scrapeCost = await runScrapeCostBench(
          settings.cluster,
          settings.scrapeCost,
          SCRAPE_COST_PARTS,
          load,
          log,
          cluster.registries,
        )
      }
    } finally {
      await load.stop()
    }
    formats = await runFormatsBench(settings.cluster, settings.formats, log)
  }

  const results: BenchResults = {
    schema: 'bench-results/1',
    mode,
    startedAt: started.toISOString(),
    durationS: round((Date.now() - started.getTime()) / 1000, 1),
    machine: {
      cores: cpus().length,
      cpuModel: cpus()[0]?.model ?? 'unknown',
      totalMemoryMiB: Math.round(totalmem() / 2 ** 20),
      loadavgBefore,
      loadavgAfter: loadavg().map((l) => round(l, 2)),
    },
    versions: versionsOf(),
    callgrind,
    cpu,
    saturation,
    cluster,
    formats,
    scrapeCost,
    targets: [],
  }
  results.targets = evaluateTargets(results)
  mkdirSync(dirname(out), { recursive: true })
  writeFileSync(out, `${JSON.stringify(results, null, 2)}\n`)
  process.stdout.write(`\n${renderAll(results)}\n\n`)
  log(`results written to ${out}`)
  // A full run is the one worth keeping: its summary becomes the performance document.
  if (mode === 'full' && values.out === undefined) {
    const section = results.scrapeCost ? renderScrapeCost(results.scrapeCost) : null
    writeFileSync(PERFORMANCE_DOC, performanceDocument(renderAll(results), section))
    log(`summary written to ${PERFORMANCE_DOC}`)
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`${(err as Error).stack}\n`)
  process.exit(1)
})
