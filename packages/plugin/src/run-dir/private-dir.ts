// The workers' sockets live in a directory only this uid may enter. A directory someone else
// made, or one that others can write, would let them plant a socket that answers for a worker
// (their series in every scrape), so it is refused rather than repaired: as tmux and ssh-agent
// do, the directory is checked without following links, and never chmod'ed or chown'ed.
import { lstatSync, mkdirSync } from 'node:fs'

/** What is wrong with a directory, as a bounded label value. */
export type UnsafeReason = 'symlink' | 'not_directory' | 'foreign_owner' | 'shared_mode'

export class UnsafeDirectoryError extends Error {
  override name = 'UnsafeDirectoryError'

  constructor(
    message: string,
    readonly reason: UnsafeReason,
  ) {
    super(message)
  }
}

/**
 * Makes `dir` if it is missing (mode 0700), then checks it: a real directory (not a link),
 * owned by this process' uid, no access for group or others. Throws `UnsafeDirectoryError`
 * naming the path and what is wrong.
 */
export function ensurePrivateDir(dir: string): void {
  try {
    mkdirSync(dir, { mode: 0o700 })
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err
  }
  checkPrivateDir(dir)
}

/** The checks of `ensurePrivateDir` on an existing path, without creating anything. */
function checkPrivateDir(dir: string): void {
  const stat = lstatSync(dir)
  const refuse = (reason: UnsafeReason, what: string) => {
    throw new UnsafeDirectoryError(
      `metrics socket directory ${JSON.stringify(dir)} is not private: ${what}; remove it or set the plugin option cluster.socketDir to a directory of your own with mode 0700`,
      reason,
    )
  }
  if (stat.isSymbolicLink()) refuse('symlink', 'it is a symbolic link')
  if (!stat.isDirectory()) refuse('not_directory', 'it is not a directory')
  const uid = process.getuid?.()
  if (uid !== undefined && stat.uid !== uid) {
    refuse('foreign_owner', `it is owned by uid ${stat.uid}, not ${uid}`)
  }
  if ((stat.mode & 0o077) !== 0) {
    refuse(
      'shared_mode',
      `its mode is ${(stat.mode & 0o777).toString(8).padStart(4, '0')}, group or others have access`,
    )
  }
}
