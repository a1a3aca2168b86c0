// Parts 2 and 3 of the bench: what a scrape costs through the cluster view (5 PM2 workers,
// idle and under steady load, realistic and large registries), and the RSS each worker pays
// for the cluster view (METRICS_CLUSTER=true vs false, same traffic and scrapes).
import { readFileSync } from 'node:fs'
import { httpGet, sleep } from '../../test/helpers/net'
import type { LoadRequest } from './load-generator'
import { type BenchPm2App, startBenchPm2App } from './pm2-app'
import type { LoadGenerator } from './single-process'
import { percentile, round, type Spread, spread } from './stats'

export interface RegistryShape {
  routes: number
  statusCodes: number
}

export interface ClusterSettings {
  instances: number
  /** Traffic before the measured scrapes, so routes' series exist and code is compiled. */
  warmupS: number
  warmupScrapes: number
  idleScrapes: number
  /** Upper bound of the idle phase, whatever the number of scrapes done by then. */
  idleMaxS: number
  /** Pause between two scrapes (each scrape opens a new connection, as after a reconnect). */
  scrapeGapMs: number
  loadRate: number
  loadDurationS: number
  /** Steady traffic, scraped once a second, before RSS is read. */
  memoryS: number
  loadConnections: number
  realistic: RegistryShape
  large: RegistryShape
}

/** Traffic for the PM2 service: demo routes, 200s and a 404 from a matched route. */
const CLUSTER_MIX: LoadRequest[] = [
  { method: 'GET', path: '/' },
  { method: 'GET', path: '/items/2' },
  { method: 'GET', path: '/items/42' },
]

interface Scrape {
  e2eMs: number
  gatherMs: number | null
  bytes: number
  series: number
  seriesPerWorker: number
  answered: number | null
  expected: number | null
}

export interface ScrapeSummary {
  scrapes: number
  /** Scrapes in which every expected worker answered. */
  complete: number
  /** Server-side gather time, as reported by cluster_metrics_gather_duration_seconds. */
  gatherMs: { p50: number; p99: number; max: number } | null
  /** Client-side time of the whole GET /metrics, new connection included. */
  e2eMs: { p50: number; p99: number; max: number }
  responseBytes: Spread
  series: Spread
  seriesPerWorker: Spread
}

export interface ScenarioResult {
  name: string
  metricsCluster: boolean
  registry: RegistryShape
  /** Back-to-back scrapes with no traffic (cluster view on only). */
  idle: ScrapeSummary | null
  /** Back-to-back scrapes under steady traffic (cluster view on only). */
  underLoad: (ScrapeSummary & { loadRps: number; loadErrors: number }) | null
  /** Steady traffic with one scrape a second; RSS of every worker before and after. */
  memory: {
    scrapes: ScrapeSummary
    loadRps: number
    rssMiBAfterStart: number[]
    rssMiBAfterLoad: number[]
  }
}

export interface ClusterResults {
  settings: ClusterSettings
  scenarios: ScenarioResult[]
  memory: {
    clusterOnMiB: Spread
    clusterOffMiB: Spread
    /** Median worker RSS with the cluster view minus without, after the same traffic. */
    addedMiBPerWorker: number
    addedMiBPerWorkerAfterStart: number
  }
}

const sampleValue = (body: string, name: string): number | null => {
  const match = new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'm').exec(body)
  return match ? Number(match[1]) : null
}

async function scrape(baseUrl: string): Promise<Scrape> {
  const started = performance.now()
  const res = await httpGet(`${baseUrl}/metrics`, { timeoutMs: 10_000 })
  const e2eMs = performance.now() - started
  if (res.status !== 200) throw new Error(`GET /metrics answered ${res.status}`)
  const lines = res.body.split('\n').filter((line) => line !== '' && !line.startsWith('#'))
  const gatherSeconds = sampleValue(res.body, 'cluster_metrics_gather_duration_seconds')
  return {
    e2eMs,
    gatherMs: gatherSeconds === null ? null : gatherSeconds * 1000,
    bytes: Buffer.byteLength(res.body),
    series: lines.length,
    seriesPerWorker: lines.filter((line) => line.includes('worker_id="0"')).length,
    answered: sampleValue(res.body, 'cluster_metrics_workers_answered'),
    expected: sampleValue(res.body, 'cluster_metrics_workers_expected'),
  }
}

function summarise(scrapes: Scrape[]): ScrapeSummary {
  const sorted = (pick: (s: Scrape) => number | null) =>
    scrapes
      .map(pick)
      .filter((v): v is number => v !== null)
      .sort((a, b) => a - b)
  const pct = (values: number[]) => ({
    p50: round(percentile(values, 0.5)),
    p99: round(percentile(values, 0.99)),
    max: round(values.at(-1) ?? Number.NaN),
  })
  const gather = sorted((s) => s.gatherMs)
  return {
    scrapes: scrapes.length,
    complete: scrapes.filter((s) => s.answered !== null && s.answered === s.expected).length,
    gatherMs: gather.length > 0 ? pct(gather) : null,
    e2eMs: pct(sorted((s) => s.e2eMs)),
    responseBytes: spread(scrapes.map((s) => s.bytes)),
    series: spread(scrapes.map((s) => s.series)),
    seriesPerWorker: spread(scrapes.map((s) => s.seriesPerWorker)),
  }
}

