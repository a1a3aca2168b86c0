// The cluster view's part of the bench, under real PM2: for each registry size, what a scrape
// costs (the gather, the whole GET, the bytes with and without gzip) against the floor set by
// the workers' own render time, idle and under steady traffic; the RSS the cluster view adds;
// and, at the realistic size, concurrent scrapers (a storm, or several Prometheus replicas)
// beside the service's own request latency.
import { readFileSync } from 'node:fs'
import { Agent } from 'node:http'
import { gunzipSync } from 'node:zlib'
import { httpGet, sleep } from '../../harness/net'
import type { LoadResult } from './load-generator'
import { type BenchPm2App, startBenchPm2App } from './pm2-app'
import { type LoadGenerator, REQUEST_MIX } from './single-process'
import { percentile, round, type Spread, spread } from './stats'

export interface RegistryShape {
  name: string
  /** Bench routes pre-populated in each worker (0: the service's own series only). */
  routes: number
  statusCodes: number
}

export interface ClusterSettings {
  instances: number
  /** Cores the workers share: the floor divides their render time by it. */
  cores: number
  registries: RegistryShape[]
  warmupS: number
  /** Scrapes for each latency figure (idle, under load, floor). */
  scrapes: number
  /** Upper bound of each scrape phase, whatever the number of scrapes done by then. */
  phaseMaxS: number
  scrapeGapMs: number
  loadRate: number
  loadConnections: number
  /** Steady traffic, scraped once a second, before RSS is read. */
  memoryS: number
  storm: { scrapers: number[]; durationS: number; serviceRate: number; settleS: number }
}

/** What Prometheus 2.x sends. */
const PROMETHEUS_HEADERS = {
  accept:
    'application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1',
  'accept-encoding': 'gzip',
  'x-prometheus-scrape-timeout-seconds': '10',
}

interface Scrape {
  ms: number
  gatherMs: number | null
  wireBytes: number
  textBytes: number
  complete: boolean
}

export interface Latency {
  p50: number
  p99: number
  max: number
}

export interface ScrapePhase {
  scrapes: number
  complete: number
  gatherMs: Latency | null
  getMs: Latency
  wireBytes: Spread
  textBytes: Spread
}

export interface RegistryResult {
  registry: RegistryShape
  seriesPerWorker: number
  /** Each worker's own /metrics (cluster view off), same registry: the render it cannot avoid. */
  ownGetMs: Latency
  /** `instances` own renders shared by `cores` cores: what no gather can beat. */
  floorMs: number
  idle: ScrapePhase
  underLoad: ScrapePhase & { loadRps: number }
  /** Text format without gzip, for clients that ask for neither. */
  plainBytes: number
  rss: { clusterOnMiB: Spread; clusterOffMiB: Spread; addedMiBPerWorker: number }
}

export interface StormResult {
  scrapers: number
  anonymous: boolean
  /** False: the same burst against each worker's own registry (METRICS_CLUSTER=false). */
  clusterView: boolean
  scrapesPerSecond: number
  scrapes: number
  complete: number
  failed: number
  getMs: Latency
  serviceMs: { quiet: Latency; during: Latency }
  /** Per worker: before the burst, its highest during it, right after, and settleS after. */
  rssMiB: { before: number[]; peak: number[]; after: number[]; settled: number[] }
  /** Worker restarts PM2 made during the storm and its settling (max_memory_restart). */
  restarts: number
  /** V8's heap before the burst and settled: what of RSS it holds; null without the cluster view. */
  heapMiB: { before: WorkerHeaps; settled: WorkerHeaps } | null
  /** CPU the workers used together, in cores, while the service was quiet and during the burst. */
  workerCores: { quiet: number; during: number }
}

/** Median over the workers of V8's heap (total and in use) and memory outside it, in MiB. */
export interface WorkerHeaps {
  heapTotal: number
  heapUsed: number
  external: number
}

/**
 * The workers' own heap gauges (prom-client's process metrics), from one plain scrape through
 * the cluster view, which carries every worker's: what of a worker's RSS V8 holds, and what
 * the allocator and buffers outside it do.
 */
export async function workerHeapsMiB(baseUrl: string): Promise<WorkerHeaps> {
  const { text } = await scrape(baseUrl, {})
  const medianOf = (name: string) => {
    const values = [...text.matchAll(new RegExp(`^${name}\\{[^}]*\\} (\\S+)$`, 'gm'))].map(
      (m) => Number(m[1]) / 2 ** 20,
    )
    return round(spread(values).median, 1)
  }
  return {
    heapTotal: medianOf('nodejs_heap_size_total_bytes'),
    heapUsed: medianOf('nodejs_heap_size_used_bytes'),
    external: medianOf('nodejs_external_memory_bytes'),
  }
}

