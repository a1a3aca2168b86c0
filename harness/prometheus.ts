// Runs a real Prometheus (Debian's `prometheus` package, or the binary PROMETHEUS_BIN names) on
// a free loopback port with its own data directory, and queries it through its HTTP API.
// Stopped by PID.
import assert from 'node:assert/strict'
import { type ChildProcess, spawn, spawnSync } from 'node:child_process'
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { freePort, httpGet, waitFor } from './net'
import { identify, killAll } from './pm2'
import { toolPath } from './tools'

/** The Prometheus binary: PROMETHEUS_BIN, else the unpacked 3.5, else PATH; read at each start. */
export const prometheusBin = () => toolPath('prometheus')

export interface PromSample {
  metric: Record<string, string>
  value?: [number, string]
  values?: [number, string][]
}

export interface PrometheusServer {
  url: string
  dir: string
  process: ChildProcess
  query(expr: string, time?: number): Promise<PromSample[]>
  queryRange(expr: string, start: number, end: number, stepSeconds: number): Promise<PromSample[]>
  targets(): Promise<
    Array<{ health: string; lastError: string; scrapeUrl: string; labels: Record<string, string> }>
  >
  stop(): Promise<void>
}

/**
 * `config` is a full prometheus.yml; rule files it names may be written with `files` (names
 * relative to the config, subfolders made as needed); `flags`
 * are added to the command line (e.g. --web.enable-remote-write-receiver).
 */
export async function startPrometheus(
  config: string,
  files: Record<string, string> = {},
  flags: string[] = [],
): Promise<PrometheusServer> {
  const dir = mkdtempSync(join(tmpdir(), 'prometheus-test-'))
  writeFileSync(join(dir, 'prometheus.yml'), config)
  for (const [name, content] of Object.entries(files)) {
    mkdirSync(dirname(join(dir, name)), { recursive: true })
    writeFileSync(join(dir, name), content)
  }
  const port = await freePort()
  const bin = prometheusBin()
  const child = spawn(
    bin,
    [
      `--config.file=${join(dir, 'prometheus.yml')}`,
      `--storage.tsdb.path=${join(dir, 'data')}`,
      `--web.listen-address=127.0.0.1:${port}`,
      '--log.level=warn',
      ...flags,
    ],
    { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] },
  )
  // Identified now, while the pid is surely this child's: stop signals only that process.
  const identity = child.pid === undefined ? undefined : identify(child.pid)
  let stderr = ''
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr = (stderr + chunk.toString()).slice(-4000)
  })
  // A missing binary or a failed spawn is an 'error' event, which would otherwise be thrown.
  let failure: Error | undefined
  child.on('error', (err) => {
    failure ??= new Error(
      `could not run Prometheus as ${JSON.stringify(bin)} (set PROMETHEUS_BIN to its path): ${err.message}`,
      { cause: err },
    )
  })
  // 'close' rather than 'exit': by then all of its stderr has been read.
  child.on('close', (code, signal) => {
    failure ??= new Error(`${bin} exited (${code ?? signal}) before it was ready: ${stderr}`)
  })
  const url = `http://127.0.0.1:${port}`
  const stop = async () => {
    if (identity !== undefined) await killAll([identity])
    rmSync(dir, { recursive: true, force: true })
  }
  const api = async (path: string) => {
    const res = await httpGet(`${url}${path}`)
    const parsed = JSON.parse(res.body) as { status: string; data: unknown; error?: string }
    if (parsed.status !== 'success')
      throw new Error(`Prometheus ${path}: ${parsed.error ?? res.body}`)
    return parsed.data
  }
  try {
    // The probe returns the failure to end the wait at once (a thrown error would be retried).
    const ready = await waitFor(
      'Prometheus to be ready',
      async () => failure ?? (await httpGet(`${url}/-/ready`)).status === 200,
      { timeoutMs: 30_000 },
    )
    if (ready instanceof Error) throw ready
  } catch (err) {
    await stop()
    throw err
  }
  return {
    url,
    dir,
    process: child,
    query: async (expr, time) => {
      const at = time === undefined ? '' : `&time=${time}`
      const data = (await api(`/api/v1/query?query=${encodeURIComponent(expr)}${at}`)) as {
        result: PromSample[]
      }
      return data.result
    },
    queryRange: async (expr, start, end, step) => {
      const data = (await api(
        `/api/v1/query_range?query=${encodeURIComponent(expr)}&start=${start}&end=${end}&step=${step}`,
      )) as { result: PromSample[] }
      return data.result
    },
    targets: async () => {
      const data = (await api('/api/v1/targets')) as {
        activeTargets: Array<{
          health: string
          lastError: string
          scrapeUrl: string
          labels: Record<string, string>
        }>
      }
      return data.activeTargets
    },
    stop,
  }
}

/** Time of Prometheus' newest scrape of `job` (from `up`), in seconds; 0 before the first. */
/**
 * Prometheus 3.5 as it scrapes native histograms: protobuf first, classic buckets kept beside
 * the native ones, and native ingestion switched on by its 3.5 feature flag (a scrape config
 * option from 3.8; see docs/stack.md), plus any `features` more. One job per app, by name.
 */
export async function startNativeHistogramPrometheus(
  jobs: ReadonlyArray<{ name: string; port: number }>,
  scrapeSeconds: number,
  scrapeTimeoutSeconds: number,
  features: readonly string[] = [],
): Promise<PrometheusServer> {
  const version = spawnSync(prometheusBin(), ['--version'], { encoding: 'utf8' })
  assert.match(`${version.stdout}${version.stderr}`, /^prometheus, version 3\.5\./)
  const scrapeConfigs = jobs
    .map(
      (job) => `
  - job_name: ${job.name}
    static_configs: [{ targets: ['127.0.0.1:${job.port}'] }]`,
    )
    .join('')
  return startPrometheus(
    `
global:
  scrape_interval: ${scrapeSeconds}s
  scrape_timeout: ${scrapeTimeoutSeconds}s
  scrape_protocols: [PrometheusProto, OpenMetricsText1.0.0, PrometheusText0.0.4]
  always_scrape_classic_histograms: true
scrape_configs:${scrapeConfigs}
`,
    {},
    [`--enable-feature=${['native-histograms', ...features].join(',')}`],
  )
}

export async function lastScrapeAt(prometheus: PrometheusServer, job: string): Promise<number> {
  const [sample] = await prometheus.query(`timestamp(up{job="${job}"})`)
  return sample === undefined ? 0 : Number(sample.value?.[1])
}

/**
 * Waits until Prometheus has scraped `job` `count` more times, every `intervalSeconds`;
 * returns the newest scrape's time.
 */
export async function scrapesPass(
  prometheus: PrometheusServer,
  job: string,
  intervalSeconds: number,
  count: number,
): Promise<number> {
  const from = await lastScrapeAt(prometheus, job)
  return waitFor(
    `${count} more scrapes`,
    async () => {
      const at = await lastScrapeAt(prometheus, job)
      return at >= from + (count - 0.5) * intervalSeconds ? at : undefined
    },
    { timeoutMs: (count + 10) * intervalSeconds * 1000, intervalMs: 250 },
  )
}
