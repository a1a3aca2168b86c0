// Where a PM2 app's workers find each other: one private directory per app and port, and in it
// one unix socket per process, one link per worker id that points at the process speaking for
// it, and the handover a stopping process leaves for the next process of its worker id.
import { mkdirSync } from 'node:fs'
import { tmpdir, userInfo } from 'node:os'
import { dirname, join } from 'node:path'
import { ensurePrivateDir } from './private-dir'

// sun_path is 108 bytes on Linux (104 on macOS); stay under both with the NUL.
const MAX_SOCKET_PATH = 103

/** Worker ids are names in this directory: no dots, no slashes (config enforces it). */
export const WORKER_ID_PATTERN = /^[A-Za-z0-9_-]{1,64}$/
const LINK_NAME = /^([A-Za-z0-9_-]{1,64})\.sock$/
const OWN_SOCKET_NAME = /^([A-Za-z0-9_-]{1,64})\.(\d+)\.sock$/

export interface SocketPaths {
  dir: string
  /** The link every sibling dials for a worker id: `<dir>/<id>.sock`. */
  linkFor(workerId: string): string
  /** This process' own socket, unique per pid so a reload's overlap never clashes. */
  ownSocket(workerId: string, pid: number): string
  /** Final counts a stopping process leaves for its worker id's next process. */
  handoverFor(workerId: string): string
  /** Makes the directory (and the service's own parent) if missing, checking both are private. */
  ensure(): void
}

/**
 * The directory is keyed (by app name, and the service adds its port) so two PM2 apps, or two
 * copies of one app, never answer for each other. Under the shared temporary directory its
 * parent, `pm2-metrics-<uid>`, is the service's own and is checked as well.
 */
export function socketDirFor(key: string, baseDir?: string): string {
  const safeKey = key.replace(/[^A-Za-z0-9_.-]/g, '_').slice(0, 48) || 'app'
  return join(baseDir ?? defaultBaseDir(), safeKey)
}

function defaultBaseDir(): string {
  return join(tmpdir(), `pm2-metrics-${userInfo().uid}`)
}

export function createSocketPaths(dir: string): SocketPaths {
  const ownParent = dirname(dir) === defaultBaseDir()
  const paths: SocketPaths = {
    dir,
    linkFor: (workerId) => join(dir, `${workerId}.sock`),
    ownSocket: (workerId, pid) => join(dir, `${workerId}.${pid}.sock`),
    handoverFor: (workerId) => join(dir, `${workerId}.handover.json`),
    ensure: () => {
      if (ownParent) ensurePrivateDir(dirname(dir))
      else mkdirSync(dirname(dir), { recursive: true, mode: 0o700 })
      ensurePrivateDir(dir)
    },
  }
  const longest = paths.ownSocket('x'.repeat(16), 4194304)
  if (Buffer.byteLength(longest) > MAX_SOCKET_PATH) {
    throw new Error(
      `metrics socket directory ${JSON.stringify(dir)} is too long for a unix socket path; set METRICS_SOCKET_DIR to a shorter one`,
    )
  }
  paths.ensure()
  return paths
}

/** The worker id a link names, or `undefined` if `name` is not a link. */
export function workerIdOfLink(name: string): string | undefined {
  return LINK_NAME.exec(name)?.[1]
}

/** Worker id and pid of a process socket's file name, or `undefined`. */
export function parseOwnSocket(name: string): { workerId: string; pid: number } | undefined {
  const match = OWN_SOCKET_NAME.exec(name)
  return match ? { workerId: match[1], pid: Number(match[2]) } : undefined
}
