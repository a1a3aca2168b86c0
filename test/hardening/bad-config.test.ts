// Drill: bad configuration. Each invalid environment value stops the service at start with a
// message naming the variable and a non-zero exit: the built server run directly, `pm2 start` of
// the ecosystem file (which checks the same settings before starting workers), the image's
// command, and `npm start` when the workers cannot come online.
import assert from 'node:assert/strict'
import { type ChildProcess, execFile, spawn } from 'node:child_process'
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { type AddressInfo, createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, test } from 'node:test'
import { freePort, httpGet, waitFor } from '../../harness/net'
import { isAlive, killAll, ROOT } from '../../harness/pm2'

const dir = mkdtempSync(join(tmpdir(), 'bad-config-'))
const shortTokenFile = join(dir, 'short-token')
const goodTokenFile = join(dir, 'token')
writeFileSync(shortTokenFile, 'too-short\n', { mode: 0o600 })
writeFileSync(goodTokenFile, 'a-long-enough-metrics-token-0123\n', { mode: 0o600 })
const started: ChildProcess[] = []

after(async () => {
  await killAll(started.flatMap((child) => (child.pid ? [child.pid] : [])))
  rmSync(dir, { recursive: true, force: true })
})

/** A clean environment: the test runner's own variables stay out. */
function env(extra: Record<string, string>): Record<string, string> {
  return { PATH: process.env.PATH ?? '', HOME: dir, HOST: '127.0.0.1', LOG_LEVEL: 'warn', ...extra }
}

function runServer(extra: Record<string, string>) {
  return new Promise<{ code: number | null; stderr: string }>((resolve) => {
    const child = spawn(process.execPath, [join(ROOT, 'dist', 'server.js')], {
      env: env(extra),
      stdio: ['ignore', 'ignore', 'pipe'],
    })
    started.push(child)
    let stderr = ''
    child.stderr?.on('data', (chunk: Buffer) => {
      stderr += chunk.toString()
    })
    const timer = setTimeout(() => child.kill('SIGKILL'), 20_000)
    child.on('exit', (code) => {
      clearTimeout(timer)
      resolve({ code, stderr })
    })
  })
}

// [variable named in the message, environment]
const SERVER_CASES: Array<[string, Record<string, string>]> = [
  ['PORT', { PORT: 'http' }],
  ['PORT', { PORT: '70000' }],
  ['HOST', { HOST: '' }],
  ['LOG_LEVEL', { LOG_LEVEL: 'loud' }],
  ['SLOW_MAX_MS', { SLOW_MAX_MS: '-1' }],
  ['METRICS_BUCKETS', { METRICS_BUCKETS: 'fast,slow' }],
  ['METRICS_BUCKETS', { METRICS_BUCKETS: '0.5,0.1' }],
  ['METRICS_BUCKETS', { METRICS_BUCKETS: '0,1' }],
  ['METRICS_CLUSTER', { METRICS_CLUSTER: 'maybe' }],
  ['METRICS_GATHER_TIMEOUT_MS', { METRICS_GATHER_TIMEOUT_MS: '5' }],
  ['METRICS_GATHER_TIMEOUT_MS', { METRICS_GATHER_TIMEOUT_MS: 'soon' }],
  ['METRICS_TOKEN', { METRICS_TOKEN: 'short' }],
  ['METRICS_TOKEN_FILE', { METRICS_TOKEN_FILE: join(dir, 'missing') }],
  ['METRICS_TOKEN_FILE', { METRICS_TOKEN_FILE: shortTokenFile }],
  [
    'METRICS_TOKEN_FILE',
    { METRICS_TOKEN: 'a-long-enough-metrics-token-0123', METRICS_TOKEN_FILE: goodTokenFile },
  ],
  ['METRICS_PORT', { METRICS_PORT: '0' }],
  ['METRICS_PORT', { PORT: '5999', METRICS_PORT: '5999' }],
  ['HTTP_HEADERS_TIMEOUT_MS', { HTTP_HEADERS_TIMEOUT_MS: '10' }],
  [
    'HTTP_HEADERS_TIMEOUT_MS',
    { HTTP_REQUEST_TIMEOUT_MS: '5000', HTTP_HEADERS_TIMEOUT_MS: '9000', SLOW_MAX_MS: '1000' },
  ],
  ['HTTP_REQUEST_TIMEOUT_MS', { HTTP_REQUEST_TIMEOUT_MS: '2000', SLOW_MAX_MS: '2500' }],
  ['HTTP_KEEP_ALIVE_TIMEOUT_MS', { HTTP_KEEP_ALIVE_TIMEOUT_MS: 'forever' }],
]

