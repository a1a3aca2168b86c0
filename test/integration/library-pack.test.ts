// The plugin as a user gets it: `npm pack` of packages/plugin, installed into a fresh app in a
// temporary folder, once with prom-client and once with @prometheus-io/client (with fastify and
// pm2 beside it and nothing else). The tarball's contents and types are checked from both module
// systems; then a matrix of apps, {client} x {the plugin's registry, the app's own} x {CommonJS,
// ES module}, each run by its own PM2 with 3 workers and all scraped by one real Prometheus 3.5,
// goes through a `pm2 reload --update-env` that switches native histograms on.
import assert from 'node:assert/strict'
import { execFile, execFileSync } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { delimiter, dirname, join } from 'node:path'
import { after, before, test } from 'node:test'
import { promisify } from 'node:util'
import {
  CLIENTS,
  type ClientName,
  installConsumerApp,
  type PackedPlugin,
  packPlugin,
} from '../../harness/consumer-app'
import { gaugeValue } from '../../harness/exposition'
import { httpGet, waitFor } from '../../harness/net'
import { type Pm2App, ROOT, startPm2App } from '../../harness/pm2'
import {
  type PrometheusServer,
  scrapesPass,
  startNativeHistogramPrometheus,
} from '../../harness/prometheus'
import { PROMETHEUS_ACCEPT } from '../../harness/prometheus-accept'
import {
  decodeFamilies,
  protobufSamples,
  type Sample,
  samplesByKey,
  textSamples,
} from '../../harness/protobuf'
import { abnormalExits, increaseSince, workerErrors } from '../../harness/traffic-phases'
import { socketDirFor } from '../../packages/plugin/src/run-dir/socket-paths'

const run = promisify(execFile)

let work: string
let packed: PackedPlugin
/** One fresh app per client. */
const appDirs = new Map<ClientName, string>()

before(async () => {
  work = mkdtempSync(join(tmpdir(), 'plugin-pack-'))
  packed = await packPlugin(work)
  for (const client of CLIENTS) {
    const dir = join(work, client.replace(/\W/g, '_'))
    appDirs.set(client, await installConsumerApp(dir, packed, client))
  }
})

after(() => {
  if (work) rmSync(work, { recursive: true, force: true })
})

const appDir = () => appDirs.get('prom-client') as string

test('the tarball holds the built entry points with their types, the sources and the README', () => {
  const paths = new Set(packed.files.map((f) => f.path))
  for (const path of [
    'package.json',
    'README.md',
    'dist/index.js',
    'dist/index.d.ts',
    'dist/index.mjs',
    'dist/index.d.mts',
    'src/index.ts',
  ])
    assert.ok(paths.has(path), `${path} is packed`)
  assert.ok(![...paths].some((p) => p.startsWith('test/') || p.includes('node_modules')))
  const pkg = JSON.parse(
    readFileSync(
      join(appDir(), 'node_modules', 'fastify-pm2-cluster-metrics', 'package.json'),
      'utf8',
    ),
  ) as {
    dependencies: Record<string, string>
    peerDependencies: Record<string, string>
    peerDependenciesMeta?: Record<string, { optional?: boolean }>
  }
  assert.deepEqual(Object.keys(pkg.peerDependencies).sort(), ['fastify', ...CLIENTS].sort())
  // Either client will do, so neither is required on its own.
  for (const client of CLIENTS) assert.equal(pkg.peerDependenciesMeta?.[client]?.optional, true)
  for (const service of ['pm2', 'close-with-grace', 'env-schema', 'fastify', ...CLIENTS])
    assert.ok(!(service in pkg.dependencies), `${service} is not a dependency of the plugin`)
})

test('the installed package type-checks from an ES module and from CommonJS, with either client', async () => {
  for (const dir of appDirs.values()) assert.equal(await typeCheck(dir), 'ok', dir)
})

async function typeCheck(appDir: string): Promise<string> {
  const tsconfig = {
    compilerOptions: {
      module: 'nodenext',
      moduleResolution: 'nodenext',
      target: 'ES2022',
      strict: true,
      noEmit: true,
      skipLibCheck: true,
      types: ['node'],
      typeRoots: [join(ROOT, 'node_modules', '@types')],
    },
    files: ['types.mts', 'types.cts'],
  }
  writeFileSync(join(appDir, 'tsconfig.json'), JSON.stringify(tsconfig, null, 2))
  const tsc = join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc')
  return run(process.execPath, [tsc, '-p', join(appDir, 'tsconfig.json')], { cwd: appDir }).then(
    () => 'ok',
    (err: { stdout?: string }) => err.stdout ?? String(err),
  )
}

