// Dockerfile and docker-compose.yml, validated without a Docker engine: Debian's docker-compose
// (`config`), the dockerfile-utils linter, promtool on the files compose mounts, and the image's
// own command and health check run against the real service (PM2 in the foreground) here.
import assert from 'node:assert/strict'
import { type ChildProcess, spawn } from 'node:child_process'
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { builtinModules } from 'node:module'
import { tmpdir } from 'node:os'
import { join, relative } from 'node:path'
import { test } from 'node:test'
import { freePort, httpGet, waitFor } from '../../harness/net'
import { isAlive, killAll } from '../../harness/pm2'
import { PROMTOOL_BIN, parseYaml, ROOT, readYaml, runCommand } from '../../harness/stack'
import { toolPath } from '../../harness/tools'

// ---- Dockerfile ----

interface Instruction {
  keyword: string
  args: string
  stage: number
}

/** Instructions with continuation lines joined and comments dropped; `stage` counts FROMs. */
function parseDockerfile(text: string): Instruction[] {
  const logical: string[] = []
  let current = ''
  for (const line of text.split('\n')) {
    if (/^\s*#/.test(line) && current === '') continue
    if (line.trimEnd().endsWith('\\')) {
      current += `${line.trimEnd().slice(0, -1)} `
      continue
    }
    current += line
    if (current.trim() !== '') logical.push(current.trim())
    current = ''
  }
  let stage = -1
  return logical.map((line) => {
    const [keyword, ...rest] = line.split(/\s+/)
    if (keyword.toUpperCase() === 'FROM') stage++
    return { keyword: keyword.toUpperCase(), args: rest.join(' '), stage }
  })
}

const dockerfile = () => parseDockerfile(readFileSync(join(ROOT, 'Dockerfile'), 'utf8'))
const lastStage = (instructions: Instruction[]) => Math.max(...instructions.map((i) => i.stage))
const argDefaults = (instructions: Instruction[]) =>
  Object.fromEntries(
    instructions
      .filter((i) => i.keyword === 'ARG' && i.args.includes('='))
      .map((i) => i.args.split('=', 2) as [string, string]),
  )
const resolveArgs = (value: string, args: Record<string, string>) =>
  value.replace(/\$\{(\w+)\}|\$(\w+)/g, (_, a: string, b: string) => args[a ?? b] ?? '')
/** The JSON (exec) form of CMD / HEALTHCHECK CMD as an argv. */
const execForm = (args: string) => JSON.parse(args.replace(/^.*?CMD\s+/s, '')) as string[]

function runtimeEnv(instructions: Instruction[]): Record<string, string> {
  const env: Record<string, string> = {}
  for (const i of instructions.filter(
    (i) => i.keyword === 'ENV' && i.stage === lastStage(instructions),
  )) {
    for (const match of i.args.matchAll(/(\w+)=(\S+)/g)) env[match[1]] = match[2]
  }
  return env
}

test('the dockerfile-utils linter finds no problem in the Dockerfile, and does find broken ones', () => {
  const lint = (path: string) =>
    runCommand(join(ROOT, 'node_modules', '.bin', 'dockerfile-utils'), ['lint', '-j', path])
  const result = lint(join(ROOT, 'Dockerfile'))
  assert.equal(result.code, 0, result.stderr)
  assert.deepEqual(JSON.parse(result.stdout), [])

  const dir = mkdtempSync(join(tmpdir(), 'dockerfile-lint-'))
  try {
    const broken = join(dir, 'Dockerfile')
    const text = readFileSync(join(ROOT, 'Dockerfile'), 'utf8').replace(
      'EXPOSE 5000',
      'EXPOSE webapp',
    )
    writeFileSync(broken, text)
    const problems = JSON.parse(lint(broken).stdout) as Array<{ message: string }>
    assert.ok(
      problems.some((p) => /containerPort/.test(p.message)),
      JSON.stringify(problems),
    )
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
})

test('the Dockerfile is multi-stage on a pinned Node image and runs pm2-runtime as non-root', () => {
  const instructions = dockerfile()
  const args = argDefaults(instructions)
  const froms = instructions.filter((i) => i.keyword === 'FROM')
  assert.ok(froms.length >= 2, 'multi-stage')
  for (const from of froms) {
    const image = resolveArgs(from.args.split(/\s+/)[0], args)
    // An official image with a full version; never a floating tag.
    assert.match(image, /^node:\d+\.\d+\.\d+-[a-z]+(-slim)?$/, image)
  }
  const runs = instructions.filter((i) => i.keyword === 'RUN').map((i) => i.args)
  assert.ok(
    runs.some((r) => /^npm ci\b(?!.*--omit=dev)/.test(r)),
    'build stage with dev deps',
  )
  assert.ok(
    runs.some((r) => /npm run build/.test(r)),
    'TypeScript built in the image',
  )
  assert.ok(
    runs.some((r) => /npm ci --omit=dev/.test(r)),
    'production dependencies only',
  )

  const final = lastStage(instructions)
  const runtime = instructions.filter((i) => i.stage === final)
  const copies = runtime.filter((i) => i.keyword === 'COPY').map((i) => i.args)
  assert.ok(
    copies.some((c) => /--from=deps .*node_modules/.test(c)),
    'runtime takes prod deps',
  )
  assert.ok(
    copies.some((c) => /--from=build .*dist/.test(c)),
    'runtime takes the build',
  )
  assert.ok(
    !runtime.some((i) => i.keyword === 'RUN' && /npm (ci|install)(?!.*--omit=dev)/.test(i.args)),
  )
  const user = runtime.filter((i) => i.keyword === 'USER').at(-1)
  assert.ok(user && !/^(root|0)(:|$)/.test(user.args), 'runs as a non-root user')
  assert.ok(runtime.some((i) => i.keyword === 'EXPOSE' && i.args === '5000'))
  const health = runtime.find((i) => i.keyword === 'HEALTHCHECK')
  assert.ok(health && /\/health/.test(health.args), 'HEALTHCHECK on /health')
  const cmd = runtime.find((i) => i.keyword === 'CMD')
  assert.ok(cmd)
  assert.deepEqual(execForm(cmd.args), ['scripts/container-start.sh'])
  // The entry script ends by becoming pm2-runtime on the ecosystem file.
  assert.match(
    readFileSync(join(ROOT, 'scripts', 'container-start.sh'), 'utf8'),
    /^exec node_modules\/\.bin\/pm2-runtime start ecosystem\.config\.js "\$@"$/m,
  )
})

test('the runtime needs only production dependencies, the service and the plugin package each its own', () => {
  const builtins = new Set([...builtinModules, ...builtinModules.map((m) => `node:${m}`)])
  const jsFiles = (dir: string): string[] =>
    readdirSync(dir).flatMap((name) => {
      const path = join(dir, name)
      if (statSync(path).isDirectory()) return jsFiles(path)
      return /\.m?js$/.test(name) ? [path] : []
    })
  const plugin = join(ROOT, 'packages', 'plugin')
  for (const [packageDir, files] of [
    [ROOT, [join(ROOT, 'ecosystem.config.js'), ...jsFiles(join(ROOT, 'dist'))]],
    [plugin, jsFiles(join(plugin, 'dist'))],
  ] as const) {
    const pkg = JSON.parse(readFileSync(join(packageDir, 'package.json'), 'utf8')) as {
      dependencies: Record<string, string>
      peerDependencies?: Record<string, string>
    }
    const allowed = { ...pkg.dependencies, ...pkg.peerDependencies }
    assert.ok(files.length > 5, `build first: ${relative(ROOT, packageDir) || '.'}/dist is empty`)
    for (const file of files) {
      for (const match of readFileSync(file, 'utf8').matchAll(
        /require\("([^"]+)"\)|require\('([^']+)'\)|from '([^']+)'/g,
      )) {
        const spec = match[1] ?? match[2] ?? match[3]
        if (spec.startsWith('.') || builtins.has(spec)) continue
        const name = spec.startsWith('@')
          ? spec.split('/').slice(0, 2).join('/')
          : spec.split('/')[0]
        assert.ok(name in allowed, `${relative(ROOT, file)} requires ${name}, not a dependency`)
      }
    }
  }
})

test('.dockerignore keeps the context small and keeps what the build copies', () => {
  const ignored = readFileSync(join(ROOT, '.dockerignore'), 'utf8')
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '' && !line.startsWith('#'))
  for (const entry of ['node_modules', 'dist', '.git', '.env', 'secrets'])
    assert.ok(ignored.includes(entry), entry)
  const sources = dockerfile()
    .filter((i) => i.keyword === 'COPY' && !i.args.includes('--from='))
    .flatMap((i) => i.args.split(/\s+/).slice(0, -1))
  assert.ok(sources.length >= 5)
  for (const source of sources) {
    assert.ok(!ignored.includes(source), `${source} is copied but ignored`)
    assert.doesNotThrow(() => statSync(join(ROOT, source)), `${source} is missing`)
  }
})

