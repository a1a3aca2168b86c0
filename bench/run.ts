// `npm run bench`: what the metrics plugin and the cluster view cost, side by side with bare
// Fastify and fastify-metrics. One command, one run: CPU per request and latency at a fixed
// arrival rate (interleaved rounds, ratios within rounds), saturation with pinned cores, scrape
// cost through the cluster view under PM2, and RSS with the cluster view on and off.
//   npm run bench                 full run (about 6 to 7 minutes), results in bench/results/
//   npm run bench -- --quick      smoke run (under a minute), figures not meaningful
//   --out <file>                  where to write the JSON (default bench/results/<mode>-<time>.json)
//   --no-cluster                  skip the PM2 parts
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
import { type ClusterSettings, runClusterBench } from './lib/cluster'
import { type BenchResults, renderAll, renderCallgrind, type Target } from './lib/report'
import {
  type CpuSettings,
  LoadGenerator,
  runSingleProcessBench,
  type SaturationSettings,
} from './lib/single-process'
import { round } from './lib/stats'

const ROOT = join(__dirname, '..')

/** Durations are whole seconds: autocannon runs for at least one second, in whole seconds. */
interface Settings {
  callgrind: CallgrindSettings
  cpu: CpuSettings
  saturation: SaturationSettings
  cluster: ClusterSettings
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
    warmupS: 3,
    warmupScrapes: 10,
    idleScrapes: 200,
    idleMaxS: 15,
    scrapeGapMs: 25,
    loadRate: 2000,
    loadDurationS: 12,
    memoryS: 15,
    loadConnections: 20,
    // 20 routes × 3 codes: 60 label sets, 960 http series per worker, plus process metrics.
    realistic: { routes: 20, statusCodes: 3 },
    // 102 routes × 3 codes: 306 label sets, about 5,000 series per worker.
    large: { routes: 102, statusCodes: 3 },
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
    warmupS: 1,
    warmupScrapes: 1,
    idleScrapes: 5,
    idleMaxS: 5,
    scrapeGapMs: 10,
    loadRate: 300,
    loadDurationS: 2,
    memoryS: 1,
    loadConnections: 5,
    realistic: { routes: 20, statusCodes: 3 },
    large: { routes: 102, statusCodes: 3 },
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
    'fastify-metrics': versionOf('fastify-metrics'),
    autocannon: versionOf('autocannon'),
    pm2: versionOf('pm2'),
  }
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
  const cluster = results.cluster
  const realistic = cluster?.scenarios.find((s) => s.name === 'realistic')
  if (cluster && realistic) {
    const idle = realistic.idle?.gatherMs
    const loaded = realistic.underLoad?.gatherMs
    const n = cluster.settings.instances
    if (idle) {
      targets.push({
        name: `gather, ${n} workers, idle, p50`,
        target: '≤ 10 ms',
        value: `${idle.p50.toFixed(1)} ms`,
        met: idle.p50 <= 10,
      })
      targets.push({
        name: `gather, ${n} workers, idle, p99`,
        target: '≤ 30 ms',
        value: `${idle.p99.toFixed(1)} ms`,
        met: idle.p99 <= 30,
      })
    }
    if (loaded) {
      targets.push({
        name: `gather, ${n} workers, under ${cluster.settings.loadRate} req/s, p99`,
        target: '≤ 50 ms',
        value: `${loaded.p99.toFixed(1)} ms`,
        met: loaded.p99 <= 50,
      })
    }
    targets.push({
      name: 'RSS added per worker by the cluster view',
      target: '≤ 3 MiB',
      value: `${cluster.memory.addedMiBPerWorker.toFixed(1)} MiB`,
      met: cluster.memory.addedMiBPerWorker <= 3,
    })
  }
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
  if (!values['no-cluster']) {
    const load = LoadGenerator.start()
    try {
      cluster = await runClusterBench(settings.cluster, load, log)
    } finally {
      await load.stop()
    }
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
    targets: [],
  }
  results.targets = evaluateTargets(results)
  mkdirSync(dirname(out), { recursive: true })
  writeFileSync(out, `${JSON.stringify(results, null, 2)}\n`)
  process.stdout.write(`\n${renderAll(results)}\n\n`)
  log(`results written to ${out}`)
}

main().catch((err: unknown) => {
  process.stderr.write(`${(err as Error).stack}\n`)
  process.exit(1)
})
