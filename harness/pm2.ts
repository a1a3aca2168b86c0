// Runs the real built service under the project's own PM2, with an isolated PM2_HOME, a free
// loopback port and its own metrics socket directory; stops every process it started by PID.
import { execFile } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { promisify } from 'node:util'
import { freePort, httpGet, sleep, waitFor } from './net'

const run = promisify(execFile)
export const ROOT = resolve(__dirname, '..')
const PM2_BIN = join(ROOT, 'node_modules', '.bin', 'pm2')

export interface Pm2Process {
  pmId: number
  pid: number
  status: string
  workerId: string
  restarts: number
}

export interface Pm2App {
  name: string
  port: number
  baseUrl: string
  home: string
  socketDir: string
  env: Record<string, string>
  pm2(...args: string[]): Promise<string>
  list(): Promise<Pm2Process[]>
  /** Waits until `count` workers are online and each has a live pid. */
  waitOnline(count: number, timeoutMs?: number): Promise<Pm2Process[]>
  stop(): Promise<void>
}

export interface StartOptions {
  instances?: number
  name?: string
  env?: Record<string, string>
  /** Process file to start (the project's own by default). */
  ecosystem?: string
  /** Longest wait for the workers to come online. */
  onlineTimeoutMs?: number
}

export async function startPm2App(options: StartOptions = {}): Promise<Pm2App> {
  const instances = options.instances ?? 5
  const home = mkdtempSync(join(tmpdir(), 'pm2-test-'))
  const port = await freePort()
  const name = options.name ?? `webapp-test-${port}`
  const socketDir = join(home, 'sock')
  const env: Record<string, string> = {
    ...(process.env as Record<string, string>),
    PM2_HOME: home,
    PORT: String(port),
    HOST: '127.0.0.1',
    INSTANCES: String(instances),
    APP_NAME: name,
    METRICS_SOCKET_DIR: socketDir,
    LOG_LEVEL: 'warn',
    ...options.env,
  }
  // An empty value in options.env removes the variable (e.g. to use the default socket dir).
  for (const [key, value] of Object.entries(options.env ?? {})) if (value === '') delete env[key]
  // The test runner's own variables must not leak into the workers.
  delete env.NODE_TEST_CONTEXT
  delete env.NODE_OPTIONS

  const pm2 = async (...args: string[]) => {
    const { stdout } = await run(PM2_BIN, args, { cwd: ROOT, env, maxBuffer: 64 * 1024 * 1024 })
    return stdout
  }
  const list = async (): Promise<Pm2Process[]> => {
    const out = await pm2('jlist')
    const start = out.indexOf('[')
    const parsed = JSON.parse(out.slice(start)) as Array<{
      pm_id: number
      pid: number
      pm2_env: { status: string; NODE_APP_INSTANCE?: number | string; restart_time: number }
    }>
    return parsed.map((p) => ({
      pmId: p.pm_id,
      pid: p.pid,
      status: p.pm2_env.status,
      workerId: String(p.pm2_env.NODE_APP_INSTANCE),
      restarts: p.pm2_env.restart_time,
    }))
  }
  const seenPids = new Set<number>()
  const waitOnline = (count: number, timeoutMs = 60_000) =>
    waitFor(
      `${count} online workers`,
      async () => {
        const procs = await list()
        for (const p of procs) if (p.pid > 0) seenPids.add(p.pid)
        const online = procs.filter((p) => p.status === 'online' && p.pid > 0)
        return online.length === count ? online : undefined
      },
      { timeoutMs, intervalMs: 300 },
    )

  const app: Pm2App = {
    name,
    port,
    baseUrl: `http://127.0.0.1:${port}`,
    home,
    socketDir,
    env,
    pm2,
    list,
    waitOnline,
    stop: async () => {
      try {
        for (const p of await list()) if (p.pid > 0) seenPids.add(p.pid)
      } catch {
        // the daemon may already be gone
      }
      const daemonPid = readPid(join(home, 'pm2.pid'))
      try {
        await pm2('kill')
      } catch {
        // fall through to killing by PID
      }
      const pids = [...seenPids, ...(daemonPid ? [daemonPid] : [])]
      await killAll(pids)
      rmSync(home, { recursive: true, force: true })
    },
  }

  try {
    await pm2('start', options.ecosystem ?? join(ROOT, 'ecosystem.config.js'))
    await waitOnline(instances, options.onlineTimeoutMs)
    await waitFor(
      'the service to answer /health',
      async () => (await httpGet(`${app.baseUrl}/health`)).status === 200,
    )
  } catch (err) {
    await app.stop()
    throw err
  }
  return app
}

function readPid(path: string): number | undefined {
  try {
    const pid = Number(readFileSync(path, 'utf8').trim())
    return pid > 0 ? pid : undefined
  } catch {
    return undefined
  }
}

/** Alive and not a zombie waiting to be reaped. */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
  } catch {
    return false
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z'
  } catch {
    return false
  }
}

/** SIGTERM, then SIGKILL what is left after 5 s; returns once all are gone. */
export async function killAll(pids: number[]): Promise<void> {
  for (const pid of pids) if (isAlive(pid)) process.kill(pid, 'SIGTERM')
  const deadline = Date.now() + 5000
  while (pids.some(isAlive) && Date.now() < deadline) await sleep(100)
  for (const pid of pids) if (isAlive(pid)) process.kill(pid, 'SIGKILL')
  while (pids.some(isAlive)) await sleep(50)
}
