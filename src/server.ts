// Entry point, for PM2 (cluster mode) or plain `node dist/server.js`: loads the configuration,
// builds the app, listens, tells PM2 it is ready, and shuts down gracefully.
import closeWithGrace from 'close-with-grace'
import { buildApp, listen } from './app'
import { loadConfig, SHUTDOWN_GRACE_MS } from './config'
import { ConnectionDrain } from './lib/connection-drain'

/** Longest wait for clients to leave before Fastify closes what is left (part of the grace). */
const DRAIN_MS = 2500

async function main(): Promise<void> {
  const config = loadConfig()
  const app = await buildApp(config)

  const connections = new ConnectionDrain(app.server)
  closeWithGrace({ delay: SHUTDOWN_GRACE_MS }, async ({ signal, err }) => {
    if (err) app.log.error({ err }, 'shutting down after an error')
    else app.log.info({ signal }, 'shutting down')
    await connections.drain(DRAIN_MS)
    await app.close()
  })

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
