// The plugin as a user gets it: `npm pack` of packages/plugin, installed into a fresh app in a
// temporary folder that has only fastify, prom-client and pm2 besides it. The app's own PM2 runs
// it in cluster mode with 3 workers, once as CommonJS and once as an ES module, and /metrics
// answers with all 3; the package's types are checked from both module systems.
import assert from 'node:assert/strict'
import { execFile, execFileSync } from 'node:child_process'
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs'
import { tmpdir } from 'node:os'
import { delimiter, dirname, join } from 'node:path'
import { after, before, test } from 'node:test'
import { promisify } from 'node:util'
import { gaugeValue, parseExposition, scrape } from '../../harness/exposition'
import { httpGet, waitFor } from '../../harness/net'
import { ROOT, startPm2App } from '../../harness/pm2'
import { socketDirFor } from '../../packages/plugin/src/cluster/socket-paths'

const run = promisify(execFile)
const FIXTURE = join(ROOT, 'test', 'fixtures', 'own-app')
const PEERS = ['fastify', 'prom-client', 'pm2'] as const

let work: string
let appDir: string
let packed: { filename: string; files: Array<{ path: string }> }

const installedVersion = (name: string) =>
  (
    JSON.parse(readFileSync(join(ROOT, 'node_modules', name, 'package.json'), 'utf8')) as {
      version: string
    }
  ).version

before(async () => {
  work = mkdtempSync(join(tmpdir(), 'plugin-pack-'))
  const { stdout } = await run(
    'npm',
    ['pack', '--workspace', 'fastify-pm2-cluster-metrics', '--pack-destination', work, '--json'],
    { cwd: ROOT, maxBuffer: 16 * 1024 * 1024 },
  )
  ;[packed] = JSON.parse(stdout.slice(stdout.indexOf('[')))
  appDir = join(work, 'app')
  mkdirSync(appDir)
  // The versions this project is tested with, so that npm's cache serves them.
  const dependencies: Record<string, string> = Object.fromEntries(
    PEERS.map((name) => [name, installedVersion(name)]),
  )
  dependencies['fastify-pm2-cluster-metrics'] = `file:../${packed.filename}`
  writeFileSync(
    join(appDir, 'package.json'),
    JSON.stringify({ name: 'own-app', private: true, dependencies }, null, 2),
  )
  await run('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', '--loglevel=error'], {
    cwd: appDir,
    maxBuffer: 16 * 1024 * 1024,
  })
  for (const file of [
    'ecosystem.config.js',
    'server.cjs',
    'server.mjs',
    'entry-points.mjs',
    'types.mts',
    'types.cts',
  ])
    copyFileSync(join(FIXTURE, file), join(appDir, file))
})

after(() => {
  if (work) rmSync(work, { recursive: true, force: true })
})

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
      join(appDir, 'node_modules', 'fastify-pm2-cluster-metrics', 'package.json'),
      'utf8',
    ),
  ) as { dependencies: Record<string, string>; peerDependencies: Record<string, string> }
  assert.deepEqual(Object.keys(pkg.peerDependencies).sort(), ['fastify', 'prom-client'])
  for (const service of ['pm2', 'close-with-grace', 'env-schema', 'fastify', 'prom-client'])
    assert.ok(!(service in pkg.dependencies), `${service} is not a dependency of the plugin`)
})

test('the installed package type-checks from an ES module and from CommonJS', async () => {
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
  const result = await run(process.execPath, [tsc, '-p', join(appDir, 'tsconfig.json')], {
    cwd: appDir,
  }).then(
    () => 'ok',
    (err: { stdout?: string }) => err.stdout ?? String(err),
  )
  assert.equal(result, 'ok')
})

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
  for (const node of nodes()) {
    const { stdout } = await run(node, ['entry-points.mjs'], { cwd: appDir })
    const result = JSON.parse(stdout) as Record<string, unknown>
    assert.ok((result.cjsNames as number) > 20, stdout)
    assert.deepEqual(result.missingFromEsm, [], stdout)
    assert.equal(result.defaultIsThePlugin, true, stdout)
    assert.equal(result.oneCopy, true, stdout)
  }
})

for (const entry of ['server.cjs', 'server.mjs']) {
  test(`an app (${entry}) run by its own PM2 with 3 workers shows all 3 in /metrics`, {
    timeout: 120_000,
  }, async () => {
    const app = await startPm2App({
      instances: 3,
      ecosystem: join(appDir, 'ecosystem.config.js'),
      pm2Bin: join(appDir, 'node_modules', '.bin', 'pm2'),
      cwd: appDir,
      // PM2 and its workers on the Node that runs the tests.
      env: {
        APP_ENTRY: entry,
        METRICS_SOCKET_DIR: '',
        PATH: `${dirname(process.execPath)}${delimiter}${process.env.PATH}`,
      },
    })
    try {
      const workers = await app.waitOnline(3)
      assert.deepEqual(workers.map((w) => w.workerId).sort(), ['0', '1', '2'])
      for (let i = 0; i < 30; i++)
        assert.equal((await httpGet(`${app.baseUrl}/orders/${i}`)).status, 200)
      const text = await waitFor('all 3 workers in the gather', async () => {
        const body = await scrape(app.baseUrl)
        return gaugeValue(body, 'cluster_metrics_workers_answered') === 3 ? body : undefined
      })
      const families = parseExposition(text)
      const requests = families.find((f) => f.name === 'http_requests_total')?.metrics ?? []
      const orders = requests.filter((m) => m.labels?.route === '/orders/:id')
      assert.equal(
        orders.reduce((sum, m) => sum + Number(m.value), 0),
        30,
      )
      const started = families.find((f) => f.name === 'process_start_time_seconds')?.metrics ?? []
      assert.deepEqual(started.map((m) => m.labels?.worker_id).sort(), ['0', '1', '2'])
    } finally {
      await app.stop()
      // The plugin's default socket directory, keyed by the app name.
      rmSync(socketDirFor(app.name), { recursive: true, force: true })
    }
  })
}