test("the image's command and health check run the real service, which stops on SIGTERM", async () => {
  const instructions = dockerfile()
  const runtime = instructions.filter((i) => i.stage === lastStage(instructions))
  const cmd = execForm(runtime.find((i) => i.keyword === 'CMD')?.args ?? '')
  const health = execForm(runtime.find((i) => i.keyword === 'HEALTHCHECK')?.args ?? '')
  const home = mkdtempSync(join(tmpdir(), 'pm2-runtime-'))
  const port = await freePort()
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    ...runtimeEnv(instructions),
    // Loopback and private dirs here; the image uses 0.0.0.0 and the node user's home.
    PORT: String(port),
    HOST: '127.0.0.1',
    PM2_HOME: join(home, 'pm2'),
    METRICS_SOCKET_DIR: join(home, 'sock'),
    LOG_LEVEL: 'warn',
  }
  assert.equal(env.NODE_ENV, 'production')
  const [command, ...args] = cmd
  let child: ChildProcess | undefined
  const workerPids = new Set<number>()
  try {
    child = spawn(join(ROOT, command), args, { cwd: ROOT, env, stdio: 'ignore' })
    const exited = new Promise<number | null>((resolve) => child?.on('exit', resolve))
    const base = `http://127.0.0.1:${port}`
    await waitFor(
      'the service to answer /health',
      async () => (await httpGet(`${base}/health`)).status === 200,
      { timeoutMs: 60_000, intervalMs: 300 },
    )
    const probe = () => runCommand(health[0], health.slice(1), { env })
    assert.equal(probe().code, 0, 'HEALTHCHECK fails on a healthy service')

    // Every one of the 5 workers comes up (PM2 starts them one by one) and joins the cluster view.
    await waitFor(
      '5 distinct workers answering',
      async () => {
        const res = await httpGet(`${base}/`)
        workerPids.add((JSON.parse(res.body) as { pid: number }).pid)
        return workerPids.size === 5
      },
      { timeoutMs: 60_000, intervalMs: 50 },
    )
    const metrics = await waitFor('all 5 workers in /metrics', async () => {
      const body = (await httpGet(`${base}/metrics`)).body
      return body.includes('cluster_metrics_workers_answered 5') ? body : undefined
    })
    assert.match(metrics, /http_requests_total\{.*worker_id="4"/)

    child.kill('SIGTERM')
    const code = await exited
    assert.equal(code, 0, 'pm2-runtime exits cleanly on SIGTERM')
    await waitFor('the workers to exit', async () => [...workerPids].every((pid) => !isAlive(pid)))
    assert.notEqual(probe().code, 0, 'HEALTHCHECK passes with the service down')
  } finally {
    await killAll([...(child?.pid ? [child.pid] : []), ...workerPids])
    rmSync(home, { recursive: true, force: true })
  }
})

