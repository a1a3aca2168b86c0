// Where a PM2 app's workers find each other: one private directory per app and port, and in it
// one unix socket per process plus one link per worker id that points at the current process.
import { mkdirSync } from 'node:fs'
import { tmpdir, userInfo } from 'node:os'
import { join } from 'node:path'

// sun_path is 108 bytes on Linux (104 on macOS); stay under both with the NUL.
const MAX_SOCKET_PATH = 103

export interface SocketPaths {
  dir: string
  /** The link every sibling dials for a worker id: `<dir>/<id>.sock`. */
  linkFor(workerId: string): string
  /** This process' own socket, unique per pid so a reload's overlap never clashes. */
  ownSocket(workerId: string, pid: number): string
}

/**
 * The directory is keyed by app name and port so two PM2 apps, or two copies of one app on
 * different ports, never answer for each other.
 */
export function socketDirFor(appName: string, port: number, baseDir?: string): string {
  const safeName = appName.replace(/[^A-Za-z0-9_.-]/g, '_').slice(0, 40) || 'app'
  const base = baseDir ?? join(tmpdir(), `pm2-metrics-${userInfo().uid}`)
  return join(base, `${safeName}-${port}`)
}

export function createSocketPaths(dir: string): SocketPaths {
  mkdirSync(dir, { recursive: true, mode: 0o700 })
  const paths: SocketPaths = {
    dir,
    linkFor: (workerId) => join(dir, `${workerId}.sock`),
    ownSocket: (workerId, pid) => join(dir, `${workerId}.${pid}.sock`),
  }
  const longest = paths.ownSocket('9999', 4194304)
  if (Buffer.byteLength(longest) > MAX_SOCKET_PATH) {
    throw new Error(
      `metrics socket directory ${JSON.stringify(dir)} is too long for a unix socket path; set METRICS_SOCKET_DIR to a shorter one`,
    )
  }
  return paths
}
