// Measures what one pod of deploy/kubernetes holds in memory: pm2-runtime (the container's
// main process) and its workers, each one's peak resident set under a light route mix with a
// scrape of the cluster view every second. Writes docs/kubernetes-memory.json, which the
// manifest test sizes the Deployment's memory request against, and the table in
// docs/kubernetes.md. Run: node --import tsx test/stack/measure-pod-memory.ts
import { type ChildProcess, execFileSync, spawn } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { freePort, httpGet, sleep, waitFor } from '../../harness/net'
import { killAll, ROOT } from '../../harness/pm2'
import { driveRouteMix } from '../../harness/stack'

export const MEMORY_FILE = join(ROOT, 'docs', 'kubernetes-memory.json')
const DOC = join(ROOT, 'docs', 'kubernetes.md')
const INSTANCES = 5
const LOAD_RATE = 50
const LOAD_SECONDS = 30

export interface MemoryFigures {
  measuredAt: string
  instances: number
  load: string
  requestsSent: number
  /** pm2-runtime's own process: the PM2 daemon lives in it. */
  runtimePeakBytes: number
  workerIdleBytes: number[]
  workerPeakBytes: number[]
}

const rssBytes = (pid: number) => {
  const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
  return match ? Number(match[1]) * 1024 : 0
}

const childrenOf = (pid: number) =>
  execFileSync('ps', ['--ppid', String(pid), '-o', 'pid='], { encoding: 'utf8' })
    .split(/\s+/)
    .filter(Boolean)
    .map(Number)

async function measure(): Promise<MemoryFigures> {
  const home = mkdtempSync(join(tmpdir(), 'pm2-pod-'))
  const port = await freePort()
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    PM2_HOME: home,
    PORT: String(port),
    HOST: '127.0.0.1',
    INSTANCES: String(INSTANCES),
    APP_NAME: `pod-memory-${port}`,
    METRICS_SOCKET_DIR: join(home, 'sock'),
    LOG_LEVEL: 'warn',
  }
  delete env.NODE_OPTIONS
  delete env.NODE_TEST_CONTEXT
  // The container's command (Dockerfile CMD, deployment.yaml).
  const runtime: ChildProcess = spawn(
    join(ROOT, 'node_modules', '.bin', 'pm2-runtime'),
    ['start', 'ecosystem.config.js'],
    { cwd: ROOT, env, stdio: 'ignore' },
  )
  const runtimePid = runtime.pid as number
  const baseUrl = `http://127.0.0.1:${port}`
  let workers: number[] = []
  try {
    await waitFor(
      `${INSTANCES} workers in the cluster view`,
      async () =>
        childrenOf(runtimePid).length === INSTANCES &&
        (await httpGet(`${baseUrl}/metrics`)).body.includes(
          `cluster_metrics_workers_answered ${INSTANCES}`,
        ),
      { timeoutMs: 60_000, intervalMs: 500 },
    )
    workers = childrenOf(runtimePid)
    const workerIdleBytes = workers.map(rssBytes)
    const workerPeakBytes = [...workerIdleBytes]
    let runtimePeakBytes = rssBytes(runtimePid)
    let finished = false
    const load = driveRouteMix(baseUrl, LOAD_RATE, LOAD_SECONDS, 5).finally(() => {
      finished = true
    })
    while (!finished) {
      await httpGet(`${baseUrl}/metrics`)
      runtimePeakBytes = Math.max(runtimePeakBytes, rssBytes(runtimePid))
      workers.forEach((pid, i) => {
        workerPeakBytes[i] = Math.max(workerPeakBytes[i], rssBytes(pid))
      })
      await sleep(1000)
    }
    const result = await load
    return {
      measuredAt: new Date().toISOString(),
      instances: INSTANCES,
      load: `${LOAD_RATE} req/s route mix for ${LOAD_SECONDS} s, /metrics every second`,
      requestsSent: result.requests.total,
      runtimePeakBytes,
      workerIdleBytes,
      workerPeakBytes,
    }
  } finally {
    await killAll([runtimePid, ...workers])
    rmSync(home, { recursive: true, force: true })
  }
}

const MiB = 1024 * 1024
const mib = (bytes: number) => `${(bytes / MiB).toFixed(1)} MiB`

/** What a pod of `instances` workers needs, from the measured peaks. */
export function podMemoryBytes(figures: MemoryFigures, instances: number): number {
  return figures.runtimePeakBytes + instances * Math.max(...figures.workerPeakBytes)
}

function table(f: MemoryFigures): string {
  const worker = Math.max(...f.workerPeakBytes)
  return [
    `Measured ${f.measuredAt.slice(0, 16)}Z, ${f.instances} workers under pm2-runtime, ${f.load} ` +
      `(${f.requestsSent} requests):`,
    '',
    '| process | idle | peak |',
    '| --- | --- | --- |',
    `| pm2-runtime (PM2 daemon) | | ${mib(f.runtimePeakBytes)} |`,
    ...f.workerIdleBytes.map(
      (idle, i) => `| worker ${i} | ${mib(idle)} | ${mib(f.workerPeakBytes[i])} |`,
    ),
    '',
    `Per pod: ${mib(f.runtimePeakBytes)} + INSTANCES × ${mib(worker)}; for ` +
      `${f.instances} workers ${mib(podMemoryBytes(f, f.instances))}.`,
  ].join('\n')
}

if (require.main === module) {
  measure()
    .then((figures) => {
      writeFileSync(MEMORY_FILE, `${JSON.stringify(figures, null, 2)}\n`)
      const doc = readFileSync(DOC, 'utf8')
      const block = /(<!-- memory:start -->)[\s\S]*?(<!-- memory:end -->)/
      if (!block.test(doc)) throw new Error(`${DOC} has no memory block`)
      writeFileSync(DOC, doc.replace(block, `$1\n${table(figures)}\n$2`))
      console.log(table(figures))
    })
    .catch((err: unknown) => {
      console.error(err)
      process.exitCode = 1
    })
}
