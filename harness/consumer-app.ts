// The plugin as a user gets it: `npm pack` of packages/plugin, installed into a fresh app in a
// temporary folder with only the packages a user's own app would have besides it (fastify,
// pm2 and one Prometheus client), and the fixture app's files (test/fixtures/own-app).
import { execFile } from 'node:child_process'
import { copyFileSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { ROOT } from './pm2'

const run = promisify(execFile)
const FIXTURE = join(ROOT, 'test', 'fixtures', 'own-app')

/** The Prometheus clients the plugin supports; an app installs one of them. */
export const CLIENTS = ['prom-client', '@prometheus-io/client'] as const
export type ClientName = (typeof CLIENTS)[number]

export interface PackedPlugin {
  /** The tarball's path. */
  tarball: string
  files: Array<{ path: string }>
}

/** Packs the plugin's workspace into `dir`. */
export async function packPlugin(dir: string): Promise<PackedPlugin> {
  const { stdout } = await run(
    'npm',
    ['pack', '--workspace', 'fastify-pm2-cluster-metrics', '--pack-destination', dir, '--json'],
    { cwd: ROOT, maxBuffer: 16 * 1024 * 1024 },
  )
  const [packed] = JSON.parse(stdout.slice(stdout.indexOf('['))) as Array<{
    filename: string
    files: Array<{ path: string }>
  }>
  return { tarball: join(dir, packed.filename), files: packed.files }
}

/** The version of a package this project has installed, so that npm's cache serves it. */
export function installedVersion(name: string): string {
  const manifest = join(ROOT, 'node_modules', name, 'package.json')
  return (JSON.parse(readFileSync(manifest, 'utf8')) as { version: string }).version
}

/**
 * A fresh app in `dir` with the packed plugin, fastify, pm2 and `client`, and the fixture's
 * files; returns `dir`.
 */
export async function installConsumerApp(
  dir: string,
  plugin: PackedPlugin,
  client: ClientName,
): Promise<string> {
  mkdirSync(dir, { recursive: true })
  const dependencies: Record<string, string> = Object.fromEntries(
    ['fastify', 'pm2', client].map((name) => [name, installedVersion(name)]),
  )
  dependencies['fastify-pm2-cluster-metrics'] = `file:${plugin.tarball}`
  writeFileSync(
    join(dir, 'package.json'),
    JSON.stringify({ name: 'own-app', private: true, dependencies }, null, 2),
  )
  await run('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', '--loglevel=error'], {
    cwd: dir,
    maxBuffer: 16 * 1024 * 1024,
  })
  for (const file of readdirSync(FIXTURE)) copyFileSync(join(FIXTURE, file), join(dir, file))
  return dir
}