// ---- docker-compose.yml ----

interface ComposeService {
  image?: string
  build?: { context: string; dockerfile: string }
  ports?: Array<string | { published: number | string; target: number; host_ip?: string }>
  volumes?: Array<{ type: string; source: string; target: string; read_only?: boolean }>
  environment?: Record<string, string>
  healthcheck?: { test: string[] }
  depends_on?: Record<string, { condition: string }>
  command?: string[]
  secrets?: Array<{ source: string }>
  logging?: { driver: string; options?: Record<string, string> }
  deploy?: { resources?: { limits?: { cpus?: string | number; memory?: string } } }
}

interface ComposeFile {
  services: Record<string, ComposeService>
  volumes: Record<string, unknown>
  secrets: Record<string, { file: string }>
}

/** `docker-compose config` with only PATH and HOME (and `env`): no password anywhere. */
const compose = (env: NodeJS.ProcessEnv = {}, ...args: string[]) =>
  runCommand('docker-compose', ['-f', join(ROOT, 'docker-compose.yml'), 'config', ...args], {
    env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env },
  })

function composeConfig(env: NodeJS.ProcessEnv = {}): ComposeFile {
  const result = compose(env)
  assert.equal(result.code, 0, result.stderr)
  return parseYaml(result.stdout)
}

