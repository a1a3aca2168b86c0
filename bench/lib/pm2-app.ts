// The real built service under the project's own PM2, for the bench: like test/helpers/pm2.ts
// (isolated PM2_HOME, free loopback port, own socket directory, everything stopped by PID),
// but started from bench/cluster/ecosystem.config.js so the bench can pre-populate series.
import { execFile } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { freePort, httpGet, waitFor } from '../../test/helpers/net'
import { killAll, ROOT } from '../../test/helpers/pm2'

const run = promisify(execFile)
const PM2_BIN = join(ROOT, 'node_modules', '.bin', 'pm2')
const ECOSYSTEM = join(ROOT, 'bench', 'cluster', 'ecosystem.config.js')

export interface BenchPm2App {
  baseUrl: string
  /** PIDs of the online workers, by worker id. */
  workers: Map<string, number>
  stop(): Promise<void>
}

export interface BenchPm2Options {
  instances: number
  env: Record<string, string>
}

export async function startBenchPm2App(options: BenchPm2Options): Promise<BenchPm2App> {
  const home = mkdtempSync(join(tmpdir(), 'pm2-bench-'))
  const port = await freePort()
  const env: Record<string, string> = {
    ...(process.env as Record<string, string>),
    PM2_HOME: home,
    PORT: String(port),
    HOST: '127.0.0.1',
    INSTANCES: String(options.instances),
    APP_NAME: `webapp-bench-${port}`,
    METRICS_SOCKET_DIR: join(home, 'sock'),
    LOG_LEVEL: 'warn',
    ...options.env,
  }
  delete env.NODE_OPTIONS
  delete env.NODE_TEST_CONTEXT

  const pm2 = async (...args: string[]) =>
    (await run(PM2_BIN, args, { cwd: ROOT, env, maxBuffer: 64 * 1024 * 1024 })).stdout
  const seenPids = new Set<number>()
  const online = async () => {
    const out = await pm2('jlist')
    const procs = JSON.parse(out.slice(out.indexOf('['))) as Array<{
      pid: number
      pm2_env: { status: string; NODE_APP_INSTANCE?: number | string }
    }>
    for (const p of procs) if (p.pid > 0) seenPids.add(p.pid)
    return procs.filter((p) => p.pm2_env.status === 'online' && p.pid > 0)
  }
  const baseUrl = `http://127.0.0.1:${port}`
  const workers = new Map<string, number>()

  const stop = async () => {
    try {
      await online()
    } catch {
      // the daemon may already be gone
    }
    let daemonPid: number | undefined
    try {
      daemonPid = Number(readFileSync(join(home, 'pm2.pid'), 'utf8').trim()) || undefined
    } catch {
      daemonPid = undefined
    }
    try {
      await pm2('kill')
    } catch {
      // fall through to killing by PID
    }
    await killAll([...seenPids, ...(daemonPid ? [daemonPid] : [])])
    rmSync(home, { recursive: true, force: true })
  }

  try {
    await pm2('start', ECOSYSTEM)
    const procs = await waitFor(
      `${options.instances} online workers`,
      async () => {
        const list = await online()
        return list.length === options.instances ? list : undefined
      },
      { timeoutMs: 90_000, intervalMs: 300 },
    )
    for (const p of procs) workers.set(String(p.pm2_env.NODE_APP_INSTANCE), p.pid)
    await waitFor(
      'the service to answer /health',
      async () => (await httpGet(`${baseUrl}/health`)).status === 200,
      { timeoutMs: 60_000 },
    )
  } catch (err) {
    await stop()
    throw err
  }
  return { baseUrl, workers, stop }
}