export interface ClusterResults {
  settings: ClusterSettings
  registries: RegistryResult[]
  storms: StormResult[]
}

const sampleValue = (body: string, name: string): number | null => {
  const match = new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'm').exec(body)
  return match ? Number(match[1]) : null
}

async function scrape(baseUrl: string, headers: Record<string, string>, agent?: Agent) {
  const started = performance.now()
  const res = await httpGet(`${baseUrl}/metrics`, { headers, agent, timeoutMs: 15_000 })
  const ms = performance.now() - started
  if (res.status !== 200) throw new Error(`GET /metrics answered ${res.status}`)
  const raw = res.rawBody
  const text = (res.headers['content-encoding'] === 'gzip' ? gunzipSync(raw) : raw).toString()
  const gatherSeconds = sampleValue(text, 'cluster_metrics_gather_duration_seconds')
  const answered = sampleValue(text, 'cluster_metrics_workers_answered')
  const expected = sampleValue(text, 'cluster_metrics_workers_expected')
  return {
    ms,
    gatherMs: gatherSeconds === null ? null : gatherSeconds * 1000,
    wireBytes: raw.length,
    textBytes: Buffer.byteLength(text),
    complete: answered === null || answered === expected,
    text,
  }
}

export function latency(values: number[]): Latency {
  const sorted = [...values].sort((a, b) => a - b)
  return {
    p50: round(percentile(sorted, 0.5)),
    p99: round(percentile(sorted, 0.99)),
    max: round(sorted.at(-1) ?? Number.NaN),
  }
}

function summarise(scrapes: Scrape[]): ScrapePhase {
  const gathers = scrapes.map((s) => s.gatherMs).filter((v): v is number => v !== null)
  return {
    scrapes: scrapes.length,
    complete: scrapes.filter((s) => s.complete).length,
    gatherMs: gathers.length > 0 ? latency(gathers) : null,
    getMs: latency(scrapes.map((s) => s.ms)),
    wireBytes: spread(scrapes.map((s) => s.wireBytes)),
    textBytes: spread(scrapes.map((s) => s.textBytes)),
  }
}

/** Scrapes as one Prometheus does (one keep-alive connection) until `count` or `until`. */
async function scrapeSeries(
  baseUrl: string,
  settings: ClusterSettings,
  until?: Promise<unknown>,
): Promise<Scrape[]> {
  let done = false
  until?.then(
    () => {
      done = true
    },
    () => {
      done = true
    },
  )
  const agent = new Agent({ keepAlive: true, maxSockets: 1 })
  const deadline = performance.now() + settings.phaseMaxS * 1000
  const scrapes: Scrape[] = []
  try {
    while (!done && performance.now() < deadline && (until || scrapes.length < settings.scrapes)) {
      scrapes.push(await scrape(baseUrl, PROMETHEUS_HEADERS, agent))
      await sleep(settings.scrapeGapMs)
    }
  } finally {
    agent.destroy()
  }
  return scrapes
}

/** User and system CPU time of `pid` so far, in seconds (clock ticks of 1/100 s). */
function cpuSeconds(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    return (Number(fields[11]) + Number(fields[12])) / 100
  } catch {
    return Number.NaN
  }
}

/** Every worker's CPU seconds so far, summed. */
export async function workersCpuSeconds(app: BenchPm2App): Promise<number> {
  return [...(await app.current()).values()].reduce((sum, w) => sum + cpuSeconds(w.pid), 0)
}

function rssMiB(pid: number): number {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8')
    const kib = Number(/^VmRSS:\s+(\d+) kB$/m.exec(status)?.[1])
    return round(kib / 1024, 1)
  } catch {
    return Number.NaN // the process is gone (PM2 restarted it meanwhile)
  }
}

/** Runs `run` against the service under PM2 with `registry`'s series, then stops it. */
export async function withApp<T>(
  settings: ClusterSettings,
  registry: RegistryShape,
  metricsCluster: boolean,
  run: (app: BenchPm2App, rss: () => Promise<number[]>) => Promise<T>,
  extraEnv: Record<string, string> = {},
): Promise<T> {
  const app = await startBenchPm2App({
    instances: settings.instances,
    env: {
      METRICS_CLUSTER: String(metricsCluster),
      METRICS_GATHER_TIMEOUT_MS: '5000',
      ...extraEnv,
      ...(registry.routes > 0
        ? {
            BENCH_SERIES_ROUTES: String(registry.routes),
            BENCH_SERIES_STATUS_CODES: String(registry.statusCodes),
          }
        : {}),
    },
  })
  try {
    // Read from PM2 each time: a worker PM2 restarted (e.g. past max_memory_restart) has a new pid.
    const rss = async () =>
      [...(await app.current()).entries()]
        .sort(([a], [b]) => Number(a) - Number(b))
        .map(([, worker]) => rssMiB(worker.pid))
    return await run(app, rss)
  } finally {
    await app.stop()
  }
}