/** Compose 1.29 prints short volume syntax; read it as source, target and mode. */
function volumesOf(service: ComposeService) {
  return (service.volumes ?? []).map((v) => {
    if (typeof v !== 'string') return v
    const [source, target, mode] = (v as string).split(':')
    return {
      type: source.startsWith('/') ? 'bind' : 'volume',
      source,
      target,
      read_only: mode === 'ro',
    }
  })
}

/** Published ports as host address, host port(s) and container port, short or long syntax. */
function portsOf(service: ComposeService) {
  return (service.ports ?? []).map((p) => {
    if (typeof p !== 'string') {
      return { hostIp: p.host_ip ?? '', published: String(p.published), target: p.target }
    }
    const parts = p.replace(/\/\w+$/, '').split(':')
    const target = Number(parts.pop())
    const published = parts.pop() ?? ''
    return { hostIp: parts.pop() ?? '', published, target }
  })
}

test('every compose command but `up` works with no password set; Grafana reads it from a secret', () => {
  const quiet = compose({}, '-q')
  assert.equal(quiet.code, 0, quiet.stderr)
  const { services, secrets } = composeConfig()
  const grafana = services.grafana
  assert.equal(grafana.environment?.GF_SECURITY_ADMIN_PASSWORD, undefined)
  assert.equal(
    grafana.environment?.GF_SECURITY_ADMIN_PASSWORD__FILE,
    '/run/secrets/grafana_admin_password',
  )
  assert.deepEqual(
    grafana.secrets?.map((s) => s.source),
    ['grafana_admin_password'],
  )
  // The secret file is git-ignored (secrets/), and so is .env, where people put variables.
  assert.equal(secrets.grafana_admin_password.file, join(ROOT, 'secrets', 'grafana_admin_password'))
  const ignored = readFileSync(join(ROOT, '.gitignore'), 'utf8').split('\n')
  for (const entry of ['secrets/', '.env']) assert.ok(ignored.includes(entry), entry)
  const moved = composeConfig({ GRAFANA_ADMIN_PASSWORD_FILE: '/etc/stack/grafana-password' })
  assert.equal(moved.secrets.grafana_admin_password.file, '/etc/stack/grafana-password')
})

test('compose: pinned images, read-only config, named data volumes, health checks, start order', () => {
  const { services, volumes } = composeConfig()
  assert.deepEqual(Object.keys(services).sort(), [
    'alertmanager',
    'grafana',
    'prometheus',
    'webapp',
  ])
  assert.equal(services.webapp.build?.dockerfile, 'Dockerfile')
  assert.match(services.prometheus.image ?? '', /^prom\/prometheus:v\d+\.\d+\.\d+$/)
  assert.match(services.alertmanager.image ?? '', /^prom\/alertmanager:v\d+\.\d+\.\d+$/)
  // Grafana 12: the dashboard is the classic JSON model (schemaVersion 41 and up) that file
  // provisioning loads; a new major is a deliberate move.
  assert.match(services.grafana.image ?? '', /^grafana\/grafana:12\.\d+\.\d+$/)

  for (const name of ['prometheus', 'alertmanager', 'grafana']) {
    for (const volume of volumesOf(services[name])) {
      if (volume.type === 'bind')
        assert.equal(volume.read_only, true, `${name}: ${volume.target} not ro`)
      else assert.ok(volume.source in volumes, `${name}: ${volume.source} is not a named volume`)
    }
  }
  assert.ok(
    volumesOf(services.prometheus).some((v) => v.target === '/prometheus' && v.type === 'volume'),
  )
  assert.ok(
    volumesOf(services.alertmanager).some(
      (v) => v.target === '/alertmanager' && v.type === 'volume',
    ),
  )
  assert.ok(
    volumesOf(services.grafana).some((v) => v.target === '/var/lib/grafana' && v.type === 'volume'),
  )
  for (const name of Object.keys(services)) assert.ok(services[name].healthcheck?.test.length, name)
  assert.equal(services.grafana.depends_on?.prometheus.condition, 'service_healthy')
  assert.ok(services.prometheus.depends_on?.webapp)
  assert.ok(services.prometheus.depends_on?.alertmanager)

  const grafanaEnv = services.grafana.environment ?? {}
  assert.equal(grafanaEnv.GF_USERS_ALLOW_SIGN_UP, 'false')
})

