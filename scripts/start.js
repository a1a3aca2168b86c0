// `npm start`: starts the ecosystem file with the project's own PM2 in the background, then waits
// until every worker is online, or PM2 gave up on one (min_uptime / max_restarts). On failure it
// prints the worker's own error (which names the variable), deletes the app so no restart loop
// is left behind, and exits 1; `pm2 start` alone would report "launched" and exit 0.
const { execFileSync, spawnSync } = require('node:child_process')
const { readFileSync } = require('node:fs')
const { join, resolve } = require('node:path')

const ROOT = resolve(__dirname, '..')
const PM2 = join(ROOT, 'node_modules', '.bin', 'pm2')
const ECOSYSTEM = join(ROOT, 'ecosystem.config.js')
/** Longest wait for the workers to settle: PM2's own retries end well before. */
const SETTLE_MS = 120_000
const POLL_MS = 500

const sleep = (ms) => new Promise((done) => setTimeout(done, ms))

function fail(message) {
  process.stderr.write(`${message}\n`)
  process.exit(1)
}

/** This app's processes as PM2 lists them. */
function processesOf(name) {
  const out = execFileSync(PM2, ['jlist'], { cwd: ROOT, encoding: 'utf8' })
  return JSON.parse(out.slice(out.indexOf('['))).filter((p) => p.name === name)
}

/** The last lines of a worker's error log: the worker's own message on why it could not start. */
function lastErrorLines(proc, count = 5) {
  try {
    const lines = readFileSync(proc.pm2_env.pm_err_log_path, 'utf8').trim().split('\n')
    return lines.filter((line) => !/^\s+at /.test(line)).slice(-count)
  } catch {
    return []
  }
}

/** Online, and either never restarted or up longer than PM2's own idea of a stable start. */
function isStable(proc) {
  const env = proc.pm2_env
  return (
    env.status === 'online' &&
    (env.restart_time === 0 || Date.now() - env.pm_uptime >= (env.min_uptime ?? 1000))
  )
}

/**
 * PM2 stopped restarting it (max_restarts reached). With a restart delay PM2 shows such a worker
 * as 'waiting restart' rather than 'errored', with no pid and its created_at cleared.
 */
function gaveUp(proc) {
  const env = proc.pm2_env
  return env.status === 'errored' || (proc.pid === 0 && env.created_at == null)
}

async function main() {
  let app
  try {
    app = require(ECOSYSTEM).apps[0]
  } catch (err) {
    fail(err.message)
  }
  const started = spawnSync(PM2, ['start', ECOSYSTEM], { cwd: ROOT, stdio: 'inherit' })
  if (started.status !== 0) process.exit(started.status ?? 1)

  const deadline = Date.now() + SETTLE_MS
  let procs = processesOf(app.name)
  while (Date.now() < deadline) {
    if (procs.length > 0 && procs.every(isStable)) {
      process.stdout.write(`${app.name}: ${procs.length} workers online\n`)
      return
    }
    // Wait for PM2 to give up on every failing worker before deleting: a delete while a
    // restart is pending can leave a worker behind.
    if (procs.every((p) => isStable(p) || gaveUp(p))) break
    await sleep(POLL_MS)
    procs = processesOf(app.name)
  }

  const failed = procs.filter((p) => !isStable(p))
  const reasons = new Set(failed.flatMap((p) => lastErrorLines(p)))
  spawnSync(PM2, ['delete', app.name], { cwd: ROOT, stdio: 'ignore' })
  fail(
    [
      `${app.name}: ${failed.length} of ${procs.length} workers could not start; the app was deleted.`,
      ...reasons,
    ].join('\n'),
  )
}

main().catch((err) => fail(err.stack))