/** Scrapes with `gapMs` between scrapes until `until` settles. */
async function scrapeUntil(baseUrl: string, until: Promise<unknown>, gapMs: number) {
  let done = false
  const settle = () => {
    done = true
  }
  until.then(settle, settle)
  const scrapes: Scrape[] = []
  while (!done) {
    scrapes.push(await scrape(baseUrl))
    await sleep(gapMs)
  }
  return scrapes
}

async function scrapeRepeatedly(baseUrl: string, count: number, gapMs: number, maxMs = Infinity) {
  const scrapes: Scrape[] = []
  const deadline = performance.now() + maxMs
  for (let i = 0; i < count && performance.now() < deadline; i++) {
    scrapes.push(await scrape(baseUrl))
    await sleep(gapMs)
  }
  return scrapes
}

function rssMiB(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8')
  const kib = Number(/^VmRSS:\s+(\d+) kB$/m.exec(status)?.[1])
  return round(kib / 1024, 1)
}

async function runScenario(
  name: string,
  metricsCluster: boolean,
  registry: RegistryShape,
  settings: ClusterSettings,
  load: LoadGenerator,
  log: (line: string) => void,
): Promise<ScenarioResult> {
  let app: BenchPm2App | undefined
  log(`${name}: starting ${settings.instances} PM2 workers`)
  try {
    app = await startBenchPm2App({
      instances: settings.instances,
      env: {
        METRICS_CLUSTER: String(metricsCluster),
        BENCH_SERIES_ROUTES: String(registry.routes),
        BENCH_SERIES_STATUS_CODES: String(registry.statusCodes),
      },
    })
    const baseUrl = app.baseUrl
    const pids = [...app.workers.entries()].sort(([a], [b]) => Number(a) - Number(b))
    const rss = () => pids.map(([, pid]) => rssMiB(pid))
    const afterStart = rss()
    const loadOptions = (durationS: number) => ({
      url: baseUrl,
      requests: CLUSTER_MIX,
      connections: settings.loadConnections,
      durationS,
      rate: settings.loadRate,
    })

    // Warm up: traffic makes the demo routes' series and compiles the hot code, as in service.
    await load.run(loadOptions(settings.warmupS))

    // Memory first, at a scrape cadence Prometheus would use (1 s), before the scrape-latency
    // phases below scrape back to back and grow the heap far beyond normal service.
    const memoryRun = load.run(loadOptions(settings.memoryS))
    const memoryScrapes = await scrapeUntil(baseUrl, memoryRun, 1000)
    const memoryLoad = await memoryRun
    const afterLoad = rss()

    let idle: ScrapeSummary | null = null
    let underLoad: ScenarioResult['underLoad'] = null
    if (metricsCluster) {
      await scrapeRepeatedly(baseUrl, settings.warmupScrapes, settings.scrapeGapMs)
      idle = summarise(
        await scrapeRepeatedly(
          baseUrl,
          settings.idleScrapes,
          settings.scrapeGapMs,
          settings.idleMaxS * 1000,
        ),
      )
      const loadRun = load.run(loadOptions(settings.loadDurationS))
      await sleep(1000) // let the arrival rate settle first
      const loaded = await scrapeUntil(baseUrl, loadRun, settings.scrapeGapMs)
      const loadResult = await loadRun
      underLoad = {
        ...summarise(loaded),
        loadRps: round(loadResult.rps, 1),
        loadErrors: loadResult.errors + loadResult.timeouts,
      }
    }
    const result: ScenarioResult = {
      name,
      metricsCluster,
      registry,
      idle,
      underLoad,
      memory: {
        scrapes: summarise(memoryScrapes),
        loadRps: round(memoryLoad.rps, 1),
        rssMiBAfterStart: afterStart,
        rssMiBAfterLoad: afterLoad,
      },
    }
    const g = (s: ScrapeSummary | null) =>
      s?.gatherMs ? `gather p50 ${s.gatherMs.p50} p99 ${s.gatherMs.p99} ms` : 'no gather'
    log(
      `${name}: idle ${g(idle)}; under load ${g(underLoad)}; ` +
        `${result.memory.scrapes.series.median} series per scrape; ` +
        `RSS after start ${afterStart.join(' ')}, after load ${afterLoad.join(' ')} MiB`,
    )
    return result
  } finally {
    await app?.stop()
  }
}

export async function runClusterBench(
  settings: ClusterSettings,
  load: LoadGenerator,
  log: (line: string) => void,
): Promise<ClusterResults> {
  const scenarios: ScenarioResult[] = []
  // Cluster view on and off with the same registry and traffic: the RSS difference is its cost.
  scenarios.push(await runScenario('realistic', true, settings.realistic, settings, load, log))
  scenarios.push(
    await runScenario(
      'realistic, cluster view off',
      false,
      settings.realistic,
      settings,
      load,
      log,
    ),
  )
  scenarios.push(await runScenario('large', true, settings.large, settings, load, log))
  const [on, off] = scenarios.map((sc) => sc.memory)
  const med = (values: number[]) => spread(values).median
  return {
    settings,
    scenarios,
    memory: {
      clusterOnMiB: spread(on.rssMiBAfterLoad),
      clusterOffMiB: spread(off.rssMiBAfterLoad),
      addedMiBPerWorker: round(med(on.rssMiBAfterLoad) - med(off.rssMiBAfterLoad), 1),
      addedMiBPerWorkerAfterStart: round(med(on.rssMiBAfterStart) - med(off.rssMiBAfterStart), 1),
    },
  }
}