/** The upstream release a binary reports: `prometheus, version 3.5.3+ds1 (...)` is 3.5.3. */
function releaseOf(bin: string): string {
  const result = runCommand(bin, ['--version'])
  const match = /version (\d+\.\d+\.\d+)/.exec(result.stdout + result.stderr)
  assert.ok(match, `${bin} --version: ${result.stdout}${result.stderr}`)
  return match[1]
}

/** The flags `bin --help` lists (`--x` and `--[no-]x` are both `x`), and --enable-feature's. */
function helpOf(bin: string): { flags: Set<string>; features: Set<string> } {
  const result = runCommand(bin, ['--help'])
  const help = result.stdout + result.stderr
  const flags = new Set([...help.matchAll(/^\s+--(?:\[no-\])?([a-z0-9.-]+)/gm)].map((m) => m[1]))
  // `--enable-feature= ...  Comma separated feature names to enable. Valid options: a, b, ...
  // See <url>`: Prometheus' one flag with a list of valid values.
  const features = new Set(
    (/--enable-feature=[^\n]*\n\s*Valid options:([\s\S]*?)See\s/.exec(help)?.[1] ?? '')
      .replace(/\(DEPRECATED\)/g, '')
      .split(/[\s,.]+/)
      .filter((word) => word !== ''),
  )
  return { flags, features }
}

test("compose's Prometheus and Alertmanager are the releases the tests run, with flags they have", () => {
  const { services } = composeConfig()
  const images: Array<[string, RegExp, string]> = [
    // Prometheus' 3.5 long-term-support line.
    ['prometheus', /^prom\/prometheus:v(3\.5\.\d+)$/, toolPath('prometheus')],
    ['alertmanager', /^prom\/alertmanager:v(\d+\.\d+\.\d+)$/, toolPath('prometheus-alertmanager')],
  ]
  for (const [name, pattern, bin] of images) {
    const tag = pattern.exec(services[name].image ?? '')
    assert.ok(tag, `${name}: ${services[name].image}`)
    assert.equal(tag[1], releaseOf(bin), `${name}: the image is not the release ${bin} tests`)
    const { flags, features } = helpOf(bin)
    for (const arg of services[name].command ?? []) {
      const [flag, value] = arg.replace(/^--/, '').split(/=(.*)/s)
      assert.ok(flags.has(flag), `${name}: ${bin} --help has no --${flag}`)
      if (flag === 'enable-feature') {
        for (const feature of value.split(',')) {
          assert.ok(features.has(feature), `${name}: no feature ${feature} in ${[...features]}`)
        }
      }
    }
  }
  assert.ok(
    services.prometheus.command?.includes('--enable-feature=exemplar-storage'),
    'exemplar storage',
  )
  // Prometheus 3's image ships no console templates or libraries to point these at.
  assert.deepEqual(
    services.prometheus.command?.filter((arg) => arg.startsWith('--web.console.')),
    [],
  )
})

test('published ports bind 127.0.0.1 unless BIND_ADDRESS says otherwise; /metrics is not published', () => {
  const expected: Record<string, Array<[string, number]>> = {
    webapp: [['5000-5009', 5000]],
    prometheus: [['9090', 9090]],
    alertmanager: [['9093', 9093]],
    grafana: [['3000', 3000]],
  }
  for (const [bind, hostIp] of [
    [undefined, '127.0.0.1'],
    ['0.0.0.0', '0.0.0.0'],
  ] as const) {
    const { services } = composeConfig(bind ? { BIND_ADDRESS: bind } : {})
    for (const [name, ports] of Object.entries(expected)) {
      assert.deepEqual(
        portsOf(services[name]).map((p) => [p.hostIp, p.published, p.target]),
        ports.map(([published, target]) => [hostIp, published, target]),
        name,
      )
    }
  }
  // The service serves /metrics on METRICS_PORT only, which Prometheus scrapes over the compose
  // network (prometheus.yml's DNS discovery port) and no port mapping exposes.
  const { services } = composeConfig()
  const metricsPort = Number(services.webapp.environment?.METRICS_PORT)
  assert.ok(metricsPort > 0)
  assert.notEqual(metricsPort, 5000)
  assert.ok(!portsOf(services.webapp).some((p) => p.target === metricsPort))
  const prometheusYml = readYaml<{
    scrape_configs: Array<{ job_name: string; dns_sd_configs?: Array<{ port: number }> }>
  }>(join(ROOT, 'prometheus', 'prometheus.yml'))
  const webappJob = prometheusYml.scrape_configs.find((job) => job.job_name === 'webapp')
  assert.equal(webappJob?.dns_sd_configs?.[0].port, metricsPort)
})