/**
 * The Node running the tests, and every other `node` on the PATH outside node_modules (the
 * machine's own), each once: the package supports Node 20 and later.
 */
function nodes(): string[] {
  const found = new Map<string, string>([[process.version, process.execPath]])
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (dir === '' || dir.includes('node_modules')) continue
    const candidate = join(dir, 'node')
    if (!existsSync(candidate)) continue
    const version = execFileSync(candidate, ['--version'], { encoding: 'utf8' }).trim()
    if (!found.has(version)) found.set(version, candidate)
  }
  return [...found.values()]
}

test('the ES module entry point exports what the CommonJS one does, from one copy of the code', async () => {
  // @prometheus-io/client needs Node 22 or later: that app runs on the tests' Node only.
  const runs = [
    ...nodes().map((node) => [node, appDir()]),
    [process.execPath, appDirs.get('@prometheus-io/client') as string],
  ]
  for (const [node, cwd] of runs) {
    const { stdout } = await run(node, ['entry-points.mjs'], { cwd })
    const result = JSON.parse(stdout) as { cjsNames: string[] } & Record<string, unknown>
    assert.ok(result.cjsNames.includes('metricsPlugin'), stdout)
    assert.deepEqual(result.missingFromEsm, [], stdout)
    assert.equal(result.defaultIsThePlugin, true, stdout)
    assert.equal(result.oneCopy, true, stdout)
  }
})

/** One app of the matrix: a client, whose registry, which module system, which TMPDIR. */
interface Cell {
  client: ClientName
  /** `plugin`: the plugin makes its registry; `new` / `global`: the app's own. */
  registry: 'plugin' | 'new' | 'global'
  entry: 'server.cjs' | 'server.mjs'
  /** A 120-byte TMPDIR, as a long macOS one is, instead of the machine's. */
  longTmpdir: boolean
}

const WORKERS = 3
const SCRAPE_SECONDS = 2

const CELLS: Cell[] = CLIENTS.flatMap((client, c) =>
  (['server.cjs', 'server.mjs'] as const).flatMap((entry) =>
    (['plugin', 'own'] as const).map((kind) => ({
      client,
      // An ES module app hands over the client's global registry, a CommonJS one a new one.
      registry: kind === 'plugin' ? 'plugin' : entry === 'server.mjs' ? 'global' : 'new',
      entry,
      // One app per client on a long TMPDIR.
      longTmpdir: kind === 'own' && (entry === 'server.mjs') === (c === 0),
    })),
  ),
)

const describe = (cell: Cell) =>
  `${cell.client}, ${cell.registry} registry, ${cell.entry}${cell.longTmpdir ? ', 120-byte TMPDIR' : ''}`

/** A directory whose path is exactly `bytes` long. */
function directoryOfLength(parent: string, bytes: number): string {
  const prefix = join(parent, 'tmp-')
  const dir = prefix + 'x'.repeat(bytes - Buffer.byteLength(prefix))
  mkdirSync(dir, { recursive: true })
  return dir
}

/** `n` requests to /orders/:id, each on a fresh connection: the answered ones and the failures. */
async function orders(app: Pm2App, n: number, tally: { answered: number; failed: string[] }) {
  for (let i = 0; i < n; i++) {
    try {
      const res = await httpGet(`${app.baseUrl}/orders/${i}`)
      if (res.status === 200) tally.answered++
      else tally.failed.push(`status ${res.status}`)
    } catch (err) {
      tally.failed.push(String(err))
    }
  }
}

async function scrapeAs(app: Pm2App, accept: string): Promise<Buffer> {
  const res = await httpGet(`${app.baseUrl}/metrics`, { headers: { accept } })
  assert.equal(res.status, 200, res.body)
  return res.rawBody
}

/**
 * Every worker's series, in any format: no series twice, and every one but the gather's own
 * health carries the `worker_id` of one of the 3 workers.
 */
function checkWorkerLabels(samples: Sample[], cell: Cell): void {
  assert.doesNotThrow(() => samplesByKey(samples), describe(cell))
  const unlabelled = samples.filter(
    (s) => !s.name.startsWith('cluster_metrics_') && !['0', '1', '2'].includes(s.labels.worker_id),
  )
  assert.deepEqual(
    [...new Set(unlabelled.map((s) => s.name))],
    [],
    `${describe(cell)}: series without a worker_id`,
  )
  const workersOf = (name: string) =>
    samples
      .filter((s) => s.name === name)
      .map((s) => s.labels.worker_id)
      .sort()
  assert.deepEqual(workersOf('process_cpu_user_seconds_total'), ['0', '1', '2'], describe(cell))
  if (cell.registry !== 'plugin')
    assert.deepEqual(workersOf('jobs_total'), ['0', '1', '2'], describe(cell))
}

