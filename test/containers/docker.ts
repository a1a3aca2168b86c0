// The container tier's access to a real Docker engine: the docker CLI and Compose v2 (unpacked
// into .tools/compose-2 by scripts/ensure-container-tools.sh), one compose project and one label
// per run so that everything a run starts is found and removed, container inspection, the
// memory cgroup of a container, and the host's listening sockets.
import { spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { existsSync, readdirSync, readFileSync, readlinkSync } from 'node:fs'
import { join } from 'node:path'
import { after, before, type TestContext, test } from 'node:test'
import { ROOT } from '../../harness/pm2'

export { ROOT }
export const DOCKER = process.env.DOCKER ?? 'docker'
export const COMPOSE =
  process.env.COMPOSE_BIN ??
  join(ROOT, '.tools', 'compose-2', 'usr', 'libexec', 'docker', 'cli-plugins', 'docker-compose')
/** Every container this tier starts outside compose carries this label, valued with the run id. */
export const RUN_LABEL = 'fastify-pm2-cluster-metrics.container-tier'
/** The image compose builds for `webapp` (docker-compose.yml's `image:`). */
export const WEBAPP_IMAGE = 'fastify-pm2-cluster-metrics:local'

export interface Run {
  code: number
  stdout: string
  stderr: string
  ms: number
}

/** Runs a command to completion or until `timeoutMs` (then SIGKILL and code -1); never a shell. */
export function run(
  command: string,
  args: string[],
  { timeoutMs = 120_000, env = process.env }: { timeoutMs?: number; env?: NodeJS.ProcessEnv } = {},
): Promise<Run> {
  const started = Date.now()
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      stdout += chunk
    })
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
      stderr += chunk
    })
    const timer = setTimeout(() => {
      stderr += `\n[killed after ${timeoutMs} ms]`
      child.kill('SIGKILL')
    }, timeoutMs)
    child.on('error', (err) => {
      clearTimeout(timer)
      reject(err)
    })
    child.on('close', (code) => {
      clearTimeout(timer)
      resolve({ code: code ?? -1, stdout, stderr, ms: Date.now() - started })
    })
  })
}

export const docker = (args: string[], options?: { timeoutMs?: number }) =>
  run(DOCKER, args, options)

/** Fails with the command's output unless it exited 0. */
export async function ok(result: Promise<Run> | Run, what: string): Promise<Run> {
  const done = await result
  if (done.code !== 0) {
    throw new Error(
      `${what} exited ${done.code}\n${done.stdout.slice(-2000)}${done.stderr.slice(-4000)}`,
    )
  }
  return done
}

/** The engine answers, or an error that says so (the tier never passes without one). */
export async function requireEngine(): Promise<string> {
  const version = await docker(['version', '--format', '{{.Server.Version}}'], {
    timeoutMs: 20_000,
  }).catch((err: Error) => ({ code: -1, stdout: '', stderr: err.message, ms: 0 }))
  if (version.code !== 0) {
    throw new Error(
      `no Docker engine answers (${DOCKER} version: ${version.stderr.trim()}); ` +
        'run the tier with `npm run test:containers`, which starts one where it can',
    )
  }
  if (!existsSync(COMPOSE)) {
    throw new Error(`no Compose v2 at ${COMPOSE}: run scripts/ensure-container-tools.sh`)
  }
  return version.stdout.trim()
}

/** A compose project of its own for one test file's run. */
export class ComposeProject {
  /** ctier-<run>-<file>: scripts/container-tier.sh removes what a run of its left by that prefix. */
  readonly name =
    `ctier-${process.env.CONTAINER_TIER_RUN ?? randomBytes(3).toString('hex')}-${randomBytes(3).toString('hex')}`
  readonly network = `${this.name}_default`

  constructor(readonly extraEnv: Record<string, string> = {}) {}

