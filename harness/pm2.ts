// Runs the real built service under the project's own PM2, with an isolated PM2_HOME, a free
// loopback port and its own metrics socket directory; stops every process it started by PID,
// and only while that PID still names the process it saw (its start time unchanged).
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
  /** Another app's own PM2 and folder (the project's by default). */
  pm2Bin?: string
  cwd?: string
  /** How the temporary PM2_HOME's name begins, so that its processes can be told apart. */
  homePrefix?: string
}

export async function startPm2App(options: StartOptions = {}): Promise<Pm2App> {
  const instances = options.instances ?? 5
  const home = mkdtempSync(join(tmpdir(), options.homePrefix ?? 'pm2-test-'))
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
    const { stdout } = await run(options.pm2Bin ?? PM2_BIN, args, {
      cwd: options.cwd ?? ROOT,
      env,
      maxBuffer: 64 * 1024 * 1024,
    })
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
  // Every process seen, with its start time when first seen: a pid that the OS has since given
  // to another process is never signalled. A pid PM2 lists is its worker at that moment (a new
  // start time is a new process); the daemon's pid file may outlive the daemon, so the first
  // process seen under that pid is the daemon.
  const seen = new Map<string, ProcessIdentity>()
  const see = (pid: number) => {
    const identity = pid > 0 ? identify(pid) : undefined
    if (identity !== undefined) seen.set(`${identity.pid}:${identity.startTime}`, identity)
  }
  const seeDaemon = () => {
    const pid = readPid(join(home, 'pm2.pid'))
    if (pid !== undefined && ![...seen.values()].some((p) => p.pid === pid)) see(pid)
  }
  const waitOnline = (count: number, timeoutMs = 60_000) =>
    waitFor(
      `${count} online workers`,
      async () => {
        seeDaemon()
        const procs = await list()
        for (const p of procs) see(p.pid)
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
      seeDaemon()
      try {
        for (const p of await list()) see(p.pid)
      } catch {
        // the daemon may already be gone
      }
      try {
        await pm2('kill')
      } catch {
        // fall through to killing by PID
      }
      await killAll([...seen.values()])
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
  const fields = statFields(pid)
  return fields !== undefined && fields[0] !== 'Z'
}

/** A process as first seen: its pid, and its start time, which a recycled pid does not share. */
export interface ProcessIdentity {
  pid: number
  /** Field 22 of /proc/<pid>/stat: clock ticks from boot to the process' start. */
  startTime: string
}

/** `pid`'s identity now, or undefined if no process has that pid. */
export function identify(pid: number): ProcessIdentity | undefined {
  const startTime = statFields(pid)?.[STARTTIME_INDEX]
  return startTime === undefined ? undefined : { pid, startTime }
}

/** Whether `identity`'s pid still names the process recorded, alive and not a zombie. */
export function isSameProcess(identity: ProcessIdentity): boolean {
  return isAlive(identity.pid) && identify(identity.pid)?.startTime === identity.startTime
}

// Field 3 (state) is the first after the comm field; field 22 is the start time.
const STARTTIME_INDEX = 22 - 3

/**
 * The fields of /proc/<pid>/stat from field 3 (state) on. The comm field (2) is in parentheses
 * and may itself hold spaces and parentheses: the fields start after the last `)`.
 */
export function parseStat(stat: string): string[] {
  return stat
    .slice(stat.lastIndexOf(')') + 2)
    .trim()
    .split(' ')
}

function statFields(pid: number): string[] | undefined {
  try {
    return parseStat(readFileSync(`/proc/${pid}/stat`, 'utf8'))
  } catch {
    return undefined
  }
}

/** Signals `identity`'s pid only if it still names that process. */
function signal(identity: ProcessIdentity, name: NodeJS.Signals): void {
  if (!isSameProcess(identity)) return
  try {
    process.kill(identity.pid, name)
  } catch {
    // it exited since the check
  }
}

/**
 * SIGTERM, then SIGKILL what is left after 5 s; returns once all are gone. A bare pid is
 * identified when the call starts; an identity whose pid now names another process (the OS
 * recycled it) is left alone.
 */
export async function killAll(targets: Array<number | ProcessIdentity>): Promise<void> {
  const procs = targets.flatMap((t) => {
    const identity = typeof t === 'number' ? identify(t) : t
    return identity === undefined ? [] : [identity]
  })
  const running = () => procs.some(isSameProcess)
  for (const p of procs) signal(p, 'SIGTERM')
  const deadline = Date.now() + 5000
  while (running() && Date.now() < deadline) await sleep(100)
  for (const p of procs) signal(p, 'SIGKILL')
  while (running()) await sleep(50)
}