test('each invalid value stops the server at start, naming the variable', async (t) => {
  for (const [variable, extra] of SERVER_CASES) {
    const { code, stderr } = await runServer(extra)
    const firstLine = stderr.trim().split('\n')[0]
    t.diagnostic(`${JSON.stringify(extra)} -> exit ${code}: ${firstLine}`)
    assert.notEqual(code, 0, `${JSON.stringify(extra)} exited 0`)
    assert.notEqual(code, null, `${JSON.stringify(extra)} did not stop by itself`)
    assert.match(stderr, new RegExp(`\\b${variable}\\b`), `${JSON.stringify(extra)}: ${stderr}`)
    assert.doesNotMatch(stderr, /^\s+at /m, 'a configuration error prints no stack trace')
  }
})

test('a valid configuration starts and stops cleanly (the control case)', async () => {
  const port = await freePort()
  const child = spawn(process.execPath, [join(ROOT, 'dist', 'server.js')], {
    env: env({ PORT: String(port), METRICS_TOKEN_FILE: goodTokenFile }),
    stdio: 'ignore',
  })
  started.push(child)
  const exited = new Promise<number | null>((resolve) => child.on('exit', resolve))
  await waitFor('the server to answer', async () => {
    return (await httpGet(`http://127.0.0.1:${port}/health`)).status === 200
  })
  child.kill('SIGTERM')
  assert.equal(await exited, 0)
})

test('pm2 start refuses a bad INSTANCES or PORT, naming the variable', async (t) => {
  for (const [variable, extra] of [
    ['INSTANCES', { INSTANCES: 'many' }],
    ['INSTANCES', { INSTANCES: '1000' }],
    ['PORT', { PORT: 'http' }],
    ['METRICS_TOKEN', { METRICS_TOKEN: 'short' }],
  ] as Array<[string, Record<string, string>]>) {
    const home = mkdtempSync(join(tmpdir(), 'pm2-bad-'))
    const result = await new Promise<{ code: number; output: string }>((resolve) => {
      execFile(
        join(ROOT, 'node_modules', '.bin', 'pm2'),
        ['start', join(ROOT, 'ecosystem.config.js')],
        { cwd: ROOT, env: env({ PM2_HOME: home, APP_NAME: 'bad-config', ...extra }) },
        (err, stdout, stderr) =>
          resolve({ code: err ? Number(err.code ?? 1) : 0, output: `${stdout}\n${stderr}` }),
      )
    })
    // The CLI spawned a daemon before reading the file: stop it by its PID.
    try {
      await killAll([Number(readFileSync(join(home, 'pm2.pid'), 'utf8'))])
    } catch {
      // no daemon was left
    }
    rmSync(home, { recursive: true, force: true })
    const line = result.output.split('\n').find((l) => l.includes('invalid configuration'))
    t.diagnostic(`${JSON.stringify(extra)} -> pm2 exit ${result.code}: ${line}`)
    assert.notEqual(result.code, 0)
    assert.match(line ?? '', new RegExp(`\\b${variable}\\b`), result.output)
  }
})

// ---- The image's command (scripts/container-start.sh, then pm2-runtime) and `npm start` ----

interface Exit {
  code: number | null
  output: string
}

/** Runs a command to its end (bounded), with its stdout and stderr together. */
function runToExit(command: string, args: string[], environment: Record<string, string>) {
  return new Promise<Exit>((resolve) => {
    const child = spawn(command, args, { cwd: ROOT, env: environment, stdio: 'pipe' })
    started.push(child)
    let output = ''
    const collect = (chunk: Buffer) => {
      output += chunk.toString()
    }
    child.stdout?.on('data', collect)
    child.stderr?.on('data', collect)
    const timer = setTimeout(() => child.kill('SIGKILL'), 90_000)
    child.on('exit', (code) => {
      clearTimeout(timer)
      resolve({ code, output })
    })
  })
}

/** A loopback port some other process already listens on. */
async function takenPort(): Promise<{ port: number; release: () => Promise<void> }> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  return { port, release: () => new Promise((resolve) => server.close(() => resolve())) }
}

/** Children of the PM2 daemon of this PM2_HOME that are still alive (workers left behind). */
function daemonChildren(home: string): number[] {
  let daemon: number
  try {
    daemon = Number(readFileSync(join(home, 'pm2.pid'), 'utf8').trim())
  } catch {
    return []
  }
  return readdirSync('/proc')
    .filter((name) => /^\d+$/.test(name))
    .filter((pid) => {
      try {
        const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
        return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === daemon
      } catch {
        return false
      }
    })
    .map(Number)
    .filter(isAlive)
}

