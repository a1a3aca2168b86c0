// Builds the real application for in-process tests: the configuration from an environment
// (validated as at start), a worker outside PM2 unless told otherwise, no logs, closed after
// the test.
import type { FastifyInstance } from 'fastify'
import type { WorkerIdentity } from '../packages/plugin/src/lib/worker-identity'
import { type BuildOptions, buildApp } from '../src/app'
import { loadConfig } from '../src/config'

export const STANDALONE: WorkerIdentity = {
  workerId: '0',
  clusterMode: false,
  appName: undefined,
  instances: undefined,
}

interface TestContext {
  after: (fn: () => unknown) => void
}

export async function build(
  t: TestContext,
  env: Record<string, string> = {},
  options: BuildOptions = {},
): Promise<FastifyInstance> {
  const app = await buildApp(loadConfig(env), { identity: STANDALONE, logger: false, ...options })
  t.after(() => app.close())
  return app
}

/** Listens on a free loopback port, for what inject cannot send (raw bytes, slow sockets). */
export async function listenOnLoopback(
  app: FastifyInstance,
): Promise<{ port: number; url: string }> {
  const url = await app.listen({ port: 0, host: '127.0.0.1' })
  return { port: Number(new URL(url).port), url }
}