  /** Compose with a clean environment: the file's defaults apply, whatever the caller's shell has. */
  run(args: string[], { timeoutMs = 300_000, env = {} as Record<string, string> } = {}) {
    return run(COMPOSE, ['-f', join(ROOT, 'docker-compose.yml'), '-p', this.name, ...args], {
      timeoutMs,
      env: {
        PATH: process.env.PATH,
        HOME: process.env.HOME,
        ...(process.env.DOCKER_HOST ? { DOCKER_HOST: process.env.DOCKER_HOST } : {}),
        // Compose 2.40 asks buildx for a Bake build; without buildx it uses the engine's BuildKit.
        COMPOSE_BAKE: 'false',
        ...this.extraEnv,
        ...env,
      },
    })
  }

  /** The compose file as compose resolves it (defaults and this project's environment applied). */
  async config(): Promise<ComposeConfig> {
    return JSON.parse((await ok(this.run(['config', '--format', 'json']), 'compose config')).stdout)
  }

  /** The ids of a service's containers, in replica order. */
  async containers(service: string): Promise<string[]> {
    const listed = await ok(
      docker([
        'ps',
        '-a',
        '--filter',
        `label=com.docker.compose.project=${this.name}`,
        '--filter',
        `label=com.docker.compose.service=${service}`,
        '--format',
        '{{.ID}} {{.Label "com.docker.compose.container-number"}}',
      ]),
      'docker ps',
    )
    return listed.stdout
      .trim()
      .split('\n')
      .filter((line) => line !== '')
      .map((line) => line.split(' '))
      .sort((a, b) => Number(a[1]) - Number(b[1]))
      .map(([id]) => id)
  }

  /** Stops and removes the project's containers, networks and volumes, and this run's others. */
  async down(): Promise<void> {
    await this.run(['down', '--volumes', '--remove-orphans', '--timeout', '10'], {
      timeoutMs: 120_000,
    })
    await removeLabelled(this.name)
  }

  /** What is left of the project after `down`: containers, networks, volumes (should be none). */
  async leftovers(): Promise<string[]> {
    const left: string[] = []
    for (const kind of ['container', 'network', 'volume'] as const) {
      const args =
        kind === 'container'
          ? ['ps', '-a', '--format', '{{.Names}}']
          : [kind, 'ls', '--format', '{{.Name}}']
      for (const label of [
        `com.docker.compose.project=${this.name}`,
        `${RUN_LABEL}=${this.name}`,
      ]) {
        const listed = await ok(
          docker([...args, '--filter', `label=${label}`]),
          `docker ${kind} ls`,
        )
        left.push(
          ...listed.stdout
            .trim()
            .split('\n')
            .filter((line) => line !== '')
            .map((name) => `${kind} ${name}`),
        )
      }
    }
    return left
  }
}

/** Removes the containers started with `docker run --label RUN_LABEL=<runId>`. */
export async function removeLabelled(runId: string): Promise<void> {
  const listed = await docker(['ps', '-aq', '--filter', `label=${RUN_LABEL}=${runId}`])
  const ids = listed.stdout.trim().split('\n').filter(Boolean)
  if (ids.length > 0) await docker(['rm', '-f', '--volumes', ...ids])
}

export interface HealthLog {
  Start: string
  End: string
  ExitCode: number
  Output: string
}

export interface Inspect {
  Id: string
  Name: string
  Config: {
    User: string
    Env: string[]
    Healthcheck?: { Test: string[]; Interval: number; StartPeriod: number; Retries: number }
    Labels: Record<string, string>
  }
  State: {
    Status: string
    Running: boolean
    Pid: number
    ExitCode: number
    OOMKilled: boolean
    StartedAt: string
    FinishedAt: string
    Health?: { Status: string; FailingStreak: number; Log: HealthLog[] }
  }
  HostConfig: {
    Memory: number
    NanoCpus: number
    ReadonlyRootfs: boolean
    Init: boolean | null
    PortBindings: Record<string, Array<{ HostIp: string; HostPort: string }> | null>
  }
  NetworkSettings: {
    Ports: Record<string, Array<{ HostIp: string; HostPort: string }> | null>
    Networks: Record<string, { IPAddress: string; Aliases: string[] | null }>
  }
}