async function killDaemon(home: string) {
  try {
    await killAll([Number(readFileSync(join(home, 'pm2.pid'), 'utf8'))])
  } catch {
    // no daemon was left
  }
}

const CONTAINER_START = join(ROOT, 'scripts', 'container-start.sh')

test("the image's command exits 78 on a bad configuration, naming the variable", async (t) => {
  for (const [variable, extra] of [
    ['PORT', { PORT: 'notaport' }],
    ['INSTANCES', { INSTANCES: 'many' }],
    ['METRICS_TOKEN_FILE', { METRICS_TOKEN_FILE: join(dir, 'missing') }],
  ] as Array<[string, Record<string, string>]>) {
    const home = mkdtempSync(join(tmpdir(), 'pm2-runtime-bad-'))
    const result = await runToExit(CONTAINER_START, [], env({ PM2_HOME: home, ...extra }))
    rmSync(home, { recursive: true, force: true })
    t.diagnostic(`${JSON.stringify(extra)} -> exit ${result.code}: ${result.output.trim()}`)
    assert.equal(result.code, 78)
    assert.match(result.output, new RegExp(`\\b${variable}\\b`))
  }
})

test('npm run start:foreground runs the same checked start: 78 on a bad PORT, naming it', async () => {
  const home = mkdtempSync(join(tmpdir(), 'pm2-foreground-bad-'))
  try {
    const result = await runToExit(
      'npm',
      ['run', 'start:foreground'],
      env({
        PM2_HOME: home,
        PORT: 'notaport',
        npm_config_cache: join(home, 'npm'),
        npm_config_update_notifier: 'false',
      }),
    )
    // npm exits with the script's own status.
    assert.equal(result.code, 78, result.output)
    assert.match(result.output, /invalid configuration: .*\bPORT\b/)
  } finally {
    rmSync(home, { recursive: true, force: true })
  }
})

test("the image's command exits non-zero when no worker can take the port", async () => {
  const { port, release } = await takenPort()
  const home = mkdtempSync(join(tmpdir(), 'pm2-runtime-port-'))
  try {
    const result = await runToExit(
      CONTAINER_START,
      [],
      env({
        PM2_HOME: home,
        PORT: String(port),
        INSTANCES: '2',
        METRICS_SOCKET_DIR: join(home, 'sock'),
      }),
    )
    assert.notEqual(result.code, 0, result.output)
    assert.notEqual(result.code, null, 'pm2-runtime did not stop by itself')
    assert.match(result.output, new RegExp(`cannot start: PORT \\(127\\.0\\.0\\.1:${port}\\)`))
    // pm2-runtime writes no log files of its own: everything went to its stdout/stderr.
    const logs = join(home, 'logs')
    assert.deepEqual(existsSync(logs) ? readdirSync(logs) : [], [])
  } finally {
    await release()
    rmSync(home, { recursive: true, force: true })
  }
})

test('npm start exits 1 naming the variable when workers cannot start, leaving no worker', async (t) => {
  const { port, release } = await takenPort()
  const notADir = join(dir, 'not-a-directory')
  writeFileSync(notADir, '')
  try {
    for (const [variable, extra] of [
      ['PORT', { PORT: String(port) }],
      ['METRICS_SOCKET_DIR', { PORT: String(await freePort()), METRICS_SOCKET_DIR: notADir }],
    ] as Array<[string, Record<string, string>]>) {
      const home = mkdtempSync(join(tmpdir(), 'pm2-start-'))
      try {
        const result = await runToExit(
          process.execPath,
          [join(ROOT, 'scripts', 'start.js')],
          env({
            PM2_HOME: home,
            APP_NAME: 'start-fails',
            INSTANCES: '2',
            METRICS_SOCKET_DIR: join(home, 'sock'),
            ...extra,
          }),
        )
        const reason = result.output.split('\n').find((l) => l.startsWith('cannot start:'))
        t.diagnostic(`${JSON.stringify(extra)} -> exit ${result.code}: ${reason}`)
        assert.equal(result.code, 1, result.output)
        assert.match(reason ?? '', new RegExp(`^cannot start: ${variable} `), result.output)
        assert.match(result.output, /start-fails: 2 of 2 workers could not start/)
        assert.deepEqual(daemonChildren(home), [], 'a worker was left running')
      } finally {
        await killDaemon(home)
        rmSync(home, { recursive: true, force: true })
      }
    }
  } finally {
    await release()
  }
})
