// Child processes of the bench: forked TypeScript scripts with an IPC channel, pinned to CPUs
// on demand, and stopped by PID.
import { type ChildProcess, execFile, fork } from 'node:child_process'
import { promisify } from 'node:util'
import { isAlive, killAll } from '../../harness/pm2'

const run = promisify(execFile)

/** A program that runs node itself, e.g. valgrind: `<execPath> <wrapperArgs> node <flags> script`. */
export interface Wrapper {
  execPath: string
  wrapperArgs: string[]
}

export function forkScript(
  script: string,
  args: string[] = [],
  execArgv: string[] = [],
  wrapper?: Wrapper,
) {
  // TypeScript through tsx; compiled JavaScript (the instruction-count bench) as it is.
  const loader = script.endsWith('.ts') ? ['--import', 'tsx'] : []
  const nodeArgs = [...loader, ...execArgv]
  const child = fork(script, args, {
    execPath: wrapper?.execPath ?? process.execPath,
    execArgv: wrapper ? [...wrapper.wrapperArgs, process.execPath, ...nodeArgs] : nodeArgs,
    env: { ...process.env, NODE_OPTIONS: '' },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  })
  if (child.pid === undefined) throw new Error(`could not start ${script}`)
  return child as ChildProcess & { pid: number }
}

/** The next IPC message accepted by `accept`, or a rejection on exit or timeout. */
export function nextMessage<T>(
  child: ChildProcess,
  accept: (message: unknown) => T | undefined,
  timeoutMs: number,
  what: string,
): Promise<T> {
  return new Promise((resolve, reject) => {
    const cleanup = () => {
      clearTimeout(timer)
      child.off('message', onMessage)
      child.off('exit', onExit)
    }
    const onMessage = (message: unknown) => {
      const value = accept(message)
      if (value === undefined) return
      cleanup()
      resolve(value)
    }
    const onExit = (code: number | null) => {
      cleanup()
      reject(new Error(`${what}: process ${child.pid} exited (${code})`))
    }
    const timer = setTimeout(() => {
      cleanup()
      reject(new Error(`${what}: no answer within ${timeoutMs} ms`))
    }, timeoutMs)
    child.on('message', onMessage)
    child.on('exit', onExit)
  })
}

/** Pins every thread of `pid` to the given CPU list (e.g. "0" or "0-1"). */
export async function pinToCpus(pid: number, cpus: string): Promise<void> {
  await run('taskset', ['-a', '-p', '-c', cpus, String(pid)])
}

/** Asks a child to close over IPC, then makes sure it is gone (SIGTERM, SIGKILL) by PID. */
export async function stopChild(child: ChildProcess & { pid: number }, graceMs = 5000) {
  if (isAlive(child.pid) && child.connected) {
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
    child.send({ type: 'close' })
    await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, graceMs))])
  }
  await killAll([child.pid])
}
