import { unlinkSync } from 'node:fs'

/** Unlinks `path`; one already gone is no error, any other failure is thrown. */
export function removeIfPresent(path: string): void {
  try {
    unlinkSync(path)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
  }
}