/** Steady traffic with one scrape a second (Prometheus' cadence at most), then every RSS. */
async function memoryPhase(
  app: BenchPm2App,
  settings: ClusterSettings,
  load: LoadGenerator,
  rss: () => Promise<number[]>,
): Promise<number[]> {
  const traffic = load.run(loadOptions(app, settings, settings.memoryS))
  let done = false
  traffic.then(() => {
    done = true
  })
  while (!done) {
    await scrape(app.baseUrl, PROMETHEUS_HEADERS)
    await sleep(1000)
  }
  await traffic
  return await rss()
}

function loadOptions(
  app: BenchPm2App,
  settings: ClusterSettings,
  durationS: number,
  rate?: number,
) {
  return {
    url: app.baseUrl,
    requests: REQUEST_MIX,
    connections: settings.loadConnections,
    durationS,
    rate: rate ?? settings.loadRate,
  }
}

export async function benchRegistry(
  registry: RegistryShape,
  settings: ClusterSettings,
  load: LoadGenerator,
  log: (line: string) => void,
): Promise<RegistryResult> {
  // The floor, and RSS without the cluster view: same registry, same traffic and scrapes.
  const off = await withApp(settings, registry, false, async (app, rss) => {
    await load.run(loadOptions(app, settings, settings.warmupS))
    const rssOff = await memoryPhase(app, settings, load, rss)
    const own = await scrapeSeries(app.baseUrl, settings)
    return { rssOff, own }
  })
  const ownGetMs = latency(off.own.map((s) => s.ms))
  const floorMs = round((settings.instances * ownGetMs.p50) / settings.cores)

  // Every scrape a real gather: the reuse window would answer back-to-back scrapes from the
  // last one, which is what it is for, but not what these figures measure.
  const realGathers = { METRICS_GATHER_REUSE_MS: '0' }
  return withApp(
    settings,
    registry,
    true,
    async (app, rss) => {
      await load.run(loadOptions(app, settings, settings.warmupS))
      const rssOn = await memoryPhase(app, settings, load, rss)
      await scrapeSeries(app.baseUrl, { ...settings, scrapes: 10 })
      const idleScrapes = await scrapeSeries(app.baseUrl, settings)
      const plain = await scrape(app.baseUrl, {})
      const traffic = load.run(loadOptions(app, settings, Math.max(5, settings.phaseMaxS)))
      await sleep(1000) // let the arrival rate settle first
      const loaded = await scrapeSeries(app.baseUrl, settings, traffic)
      const trafficResult = await traffic
      const clusterOnMiB = spread(rssOn)
      const clusterOffMiB = spread(off.rssOff)
      const result: RegistryResult = {
        registry,
        seriesPerWorker: plain.text.split('\n').filter((l) => l.includes('worker_id="0"')).length,
        ownGetMs,
        floorMs,
        idle: summarise(idleScrapes),
        underLoad: { ...summarise(loaded), loadRps: round(trafficResult.rps, 1) },
        plainBytes: plain.wireBytes,
        rss: {
          clusterOnMiB,
          clusterOffMiB,
          addedMiBPerWorker: round(clusterOnMiB.median - clusterOffMiB.median, 1),
        },
      }
      const idle = result.idle
      log(
        `${registry.name}: ${result.seriesPerWorker} series per worker; floor ${floorMs} ms; ` +
          `gather p50 ${idle.gatherMs?.p50} p99 ${idle.gatherMs?.p99} ms idle, p99 ${result.underLoad.gatherMs?.p99} ms under ${result.underLoad.loadRps} req/s; ` +
          `GET p50 ${idle.getMs.p50} p99 ${idle.getMs.p99} ms; ${idle.wireBytes.median} B gzip, ${result.plainBytes} B plain; ` +
          `RSS +${result.rss.addedMiBPerWorker} MiB per worker`,
      )
      return result
    },
    realGathers,
  )
}

/** `count` scrapers in parallel for `durationS`, each scraping back to back. */
export async function scrapers(
  baseUrl: string,
  count: number,
  durationS: number,
  anonymous: boolean,
) {
  const until = performance.now() + durationS * 1000
  const scrapes: Scrape[] = []
  let failed = 0
  await Promise.all(
    Array.from({ length: count }, async () => {
      // Prometheus replicas keep a connection each; anonymous clients open one per scrape.
      const agent = anonymous ? undefined : new Agent({ keepAlive: true, maxSockets: 1 })
      try {
        while (performance.now() < until) {
          try {
            // Without its body: a long burst would otherwise keep gigabytes of answers.
            const { text: _body, ...kept } = await scrape(
              baseUrl,
              anonymous ? {} : PROMETHEUS_HEADERS,
              agent,
            )
            scrapes.push(kept)
          } catch {
            failed++
          }
        }
      } finally {
        agent?.destroy()
      }
    }),
  )
  return { scrapes, failed }
}

