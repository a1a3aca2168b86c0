// What a scrape costs a worker, and the service beside it: the RSS the cluster view keeps at
// one scrape a second, bursts of Prometheus-like scrapers (memory during and after, the
// service's p99 beside them), repeated bursts with no other traffic, the whole GET against the
// floor of the workers' own renders, and the gather idle. Each part about the cluster view runs
// with it on and then off, same registry and traffic, so the two sit side by side.
import { sleep } from '../../harness/net'
import {
  benchRegistry,
  benchStorm,
  type ClusterSettings,
  type RegistryResult,
  type RegistryShape,
  type StormResult,
  scrapers,
  type WorkerHeaps,
  withApp,
  workerHeapsMiB,
} from './cluster'
import type { LoadGenerator } from './single-process'
import { round, spread } from './stats'

export const SCRAPE_COST_PARTS = [
  'registries',
  'storm-20',
  'storm-50',
  'service',
  'bursts',
] as const
export type ScrapeCostPart = (typeof SCRAPE_COST_PARTS)[number]

interface StormShape {
  scrapers: number
  durationS: number
  /** Service requests per second beside the scrapers. */
  serviceRate: number
  /** Quiet after the burst before RSS is read again. */
  settleS: number
}

export interface ScrapeCostSettings {
  /** The burst of 20 Prometheus-like scrapers, realistic registry. */
  storm20: StormShape
  /** The same with 50 scrapers for longer. */
  storm50: StormShape
  /** 20 scrapers against the service's own registry. */
  service: StormShape
  /** Repeated bursts with no other traffic. */
  bursts: { count: number; scrapers: number; durationS: number; gapS: number }
}

/** One burst with the cluster view on and the same burst with it off. */
export interface StormPair {
  label: string
  registry: string
  on: StormResult
  off: StormResult
}

export interface BurstsResult {
  clusterView: boolean
  /** Mean worker RSS before the first burst. */
  beforeMiB: number
  /** Mean worker RSS right after each burst, and at the end of the gap after it. */
  afterBurstMiB: number[]
  afterGapMiB: number[]
  scrapesPerBurst: number[]
  restarts: number
  /** V8's heap before the first burst and at the end; null without the cluster view. */
  heapMiB: { before: WorkerHeaps; end: WorkerHeaps } | null
}

export interface ScrapeCostResults {
  settings: ScrapeCostSettings
  /** Each registry with the cluster view on and off (RSS, floor, gather); empty if not run. */
  registries: RegistryResult[]
  storms: StormPair[]
  bursts: { on: BurstsResult; off: BurstsResult } | null
}

const mean = (values: number[]) =>
  round(values.reduce((sum, v) => sum + v, 0) / Math.max(1, values.length), 1)

function withStorm(cluster: ClusterSettings, shape: StormShape): ClusterSettings {
  return {
    ...cluster,
    storm: {
      scrapers: [shape.scrapers],
      durationS: shape.durationS,
      serviceRate: shape.serviceRate,
      settleS: shape.settleS,
    },
  }
}

async function stormPair(
  label: string,
  shape: StormShape,
  registry: RegistryShape,
  cluster: ClusterSettings,
  load: LoadGenerator,
  log: (line: string) => void,
): Promise<StormPair> {
  const settings = withStorm(cluster, shape)
  const on = await benchStorm(shape.scrapers, false, registry, settings, load, log, true)
  const off = await benchStorm(shape.scrapers, false, registry, settings, load, log, false)
  return { label, registry: registry.name, on, off }
}

async function benchBursts(
  shape: ScrapeCostSettings['bursts'],
  registry: RegistryShape,
  cluster: ClusterSettings,
  clusterView: boolean,
  log: (line: string) => void,
): Promise<BurstsResult> {
  return withApp(cluster, registry, clusterView, async (app, rss) => {
    // A few scrapes first: what any scraped worker holds is part of "before".
    await scrapers(app.baseUrl, 1, 2, false)
    await sleep(5000)
    const restartsBefore = sumRestarts(await app.current())
    const heapBefore = clusterView ? await workerHeapsMiB(app.baseUrl) : null
    const beforeMiB = mean(await rss())
    const afterBurstMiB: number[] = []
    const afterGapMiB: number[] = []
    const scrapesPerBurst: number[] = []
    for (let i = 0; i < shape.count; i++) {
      const burst = await scrapers(app.baseUrl, shape.scrapers, shape.durationS, false)
      scrapesPerBurst.push(burst.scrapes.length)
      afterBurstMiB.push(mean(await rss()))
      await sleep(shape.gapS * 1000)
      afterGapMiB.push(mean(await rss()))
    }
    const restarts = sumRestarts(await app.current()) - restartsBefore
    const heapMiB = heapBefore
      ? { before: heapBefore, end: await workerHeapsMiB(app.baseUrl) }
      : null
    log(
      `${shape.count} bursts of ${shape.scrapers} scrapers, cluster view ${clusterView ? 'on' : 'off'}: ` +
        `mean RSS ${beforeMiB} -> ${afterBurstMiB.join(' -> ')} MiB (${scrapesPerBurst.join(', ')} scrapes)`,
    )
    return {
      clusterView,
      beforeMiB,
      afterBurstMiB,
      afterGapMiB,
      scrapesPerBurst,
      restarts,
      heapMiB,
    }
  })
}

function sumRestarts(workers: Map<string, { restarts: number }>): number {
  return [...workers.values()].reduce((sum, w) => sum + w.restarts, 0)
}

/**
 * The parts asked for, in order. `registries` are reused when the caller already measured
 * them (a full run's cluster part measures the same registries the same way).
 */
export async function runScrapeCostBench(
  cluster: ClusterSettings,
  settings: ScrapeCostSettings,
  parts: readonly ScrapeCostPart[],
  load: LoadGenerator,
  log: (line: string) => void,
  measured: RegistryResult[] = [],
): Promise<ScrapeCostResults> {
  const byName = (name: string) =>
    cluster.registries.find((r) => r.name === name) ?? cluster.registries[0]
  const registries = [...measured]
  if (parts.includes('registries') && registries.length === 0) {
    for (const registry of cluster.registries) {
      registries.push(await benchRegistry(registry, cluster, load, log))
    }
  }
  const storms: StormPair[] = []
  const realistic = byName('realistic')
  if (parts.includes('storm-20')) {
    storms.push(await stormPair('storm-20', settings.storm20, realistic, cluster, load, log))
  }
  if (parts.includes('storm-50')) {
    storms.push(await stormPair('storm-50', settings.storm50, realistic, cluster, load, log))
  }
  if (parts.includes('service')) {
    storms.push(await stormPair('service', settings.service, byName('service'), cluster, load, log))
  }
  let bursts: ScrapeCostResults['bursts'] = null
  if (parts.includes('bursts')) {
    const on = await benchBursts(settings.bursts, realistic, cluster, true, log)
    const off = await benchBursts(settings.bursts, realistic, cluster, false, log)
    bursts = { on, off }
  }
  return { settings, registries, storms, bursts }
}

/** Per worker, `later` minus `before`: the worst worker and the median one. */
export function growth(before: number[], later: number[]): { worst: number; median: number } {
  const deltas = before.map((b, i) => (later[i] ?? Number.NaN) - b)
  return { worst: round(Math.max(...deltas), 1), median: round(spread(deltas).median, 1) }
}