test('apps installed from the tarball, with either client and either registry, count exactly through a reload that switches native histograms on', {
  timeout: 300_000,
}, async (t) => {
  const diagnostic = (message: string) => t.diagnostic(message)
  const apps = new Map<Cell, Pm2App>()
  let prometheus: PrometheusServer | undefined
  try {
    // Every start settles before any failure is thrown, so that `finally` stops every app.
    const started = await Promise.allSettled(
      CELLS.map(async (cell, i) => {
        const env: Record<string, string> = {
          APP_ENTRY: cell.entry,
          METRICS_CLIENT: cell.client,
          OWN_REGISTRY: cell.registry === 'plugin' ? '' : cell.registry,
          METRICS_SOCKET_DIR: '',
          // PM2 and its workers on the Node that runs the tests.
          PATH: `${dirname(process.execPath)}${delimiter}${process.env.PATH}`,
        }
        if (cell.longTmpdir) env.TMPDIR = directoryOfLength(join(work, `t${i}`), 120)
        const cwd = appDirs.get(cell.client) as string
        const app = await startPm2App({
          instances: WORKERS,
          name: `own-${i}-${process.pid}`,
          ecosystem: join(cwd, 'ecosystem.config.js'),
          pm2Bin: join(cwd, 'node_modules', '.bin', 'pm2'),
          cwd,
          env,
          onlineTimeoutMs: 120_000,
        })
        apps.set(cell, app)
      }),
    )
    const failures = started.flatMap((result, i) =>
      result.status === 'rejected' ? [`${describe(CELLS[i])}: ${result.reason}`] : [],
    )
    assert.deepEqual(failures, [], 'every app starts')
    prometheus = await startNativeHistogramPrometheus(
      [...apps.values()].map((app) => ({ name: app.name, port: app.port })),
      SCRAPE_SECONDS,
      SCRAPE_SECONDS,
    )
    const server = prometheus

    const tallies = new Map<Cell, { answered: number; failed: string[] }>()
    const from = new Map<Cell, number>()
    await Promise.all(
      [...apps].map(async ([cell, app]) => {
        from.set(cell, await scrapesPass(server, app.name, SCRAPE_SECONDS, 1))
        const tally = { answered: 0, failed: [] }
        tallies.set(cell, tally)
        await orders(app, 30, tally)
        // The app's own counter, with every worker's series apart, in every text format.
        const text = await waitFor(`all ${WORKERS} workers of ${describe(cell)}`, async () => {
          const body = (await scrapeAs(app, 'text/plain')).toString()
          return gaugeValue(body, 'cluster_metrics_workers_answered') === WORKERS ? body : undefined
        })
        checkWorkerLabels(textSamples(text), cell)
        const openMetrics = await scrapeAs(app, PROMETHEUS_ACCEPT['prometheus-3.5'])
        checkWorkerLabels(textSamples(openMetrics.toString()), cell)
        if (cell.registry !== 'plugin') {
          const jobsTotal = textSamples(text)
            .filter((s) => s.name === 'jobs_total')
            .reduce((sum, s) => sum + s.value, 0)
          assert.equal(jobsTotal, tally.answered, describe(cell))
        }

        // The reload switches native histograms on, as a PM2 user switches on a feature.
        let reloading = true
        const during = (async () => {
          while (reloading) await orders(app, 5, tally)
        })()
        try {
          await run(
            join(appDirs.get(cell.client) as string, 'node_modules', '.bin', 'pm2'),
            ['reload', app.name, '--update-env'],
            { cwd: appDirs.get(cell.client), env: { ...app.env, NATIVE_HISTOGRAMS: 'true' } },
          )
        } finally {
          reloading = false
          await during
        }
        await app.waitOnline(WORKERS)
        await orders(app, 30, tally)
      }),
    )

    for (const [cell, app] of apps) {
      // Requests the app's own stop refused or cut (Fastify's 503 while closing, a connection
      // PM2's master handed to a stopping worker) never reached the plugin: only the answered
      // ones are compared with what was counted.
      const tally = tallies.get(cell) as { answered: number; failed: string[] }
      if (tally.failed.length > 0) diagnostic(`${describe(cell)}: ${tally.failed.join(', ')}`)
      assert.equal(abnormalExits(app).length, 0, `${describe(cell)}: ${workerErrors(app)}`)
      // The next scrape after the switch: a native histogram beside every classic series.
      const proto = await waitFor(
        `every worker of ${describe(cell)} after the reload`,
        async () => {
          const body = await scrapeAs(app, PROMETHEUS_ACCEPT['prometheus-3.5 protobuf first'])
          const families = decodeFamilies(body)
          const answered = families.find((f) => f.name === 'cluster_metrics_workers_answered')
          return answered?.metric?.[0]?.gauge?.value === WORKERS ? families : undefined
        },
      )
      const durations = proto.find((f) => f.name === 'http_request_duration_seconds')?.metric ?? []
      assert.ok(durations.length >= WORKERS, describe(cell))
      for (const m of durations) {
        const h = m.histogram
        // What makes Prometheus take a histogram as native: spans, or a zero bucket.
        const native =
          (h?.positive_span?.length ?? 0) > 0 ||
          (h?.zero_count ?? 0) > 0 ||
          (h?.zero_threshold ?? 0) > 0
        assert.ok(native, `${describe(cell)}: a native half in ${JSON.stringify(m.label)}`)
        const nativeCount =
          (h?.zero_count ?? 0) +
          (h?.positive_delta ?? []).reduce(
            (acc, d) => ({ sum: acc.sum + acc.last + d, last: acc.last + d }),
            { sum: 0, last: 0 },
          ).sum
        assert.equal(nativeCount, h?.sample_count, `${describe(cell)}: native and classic counts`)
      }
      checkWorkerLabels(protobufSamples(proto), cell)
      checkWorkerLabels(textSamples((await scrapeAs(app, 'text/plain')).toString()), cell)
    }

    // What Prometheus stored, two scrapes after the traffic ended.
    for (const [cell, app] of apps) {
      const to = await scrapesPass(server, app.name, SCRAPE_SECONDS, 2)
      const ms = Math.round((to - (from.get(cell) as number) + 0.5) * 1000)
      const series = await server.query(
        `http_requests_total{job="${app.name}",route="/orders/:id",status_code="200"}[${ms}ms]`,
        to,
      )
      let counted = 0
      const drops: string[] = []
      for (const s of series) {
        const samples = (s.values ?? []).map(([at, raw]) => [Number(at), Number(raw)] as const)
        const { delta, resets } = increaseSince(samples, from.get(cell) as number)
        counted += delta
        for (let i = 0; i < resets; i++) drops.push(JSON.stringify(s.metric))
      }
      const answered = (tallies.get(cell) as { answered: number }).answered
      diagnostic(`${describe(cell)}: counted ${counted} of ${answered} answered`)
      assert.deepEqual(drops, [], describe(cell))
      assert.ok(
        Math.abs(counted / answered - 1) <= 0.001,
        `${describe(cell)}: counted ${counted} of ${answered} answered`,
      )
      const down = await server.query(`min_over_time(up{job="${app.name}"}[${ms}ms]) < 1`, to)
      assert.deepEqual(down, [], `${describe(cell)}: the target was down`)
      const unlabelled = await server.query(
        `count by (__name__) ({job="${app.name}",worker_id="",__name__!~"cluster_metrics_.*|up|scrape_.*"})`,
        to,
      )
      assert.deepEqual(
        unlabelled.map((s) => s.metric.__name__),
        [],
        `${describe(cell)}: stored series without a worker_id`,
      )
    }
    // Prometheus' own count of the samples it dropped for a series repeated within one scrape.
    const own = (await httpGet(`${server.url}/metrics`)).body
    assert.equal(
      gaugeValue(own, 'prometheus_target_scrapes_sample_duplicate_timestamp_total'),
      0,
      'samples Prometheus dropped as duplicates',
    )
  } finally {
    await prometheus?.stop()
    await Promise.all([...apps.values()].map((app) => app.stop()))
    // The plugin's default socket directories, keyed by the app names, for each app's TMPDIR.
    for (const app of apps.values()) {
      rmSync(socketDirUnder(app.env.TMPDIR, app.name), { recursive: true, force: true })
    }
  }
})

/** socketDirFor(key) as a process whose TMPDIR is `dir` (the tests' own if undefined) sees it. */
function socketDirUnder(dir: string | undefined, key: string): string {
  const own = process.env.TMPDIR
  if (dir !== undefined) process.env.TMPDIR = dir
  try {
    return socketDirFor(key)
  } finally {
    if (own === undefined) delete process.env.TMPDIR
    else process.env.TMPDIR = own
  }
}