test("every service's Docker logs rotate, and the webapp's limits hold its measured memory", () => {
  const { services } = composeConfig()
  for (const [name, service] of Object.entries(services)) {
    assert.equal(service.logging?.driver, 'local', name)
    assert.ok(service.logging?.options?.['max-size'], `${name}: max-size`)
    assert.ok(Number(service.logging?.options?.['max-file']) >= 1, `${name}: max-file`)
  }
  const limits = services.webapp.deploy?.resources?.limits
  assert.ok(Number(limits?.cpus) >= 1, 'a CPU limit')
  const mib = (value: string) => {
    const match = /^(\d+(?:\.\d+)?)\s*([KMG])i?B?$/i.exec(value.trim())
    assert.ok(match, value)
    return Number(match[1]) * { K: 1 / 1024, M: 1, G: 1024 }[match[2].toUpperCase() as 'K']
  }
  const memoryLimit = mib(String(limits?.memory))
  // Figures from scripts/measure-rss.ts (real PM2, 5 workers, under load): the limit holds the
  // daemon plus 5 workers at PM2's restart ceiling, and that ceiling is above a worker's peak.
  const measured = JSON.parse(readFileSync(join(ROOT, 'docs', 'rss-measurement.json'), 'utf8')) as {
    loaded: { daemon: { peakMiB: number }; workers: Array<{ peakMiB: number }> }
  }
  const restartAt = mib(
    (require(join(ROOT, 'ecosystem.config.js')) as { apps: Array<{ max_memory_restart: string }> })
      .apps[0].max_memory_restart,
  )
  const workers = Number(services.webapp.environment?.INSTANCES)
  assert.equal(workers, measured.loaded.workers.length)
  assert.ok(restartAt > Math.max(...measured.loaded.workers.map((w) => w.peakMiB)))
  assert.ok(
    memoryLimit >= measured.loaded.daemon.peakMiB + workers * restartAt,
    `${memoryLimit} MiB < daemon + ${workers} x ${restartAt} MiB`,
  )
})

test("compose's webapp health check is the image's own", () => {
  const { services } = composeConfig()
  const instructions = dockerfile()
  const health = instructions.find((i) => i.keyword === 'HEALTHCHECK')
  assert.ok(health)
  assert.deepEqual(services.webapp.healthcheck?.test, ['CMD', ...execForm(health.args)])
})

test('compose mounts exactly the files promtool and the Grafana tests check', () => {
  const { services } = composeConfig()
  const mounts = (name: string) =>
    Object.fromEntries(
      volumesOf(services[name])
        .filter((v) => v.type === 'bind')
        .map((v) => [v.target, v.source]),
    )
  const prom = mounts('prometheus')
  assert.equal(prom['/etc/prometheus/prometheus.yml'], join(ROOT, 'prometheus', 'prometheus.yml'))
  // prometheus.yml loads rules/*.yml relative to itself: the rules mount sits next to it.
  assert.equal(prom['/etc/prometheus/rules'], join(ROOT, 'prometheus', 'rules'))
  assert.ok(services.prometheus.command?.includes('--config.file=/etc/prometheus/prometheus.yml'))
  const check = runCommand(PROMTOOL_BIN, [
    'check',
    'config',
    prom['/etc/prometheus/prometheus.yml'],
  ])
  assert.equal(check.code, 0, check.stderr)

  const grafana = mounts('grafana')
  assert.equal(grafana['/etc/grafana/provisioning'], join(ROOT, 'grafana', 'provisioning'))
  assert.equal(grafana['/etc/grafana/dashboards'], join(ROOT, 'grafana', 'dashboards'))
  const home = services.grafana.environment?.GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH ?? ''
  assert.ok(home.startsWith('/etc/grafana/dashboards/'))
  assert.doesNotThrow(() =>
    statSync(join(ROOT, 'grafana', 'dashboards', home.split('/').at(-1) ?? '')),
  )
})
