// The real built service under the project's own PM2, for the bench: the test harness
// (isolated PM2_HOME, free loopback port, own socket directory, everything stopped by PID),
// started from bench/cluster/ecosystem.config.js so the bench can pre-populate series.
import { join } from 'node:path'
import { ROOT, startPm2App } from '../../harness/pm2'

const ECOSYSTEM = join(ROOT, 'bench', 'cluster', 'ecosystem.config.js')

export interface BenchPm2App {
  baseUrl: string
  /** PIDs of the online workers, by worker id, at start. */
  workers: Map<string, number>
  /** The workers now, from PM2: pid and restarts, by worker id. */
  current(): Promise<Map<string, { pid: number; restarts: number }>>
  stop(): Promise<void>
}

export interface BenchPm2Options {
  instances: number
  env: Record<string, string>
  /**
   * How the PM2_HOME's name begins: `pm2-bench-`, by which the quick-bench test finds what a
   * bench run left, unless another test runs the app beside it.
   */
  homePrefix?: string
}

export async function startBenchPm2App(options: BenchPm2Options): Promise<BenchPm2App> {
  const app = await startPm2App({
    instances: options.instances,
    env: options.env,
    ecosystem: ECOSYSTEM,
    onlineTimeoutMs: 90_000,
    homePrefix: options.homePrefix ?? 'pm2-bench-',
  })
  const workers = new Map((await app.waitOnline(options.instances)).map((p) => [p.workerId, p.pid]))
  const current = async () =>
    new Map((await app.list()).map((p) => [p.workerId, { pid: p.pid, restarts: p.restarts }]))
  return { baseUrl: app.baseUrl, workers, current, stop: () => app.stop() }
}
