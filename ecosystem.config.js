// PM2 process file: the service in cluster mode, one worker per instance, all on one port.
// PM2 require()s this file, so it stays CommonJS. Settings come from the environment:
//   APP_NAME (webapp), INSTANCES (5), PORT (5000), HOST (0.0.0.0); see README for the rest.
const envSchema = require('env-schema')

const env = (() => {
  try {
    return envSchema({
      dotenv: false,
      schema: {
        type: 'object',
        properties: {
          APP_NAME: { type: 'string', pattern: '^[A-Za-z0-9_.-]{1,40}$', default: 'webapp' },
          // PM2 takes a count, or 'max' / 0 / -1 for "per CPU"; the cluster view understands all.
          INSTANCES: {
            anyOf: [
              { type: 'integer', minimum: -64, maximum: 64 },
              { type: 'string', const: 'max' },
            ],
            default: 5,
          },
        },
      },
    })
  } catch (err) {
    throw new Error(`invalid configuration: ${err.message}`)
  }
})()

// The service's own settings (PORT, METRICS_*, ...) are checked here as well, once built, so
// `pm2 start` fails at once naming the variable instead of PM2 restarting workers that cannot
// start.
const built = (file) => require('node:path').join(__dirname, 'dist', file)
if (require('node:fs').existsSync(built('config.js'))) {
  const { loadConfig, resolveMetricsToken } = require(built('config.js'))
  resolveMetricsToken(loadConfig())
}

// 'max' / 0 mean one worker per CPU, -N that many fewer. PM2 counts os.cpus(), the host's cores, even in a container
// limited to fewer: count the CPUs the cgroup quota allows instead (the workers do the same).
function instancesFor(value) {
  if (value !== 'max' && value > 0) return value
  const cpus = builtLibrary()?.usableCpus()
  if (cpus === undefined) return value
  return value === 'max' || value === 0 ? cpus : Math.max(1, cpus + value)
}

// The plugin package, once built (npm start builds it first).
function builtLibrary() {
  try {
    return require('fastify-pm2-cluster-metrics')
  } catch (err) {
    if (err.code === 'MODULE_NOT_FOUND') return undefined
    throw err
  }
}

// Under pm2-runtime (the container's command, `npm run start:foreground`) every line already goes
// to its stdout/stderr, where Docker or systemd collects it: PM2's own files would be a second,
// never-rotated copy. A background `pm2 start` keeps them, for `pm2 logs`.
const inForeground = require('node:path').basename(process.argv[1] ?? '') === 'pm2-runtime'
const logFiles = inForeground ? { out_file: '/dev/null', error_file: '/dev/null' } : {}

module.exports = {
  apps: [
    {
      name: env.APP_NAME,
      script: './dist/server.js',
      exec_mode: 'cluster',
      instances: instancesFor(env.INSTANCES),
      // The worker calls process.send('ready') once it listens: reloads wait for it, so
      // `pm2 reload` swaps workers one by one without dropping a connection.
      wait_ready: true,
      listen_timeout: 10000,
      // SIGINT first; the app drains in-flight requests within 4 s, then PM2 may SIGKILL.
      kill_timeout: 6000,
      // Above a worker's measured peak under a storm of concurrent scrapers (about 260 MB,
      // docs/performance.md; V8 keeps that memory for a while afterwards), and about 3x its RSS
      // under normal load (docs/operations.md): a leak still restarts it. 5 of them fit the compose
      // memory limit with the daemon.
      max_memory_restart: '320M',
      // V8 grows a worker's young generation from 16 to 32 MiB under a burst of scrapes and
      // shrinks it back only in a collection, which an idle worker does not run: capped at its
      // starting size, a worker keeps about half as much after a burst, with the same scrape
      // throughput and CPU (docs/performance.md, docs/design.md).
      node_args: ['--max-semi-space-size=8'],
      exp_backoff_restart_delay: 100,
      // A worker that dies within 10 s of its start is failing at start (port taken, socket
      // directory unusable): after 5 such restarts PM2 stops it (status errored) instead of
      // looping; pm2-runtime then exits non-zero and `npm start` reports the worker's error.
      min_uptime: 10000,
      max_restarts: 5,
      merge_logs: true,
      ...logFiles,
      env: {
        NODE_ENV: 'production',
      },
    },
  ],
}
