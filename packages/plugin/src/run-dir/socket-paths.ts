// Where a PM2 app's workers find each other: one private directory per app and port, and in it
// one unix socket per process, one link per worker id that points at the process speaking for
// it, and the handover a stopping process leaves for the next process of its worker id.
import { createHash, randomBytes } from 'node:crypto'
import { mkdirSync } from 'node:fs'
import { tmpdir, userInfo } from 'node:os'
import { dirname, join } from 'node:path'
import { ensurePrivateDir } from './private-dir'

// sun_path is 108 bytes on Linux (104 on macOS); stay under both with the NUL.
const MAX_SOCKET_PATH = 103
/** Longest directory name a key becomes under the shared temporary directory. */
const MAX_KEY_LENGTH = 20

/** Longest worker id: with the instance token, a socket's name stays short enough for sun_path. */
export const MAX_WORKER_ID_LENGTH = 32
/** Worker ids are names in this directory: no dots, no slashes (`../x` is refused). */
export const WORKER_ID_PATTERN = new RegExp(`^[A-Za-z0-9_-]{1,${MAX_WORKER_ID_LENGTH}}$`)
/**
 * A process' instance: its pid and a random token, `<pid>-<token>`. The token tells two
 * processes apart even when a pid is reused; the pid tells at once that a process is gone.
 */
const TOKEN_LENGTH = 8
const INSTANCE = `[0-9]{1,10}-[a-f0-9]{${TOKEN_LENGTH}}`
/** The longest pid Linux gives (pid_max is at most 4194304). */
const LONGEST_PID = '4194304'
const ID = `[A-Za-z0-9_-]{1,${MAX_WORKER_ID_LENGTH}}`
const LINK_NAME = new RegExp(`^(${ID})\\.sock$`)
const OWN_SOCKET_NAME = new RegExp(`^(${ID})\\.(${INSTANCE})\\.sock$`)
const CLAIM_NAME = new RegExp(`^(${ID})\\.handover\\.(${INSTANCE})\\.claimed$`)
const HANDOVER_NAME = new RegExp(`^(${ID})\\.handover\\.json$`)

export class InvalidWorkerIdError extends Error {
  override name = 'InvalidWorkerIdError'
}

/** Refuses a worker id that cannot name files in the socket directory. */
export function checkWorkerId(workerId: string): string {
  if (!WORKER_ID_PATTERN.test(workerId)) {
    throw new InvalidWorkerIdError(
      `worker id ${JSON.stringify(workerId)} must be 1 to ${MAX_WORKER_ID_LENGTH} letters, digits, "_" or "-"`,
    )
  }
  return workerId
}

/** A new instance for this process: its pid and a random token. */
export function newInstance(pid = process.pid): string {
  return `${pid}-${randomBytes(TOKEN_LENGTH / 2).toString('hex')}`
}

/** The pid of an instance. */
export function pidOfInstance(instance: string): number {
  return Number.parseInt(instance, 10)
}

export interface SocketPaths {
  dir: string
  /** The link every sibling dials for a worker id: `<dir>/<id>.sock`. */
  linkFor(workerId: string): string
  /** A process' own socket, unique per process so a reload's overlap never clashes. */
  ownSocket(workerId: string, instance: string): string
  /** Left by a process that has begun to stop: if it dies, its worker id is not expected back. */
  stoppingMarkFor(socketName: string): string
  /** Final counts a stopping process leaves for its worker id's next process. */
  handoverFor(workerId: string): string
  /** A handover being taken by one successor: others wait for that successor instead. */
  claimFor(workerId: string, instance: string): string
  /** Makes the directory (and the service's own parent) if missing, checking both are private. */
  ensure(): void
}

/**
 * The directory is keyed (by app name, and the service adds its port) so two PM2 apps, or two
 * copies of one app, never answer for each other. By default its parent, `pm2-metrics-<uid>`,
 * is the user's own and is checked as well: under TMPDIR when a socket of any worker id fits
 * there, otherwise under /tmp, since a long TMPDIR (macOS gives ~50 bytes) leaves no room in
 * sun_path. The choice depends on TMPDIR and the key alone, so every worker of the app makes
 * the same one.
 */
