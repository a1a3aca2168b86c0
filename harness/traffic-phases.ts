// PM2 operations under the traffic a service really gets, read back from what a real Prometheus
// stored: keep-alive clients sending 200s, 404s (matched and unmatched), 400s and slow requests
// while an operation runs, and the requests counted between a scrape before it and two scrapes
// after it, compared with the requests the clients were answered.
import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { type KeepAliveLoad, type LoadTally, startKeepAliveLoad } from './load'
import { sleep } from './net'
import type { Pm2App } from './pm2'
import { type PrometheusServer, scrapesPass } from './prometheus'

/** One request in six is slow, up to 2.5 s: some are in flight whenever a stop begins. */
export const MIXED_TRAFFIC = [
  '/items/1',
  '/items/99', // 404 from the handler
  '/no-such-route', // 404 from the router
  '/items/abc', // 400 from the schema
  '/',
  '/slow?ms=2500',
  '/items/2',
  '/slow?ms=600',
  '/items/abc',
  '/no-such-route',
  '/',
  '/slow?ms=1200',
] as const

export interface Phase {
  name: string
  answered: number
  counted: number
  /** Labels (as JSON) of each stored decrease of a request series, once per decrease. */
  drops: string[]
  tally: LoadTally
  /** Times of the scrape before the operation and of the second scrape after the traffic. */
  from: number
  to: number
}

export interface TrafficPhasesOptions {
  app: Pm2App
  prometheus: PrometheusServer
  /** The job that scrapes `app` in `prometheus`'s configuration. */
  job: string
  intervalSeconds: number
}

export interface TrafficPhases {
  /** Waits until Prometheus has scraped the app `count` more times; returns the newest scrape's time. */
  scrapesPass(count: number): Promise<number>
  /** Runs `operation` under the traffic mix; returns what the clients saw. */
  underTraffic(operation: (load: KeepAliveLoad) => Promise<void>): Promise<LoadTally>
  /**
   * Runs one operation under traffic and reads back what Prometheus stored for it;
   * `thenWithoutTraffic` runs after the traffic stops, followed by a second round of traffic.
   */
  phase(
    name: string,
    operation: (load: KeepAliveLoad) => Promise<void>,
    thenWithoutTraffic?: () => Promise<void>,
  ): Promise<Phase>
}

export function trafficPhases({
  app,
  prometheus,
  job,
  intervalSeconds,
}: TrafficPhasesOptions): TrafficPhases {
  const waitScrapes = (count: number) => scrapesPass(prometheus, job, intervalSeconds, count)

  const underTraffic = async (operation: (load: KeepAliveLoad) => Promise<void>) => {
    const load = startKeepAliveLoad({
      url: app.baseUrl,
      paths: MIXED_TRAFFIC,
      rate: 60,
      durationSeconds: 120, // bound only: stopped once the operation is done
      connections: 12,
    })
    try {
      await sleep(2000)
      await operation(load)
      await sleep(2000)
    } finally {
      load.stop()
    }
    return load.done
  }

  const phase = async (
    name: string,
    operation: (load: KeepAliveLoad) => Promise<void>,
    thenWithoutTraffic?: () => Promise<void>,
  ): Promise<Phase> => {
    const from = await waitScrapes(1)
    let tally = await underTraffic(operation)
    if (thenWithoutTraffic !== undefined) {
      await thenWithoutTraffic()
      tally = addTallies(tally, await underTraffic(async () => {}))
    }
    // Two scrapes after the traffic: every process of every worker has been read since.
    const to = await waitScrapes(2)
    const { deltas, drops } = await countedBetween(prometheus, from, to)
    const answered = [...tally.statuses.values()].reduce((a, b) => a + b, 0)
    return { name, answered, counted: deltas, drops, tally, from, to }
  }

  return { scrapesPass: waitScrapes, underTraffic, phase }
}

/**
 * Requests counted in Prometheus between two scrapes: the sum of every request series' raw
 * deltas, as increase() adds them (a drop counts the whole new value), from each series' value
 * at the first scrape (0 for a series that appears later).
 */
export async function countedBetween(
  prometheus: PrometheusServer,
  from: number,
  to: number,
): Promise<{ deltas: number; drops: string[] }> {
  const ms = Math.round((to - from + 0.5) * 1000)
  const series = await prometheus.query(`http_requests_total{route!="/health"}[${ms}ms]`, to)
  let deltas = 0
  const drops: string[] = []
  for (const s of series) {
    const samples = (s.values ?? []).map(([at, raw]) => [Number(at), Number(raw)] as const)
    const { delta, resets } = increaseSince(samples, from)
    deltas += delta
    // One entry per reset: a series that reset twice is listed twice.
    for (let i = 0; i < resets; i++) drops.push(JSON.stringify(s.metric))
  }
  return { deltas, drops }
}

/**
 * One counter series' raw increase over `[time, value]` samples, as increase() adds it (a drop
 * counts the whole new value), from its value at `from` (0 for a series that appears later),
 * and how many times its value went down.
 */
export function increaseSince(
  samples: ReadonlyArray<readonly [number, number]>,
  from: number,
): { delta: number; resets: number } {
  let delta = 0
  let resets = 0
  let previous = 0
  for (const [i, [at, v]] of samples.entries()) {
    if (i === 0 && at <= from + 0.1) {
      previous = v
      continue
    }
    if (v < previous) resets++
    delta += v >= previous ? v - previous : v
    previous = v
  }
  return { delta, resets }
}

export function addTallies(a: LoadTally, b: LoadTally): LoadTally {
  const statuses = new Map(a.statuses)
  for (const [status, n] of b.statuses) statuses.set(status, (statuses.get(status) ?? 0) + n)
  const errorCodes = new Map(a.errorCodes)
  for (const [code, n] of b.errorCodes) errorCodes.set(code, (errorCodes.get(code) ?? 0) + n)
  return {
    sent: a.sent + b.sent,
    statuses,
    ok: a.ok + b.ok,
    non2xx: a.non2xx + b.non2xx,
    errors: a.errors + b.errors,
    timeouts: a.timeouts + b.timeouts,
    errorCodes,
    unanswered: a.unanswered + b.unanswered,
  }
}

/** Worker exits PM2 logged with a code other than 0 since the app started. */
export function abnormalExits(app: Pm2App): string[] {
  const log = readFileSync(join(app.home, 'pm2.log'), 'utf8')
  return log.split('\n').filter((line) => /exited with code \[(?!0\])\d+\]/.test(line))
}

/** The workers' own error lines, to explain an abnormal exit. */
export function workerErrors(app: Pm2App): string {
  const logs = join(app.home, 'logs')
  return readdirSync(logs)
    .filter((name) => name.endsWith('.log'))
    .map((name) => readFileSync(join(logs, name), 'utf8'))
    .join('\n')
    .slice(-4000)
}
