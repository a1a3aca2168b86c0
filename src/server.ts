// Entry point, for PM2 (cluster mode) or plain `node dist/server.js`: loads the configuration,
// builds the app, listens, tells PM2 it is ready, and shuts down gracefully.
import closeWithGrace from 'close-with-grace'
import { buildApp, listen } from './app'
import { DRAIN_ACCEPT_MS, HARD_STOP_MS, loadConfig, SHUTDOWN_GRACE_MS } from './config'
import { ConnectionDrain } from './lib/connection-drain'

async function main(): Promise<void> {
  const config = loadConfig()
  const app = await buildApp(config)

  const connections = new ConnectionDrain(app.server)
  // The first uncaught error stops the worker gracefully (exit 1); one thrown while stopping
  // (a client's socket, a timer) is logged and the stop goes on, so the counts are still handed
  // over. close-with-grace alone would exit at once on that second error.
  let fatal: unknown
  let stopping = false
  const shutdown = closeWithGrace(
    {
      delay: SHUTDOWN_GRACE_MS,
      logger: false,
      skip: ['uncaughtException', 'unhandledRejection'],
      onTimeout: (ms) => app.log.error({ grace_ms: ms }, 'the stop outlasted its grace; exiting'),
      onSecondSignal: (signal) => app.log.warn({ signal }, 'second signal while stopping; exiting'),
    },
    async ({ signal }) => {
      stopping = true
      if (fatal !== undefined) app.log.error({ err: fatal }, 'shutting down after an error')
      else app.log.info({ signal }, 'shutting down')
      const began = performance.now()
      app.metrics.beginStop()
      await connections.drain({
        acceptMs: DRAIN_ACCEPT_MS,
        hardStopMs: HARD_STOP_MS,
        onHardStop: (requests) =>
          app.log.warn({ requests }, 'requests still running at the end of the grace were cut off'),
      })
      app.log.info({ ms: Math.round(performance.now() - began) }, 'connections drained')
      try {
        await app.close()
      } catch (err) {
        app.log.error({ err }, 'closing the app failed')
        throw err
      }
      app.log.info({ ms: Math.round(performance.now() - began) }, 'stopped')
      if (fatal !== undefined) process.exit(1)
    },
  )
  const onError = (err: unknown) => {
    if (stopping) {
      app.log.error({ err }, 'error while shutting down')
      return
    }
    fatal = err
    void shutdown.close()
  }
  process.on('uncaughtException', onError)
  process.on('unhandledRejection', onError)

  await listen(app, config)
  // PM2's wait_ready: the worker takes traffic only once it really listens.
  process.send?.('ready')
}

// Errors that name what to fix are printed as they are; anything else with its stack.
const EXPLAINED = new Set(['ConfigError', 'UnsafeDirectoryError'])

main().catch((err: unknown) => {
  const error = err as Error
  const message = EXPLAINED.has(error.name) ? error.message : error.stack
  process.stderr.write(`${message}\n`)
  process.exit(1)
})