export async function inspect(id: string): Promise<Inspect> {
  const result = await ok(docker(['inspect', id]), `docker inspect ${id}`)
  return (JSON.parse(result.stdout) as Inspect[])[0]
}

export const envOf = (info: Pick<Inspect, 'Config'>, name: string) =>
  info.Config.Env.find((entry) => entry.startsWith(`${name}=`))?.slice(name.length + 1)

/** Waits until Docker's own health status is `healthy`; fails at once on `unhealthy` or exit. */
export async function waitHealthy(id: string, timeoutMs: number): Promise<Inspect> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const info = await inspect(id)
    const status = info.State.Health?.Status
    if (status === 'healthy') return info
    if (status === 'unhealthy' || !info.State.Running) {
      const logs = await docker(['logs', '--tail', '30', id])
      throw new Error(
        `${info.Name}: ${info.State.Status}, health ${status}, exit ${info.State.ExitCode}\n` +
          `${JSON.stringify(info.State.Health?.Log ?? [])}\n${logs.stdout}${logs.stderr}`,
      )
    }
    if (Date.now() > deadline) throw new Error(`${info.Name}: health still ${status}`)
    await new Promise((resolve) => setTimeout(resolve, 500))
  }
}

/** `docker top`: the user id and command line of every process in the container. */
export async function processes(id: string): Promise<Array<{ uid: number; args: string }>> {
  // Docker needs the pid column to map host pids to the container's.
  const top = await ok(docker(['top', id, '-eo', 'pid,uid,args']), 'docker top')
  return top.stdout
    .trim()
    .split('\n')
    .slice(1)
    .map((line) => {
      const [, uid, args] = /^\s*\d+\s+(\d+)\s+(.*)$/.exec(line) ?? ['', '-1', line]
      return { uid: Number(uid), args }
    })
}

/**
 * Runs `script` with Node in a throwaway container of the stand-in Node image on `network`
 * (`docker run --rm`, labelled for this run), and returns what it printed as JSON.
 */
export async function nodeOnNetwork<T>(
  runId: string,
  network: string,
  script: string,
  { timeoutMs = 120_000, image = nodeImage() } = {},
): Promise<T> {
  const result = await ok(
    docker(
      [
        'run',
        '--rm',
        '--network',
        network,
        '--label',
        `${RUN_LABEL}=${runId}`,
        '--user',
        'node',
        image,
        'node',
        '-e',
        script,
      ],
      { timeoutMs },
    ),
    'node on the compose network',
  )
  return JSON.parse(result.stdout) as T
}

/** The Dockerfile's NODE_IMAGE, which scripts/build-base-images.sh builds here. */
export function nodeImage(): string {
  const match = /^ARG NODE_IMAGE=(\S+)$/m.exec(readFileSync(join(ROOT, 'Dockerfile'), 'utf8'))
  if (!match) throw new Error('no ARG NODE_IMAGE in the Dockerfile')
  return match[1]
}

export interface MemoryCgroup {
  path: string
  limit: number
  peak: number
  /** Times the usage reached the limit (v1 failcnt, v2 `max` events). */
  hitLimit: number
  oomKills: number
}