/** Every worker's highest RSS, read every 250 ms until `until` settles. */
export async function peakRss(
  rss: () => Promise<number[]>,
  until: Promise<unknown>,
): Promise<number[]> {
  let done = false
  until.finally(() => {
    done = true
  })
  let peak = await rss()
  while (!done) {
    await sleep(250)
    const now = await rss()
    peak = peak.map((mib, i) => Math.max(mib, now[i] ?? Number.NaN))
  }
  return peak
}

export async function benchStorm(
  scraperCount: number,
  anonymous: boolean,
  registry: RegistryShape,
  settings: ClusterSettings,
  load: LoadGenerator,
  log: (line: string) => void,
  clusterView = true,
): Promise<StormResult> {
  const { durationS, serviceRate, settleS } = settings.storm
  return withApp(settings, registry, clusterView, async (app, rss) => {
    await load.run(loadOptions(app, settings, settings.warmupS))
    const serviceLoad = (): Promise<LoadResult> =>
      load.run(loadOptions(app, settings, durationS, serviceRate))
    let cpu = await workersCpuSeconds(app)
    let wall = performance.now()
    const cores = async () => {
      const [cpuNow, wallNow] = [await workersCpuSeconds(app), performance.now()]
      const used = round((cpuNow - cpu) / ((wallNow - wall) / 1000), 2)
      ;[cpu, wall] = [cpuNow, wallNow]
      return used
    }
    const quiet = await serviceLoad()
    const quietCores = await cores()
    const heapBefore = clusterView ? await workerHeapsMiB(app.baseUrl) : null
    const before = await rss()
    const restartsBefore = sumRestarts(await app.current())
    await cores()
    const during = serviceLoad()
    const burst = scrapers(app.baseUrl, scraperCount, durationS, anonymous)
    const peak = await peakRss(rss, burst)
    const storm = await burst
    const serviceDuring = await during
    const duringCores = await cores()
    const after = await rss()
    await sleep(settleS * 1000)
    const settled = await rss()
    const restarts = sumRestarts(await app.current()) - restartsBefore
    const heapMiB = heapBefore
      ? { before: heapBefore, settled: await workerHeapsMiB(app.baseUrl) }
      : null
    const result: StormResult = {
      scrapers: scraperCount,
      anonymous,
      clusterView,
      scrapesPerSecond: round(storm.scrapes.length / durationS, 1),
      scrapes: storm.scrapes.length + storm.failed,
      complete: storm.scrapes.filter((s) => s.complete).length,
      failed: storm.failed,
      getMs: latency(storm.scrapes.map((s) => s.ms)),
      serviceMs: {
        quiet: pick(quiet.latencyMs),
        during: pick(serviceDuring.latencyMs),
      },
      rssMiB: { before, peak, after, settled },
      restarts,
      heapMiB,
      workerCores: { quiet: quietCores, during: duringCores },
    }
    log(
      `storm of ${scraperCount} ${anonymous ? 'anonymous' : 'Prometheus-like'} scrapers, cluster view ${clusterView ? 'on' : 'off'}: ${result.scrapesPerSecond} scrapes/s, ` +
        `${result.complete} of ${result.scrapes} complete; service p99 ${result.serviceMs.quiet.p99} -> ${result.serviceMs.during.p99} ms; ` +
        `RSS ${spread(before).median} -> peak ${spread(peak).median} -> ${spread(after).median} -> ${spread(settled).median} MiB`,
    )
    return result
  })
}

function sumRestarts(workers: Map<string, { restarts: number }>): number {
  return [...workers.values()].reduce((sum, w) => sum + w.restarts, 0)
}

function pick(l: LoadResult['latencyMs']): Latency {
  return { p50: round(l.p50), p99: round(l.p99), max: round(l.max) }
}

export async function runClusterBench(
  settings: ClusterSettings,
  load: LoadGenerator,
  log: (line: string) => void,
): Promise<ClusterResults> {
  const registries: RegistryResult[] = []
  for (const registry of settings.registries) {
    registries.push(await benchRegistry(registry, settings, load, log))
  }
  const storms: StormResult[] = []
  const realistic =
    settings.registries.find((r) => r.name === 'realistic') ?? settings.registries[0]
  const [prometheusLike, anonymous] = settings.storm.scrapers
  storms.push(await benchStorm(prometheusLike, false, realistic, settings, load, log))
  storms.push(await benchStorm(anonymous, true, realistic, settings, load, log))
  return { settings, registries, storms }
}