export function socketDirFor(key: string, baseDir?: string): string {
  const name = keyDirName(key)
  if (baseDir !== undefined) return join(baseDir, name)
  const underTmpdir = join(ownBaseDirs()[0], name)
  return fitsSunPath(underTmpdir) ? underTmpdir : join(ownBaseDirs()[1], name)
}

function keyDirName(key: string): string {
  const safeKey = key.replace(/[^A-Za-z0-9_.-]/g, '_') || 'app'
  // A long key is shortened, and kept distinct by a digest, so a socket's path stays in sun_path.
  if (safeKey.length <= MAX_KEY_LENGTH) return safeKey
  const digest = createHash('sha256').update(key).digest('hex').slice(0, 8)
  return `${safeKey.slice(0, MAX_KEY_LENGTH - 9)}-${digest}`
}

/**
 * The user's own parents of default socket directories: under TMPDIR, and the short one under
 * /tmp (not $XDG_RUNTIME_DIR: it is removed at logout, while PM2 outlives the session).
 */
function ownBaseDirs(): [string, string] {
  const name = `pm2-metrics-${userInfo().uid}`
  return [join(tmpdir(), name), join('/tmp', name)]
}

/** The longest path a process of `workerId` (any worker id by default) binds in `dir`. */
function longestSocketPath(dir: string, workerId = 'x'.repeat(MAX_WORKER_ID_LENGTH)): string {
  return join(dir, ownSocketName(workerId, `${LONGEST_PID}-${'f'.repeat(TOKEN_LENGTH)}`))
}

function fitsSunPath(dir: string, workerId?: string): boolean {
  return Buffer.byteLength(longestSocketPath(dir, workerId)) <= MAX_SOCKET_PATH
}

function ownSocketName(workerId: string, instance: string): string {
  return `${workerId}.${instance}.sock`
}

/**
 * The paths of `dir`, made and checked private. `workerId` is this process' worker id: its
 * socket must fit in sun_path there (each worker checks its own; any worker id when omitted).
 */
export function createSocketPaths(dir: string, workerId?: string): SocketPaths {
  const ownParent = ownBaseDirs().includes(dirname(dir))
  const paths: SocketPaths = {
    dir,
    linkFor: (workerId) => join(dir, `${workerId}.sock`),
    ownSocket: (workerId, instance) => join(dir, ownSocketName(workerId, instance)),
    stoppingMarkFor: (socketName) => join(dir, `${socketName}.stopping`),
    handoverFor: (workerId) => join(dir, `${workerId}.handover.json`),
    claimFor: (workerId, instance) => join(dir, `${workerId}.handover.${instance}.claimed`),
    ensure: () => {
      if (ownParent) ensurePrivateDir(dirname(dir))
      else mkdirSync(dirname(dir), { recursive: true, mode: 0o700 })
      ensurePrivateDir(dir)
    },
  }
  if (!fitsSunPath(dir, workerId)) {
    const bytes = Buffer.byteLength(longestSocketPath(dir, workerId))
    throw new Error(
      `metrics socket directory ${JSON.stringify(dir)} is too long for a unix socket path (a worker's socket there takes up to ${bytes} bytes, at most ${MAX_SOCKET_PATH} fit); set the plugin option cluster.socketDir to a shorter directory`,
    )
  }
  paths.ensure()
  return paths
}

/** The worker id a link names, or `undefined` if `name` is not a link. */
export function workerIdOfLink(name: string): string | undefined {
  return LINK_NAME.exec(name)?.[1]
}

/** Worker id and instance token of a process socket's file name, or `undefined`. */
export function parseOwnSocket(name: string): { workerId: string; instance: string } | undefined {
  const match = OWN_SOCKET_NAME.exec(name)
  return match ? { workerId: match[1], instance: match[2] } : undefined
}

/** The worker id a handover's file name is for, or `undefined` if `name` is not a handover. */
export function workerIdOfHandover(name: string): string | undefined {
  return HANDOVER_NAME.exec(name)?.[1]
}

/** Worker id and claiming instance of a handover claim's file name, or `undefined`. */
export function parseClaim(name: string): { workerId: string; instance: string } | undefined {
  const match = CLAIM_NAME.exec(name)
  return match ? { workerId: match[1], instance: match[2] } : undefined
}