/** The memory cgroup of a container's init process, cgroup v1 or v2, as the host sees it. */
export function memoryCgroup(pid: number): MemoryCgroup {
  const lines = readFileSync(`/proc/${pid}/cgroup`, 'utf8').trim().split('\n')
  const v1 = lines.find((line) => /^\d+:([^:]*,)?memory(,[^:]*)?:/.test(line))
  const read = (path: string) => readFileSync(path, 'utf8').trim()
  const keyed = (text: string, key: string) =>
    Number(new RegExp(`^${key} (\\d+)$`, 'm').exec(text)?.[1] ?? Number.NaN)
  if (v1) {
    const path = join('/sys/fs/cgroup/memory', v1.split(':')[2])
    if (existsSync(path)) {
      return {
        path,
        limit: Number(read(join(path, 'memory.limit_in_bytes'))),
        peak: Number(read(join(path, 'memory.max_usage_in_bytes'))),
        hitLimit: Number(read(join(path, 'memory.failcnt'))),
        oomKills: keyed(read(join(path, 'memory.oom_control')), 'oom_kill'),
      }
    }
  }
  const v2 = lines.find((line) => line.startsWith('0::'))
  if (!v2) throw new Error(`no memory cgroup in /proc/${pid}/cgroup`)
  const base = existsSync('/sys/fs/cgroup/unified') ? '/sys/fs/cgroup/unified' : '/sys/fs/cgroup'
  const path = join(base, v2.slice(3))
  const events = read(join(path, 'memory.events'))
  return {
    path,
    limit: Number(read(join(path, 'memory.max'))),
    peak: Number(read(join(path, 'memory.peak'))),
    hitLimit: keyed(events, 'max'),
    oomKills: keyed(events, 'oom_kill'),
  }
}

export interface Listener {
  address: string
  port: number
  inode: number
  /** The command of the host process that holds the socket, when one is found. */
  owner?: string
}

function hexAddress(hex: string): string {
  if (hex.length === 8) {
    return [0, 1, 2, 3].map((i) => Number.parseInt(hex.slice(6 - 2 * i, 8 - 2 * i), 16)).join('.')
  }
  // IPv6: four little-endian 32-bit words.
  const words = [0, 1, 2, 3].map((w) => {
    const word = hex.slice(8 * w, 8 * w + 8)
    return word.match(/../g)?.reverse().join('') ?? ''
  })
  const groups = words.join('').match(/..../g) ?? []
  return groups.map((g) => Number.parseInt(g, 16).toString(16)).join(':')
}

/** TCP sockets listening in the host's network namespace (/proc/net/tcp and tcp6). */
export function hostListeners(): Listener[] {
  const owners = new Map<number, string>()
  for (const pid of readdirSync('/proc').filter((name) => /^\d+$/.test(name))) {
    let fds: string[]
    try {
      fds = readdirSync(`/proc/${pid}/fd`)
    } catch {
      continue
    }
    let comm = ''
    for (const fd of fds) {
      let target: string
      try {
        target = readlinkSync(`/proc/${pid}/fd/${fd}`)
      } catch {
        continue
      }
      const inode = /^socket:\[(\d+)\]$/.exec(target)?.[1]
      if (!inode) continue
      if (comm === '') {
        try {
          comm = readFileSync(`/proc/${pid}/comm`, 'utf8').trim()
        } catch {
          comm = '?'
        }
      }
      owners.set(Number(inode), `${comm}[${pid}]`)
    }
  }
  const listeners: Listener[] = []
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    if (!existsSync(file)) continue
    for (const line of readFileSync(file, 'utf8').trim().split('\n').slice(1)) {
      const fields = line.trim().split(/\s+/)
      if (fields[3] !== '0A') continue // LISTEN
      const [hex, port] = fields[1].split(':')
      const inode = Number(fields[9])
      listeners.push({
        address: hexAddress(hex),
        port: Number.parseInt(port, 16),
        inode,
        owner: owners.get(inode),
      })
    }
  }
  return listeners
}

export const isLoopback = (address: string) =>
  address.startsWith('127.') || address === '0:0:0:0:0:0:0:1' || address === '::1'

/**
 * Set by scripts/container-tier.sh when no engine could be had and the tier may report that
 * instead of failing (CONTAINER_TIER=auto outside CI): each test is then listed as a todo naming
 * the reason, so the runner's summary counts what did not run.
 */
const NOT_RUN = process.env.CONTAINER_TIER_NOT_RUN

/** A test of the tier: run, or a todo that says why it was not. */
export function tierTest(name: string, fn: (t: TestContext) => Promise<void>): void {
  if (NOT_RUN) test(name, { todo: `NOT RUN: ${NOT_RUN}` })
  else test(name, fn)
}

/** The file's setup and teardown, when the tier runs. */
export function tierHooks(setup: () => Promise<void>, teardown: () => Promise<void>): void {
  if (NOT_RUN) return
  before(setup)
  after(teardown)
}

/** What the checks read of `docker compose config --format json`. */
export interface ComposeConfig {
  services: Record<
    string,
    {
      environment?: Record<string, string>
      stop_grace_period?: string
      deploy?: { resources?: { limits?: { memory?: string; cpus?: string | number } } }
      healthcheck?: { start_period?: string; interval?: string; timeout?: string }
    }
  >
}

/** Go durations as compose prints them (`10s`, `1m30s`), in seconds. */
export const seconds = (duration: string) =>
  [...duration.matchAll(/(\d+(?:\.\d+)?)(ms|h|m|s)/g)].reduce(
    (sum, [, n, unit]) => sum + Number(n) * { ms: 0.001, s: 1, m: 60, h: 3600 }[unit as 's'],
    0,
  )

/** The ports docker-compose.yml publishes on the host for webapp, Prometheus and Alertmanager. */
export const PUBLISHED_PORTS = [
  5000, 5001, 5002, 5003, 5004, 5005, 5006, 5007, 5008, 5009, 9090, 9093,
]

/** Fails when another process holds a port the stack publishes (`up` would fail for that). */
export function assertPortsFree(): void {
  const taken = hostListeners().filter((l) => PUBLISHED_PORTS.includes(l.port))
  if (taken.length > 0) {
    throw new Error(
      `ports the stack publishes are in use: ${taken.map((l) => `${l.address}:${l.port} ${l.owner ?? ''}`).join(', ')}`,
    )
  }
}

/** A container's GET /metrics on its own metrics port, from inside the container (loopback). */
export async function metricsInside(id: string, port = 9464): Promise<string> {
  const result = await ok(
    docker([
      'exec',
      id,
      'node',
      '-e',
      `fetch('http://127.0.0.1:${port}/metrics').then(r => r.text()).then(t => process.stdout.write(t))`,
    ]),
    'GET /metrics in the container',
  )
  return result.stdout
}

/** Each worker's process start time in an exposition, by worker_id. */
export const startTimes = (exposition: string): Record<string, string> =>
  Object.fromEntries(
    [...exposition.matchAll(/^process_start_time_seconds\{worker_id="(\d+)"\} (\S+)$/gm)].map(
      (m) => [m[1], m[2]],
    ),
  )

/**
 * Waits (bounded) until the container's /metrics holds `workers` workers and says all of them
 * answered: /health passes once the first worker listens, and PM2 starts the others one by one.
 * Returns that exposition.
 */
export async function waitAllWorkers(id: string, workers: number): Promise<string> {
  const deadline = Date.now() + 120_000
  let last = ''
  while (Date.now() < deadline) {
    last = await metricsInside(id).catch((err: Error) => err.message)
    if (
      Object.keys(startTimes(last)).length === workers &&
      new RegExp(`^cluster_metrics_workers_answered ${workers}$`, 'm').test(last)
    ) {
      return last
    }
    await new Promise((resolve) => setTimeout(resolve, 1000))
  }
  throw new Error(
    `${id}: not all ${workers} workers in /metrics within 120 s:\n${last.slice(0, 2000)}`,
  )
}

/** When Docker's first passing probe ended, in seconds after the container started. */
export function firstPassAfterStart(info: Inspect): number | undefined {
  const firstPass = info.State.Health?.Log.find((probe) => probe.ExitCode === 0)
  if (!firstPass) return undefined
  return (Date.parse(firstPass.End) - Date.parse(info.State.StartedAt)) / 1000
}
