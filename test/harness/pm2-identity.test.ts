// The harness signals a pid only while it names the process it recorded: a pid's start time
// (field 22 of /proc/<pid>/stat) is taken when first seen and must match before any signal, so
// a pid the OS has recycled for an unrelated process is left alone.
import assert from 'node:assert/strict'
import { type ChildProcess, spawn } from 'node:child_process'
import { once } from 'node:events'
import { readFileSync } from 'node:fs'
import { test } from 'node:test'
import { identify, isSameProcess, killAll, parseStat } from '../../harness/pm2'

/** A Node child that answers every IPC message with the same message, until told otherwise. */
function echoChild(t: { after: (fn: () => unknown) => void }): ChildProcess & { pid: number } {
  const child = spawn(process.execPath, ['-e', 'process.on("message", (m) => process.send(m))'], {
    stdio: ['ignore', 'ignore', 'ignore', 'ipc'],
  })
  t.after(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
  })
  assert.ok(child.pid !== undefined, 'the child started')
  return child as ChildProcess & { pid: number }
}

/** True if the child answers a message sent now, false if it exits instead. */
function answers(child: ChildProcess): Promise<boolean> {
  return new Promise((resolve) => {
    const onExit = () => resolve(false)
    child.once('exit', onExit)
    child.once('message', () => {
      child.off('exit', onExit)
      resolve(true)
    })
    child.send('ping')
  })
}

test('the start time is field 22, counted after the comm field even if it holds ") "', () => {
  // Fields 3 to 24 of a stat line, numbered by their own field number.
  const rest = Array.from({ length: 22 }, (_, i) => (i === 0 ? 'S' : String(i + 3)))
  const line = `4242 (evil) 1 2 (x) ${rest.join(' ')}\n`
  const fields = parseStat(line)
  assert.equal(fields[0], 'S')
  assert.equal(fields[22 - 3], '22')
  // The same reading as the kernel's own line for this process, whose comm has no spaces.
  const own = readFileSync('/proc/self/stat', 'utf8')
  assert.equal(identify(process.pid)?.startTime, own.split(' ')[21])
})

test('a live process is identified, recognised, and stopped by killAll', async (t) => {
  const child = echoChild(t)
  const recorded = identify(child.pid)
  assert.ok(recorded, 'a running child has an identity')
  assert.equal(recorded.pid, child.pid)
  assert.equal(isSameProcess(recorded), true)
  assert.equal(await answers(child), true)
  const exited = once(child, 'exit')
  await killAll([recorded])
  const [code, signal] = await exited
  assert.equal(code, null)
  assert.equal(signal, 'SIGTERM')
})

test('a pid whose start time no longer matches the record is not signalled', async (t) => {
  const child = echoChild(t)
  const now = identify(child.pid)
  assert.ok(now)
  // The record of an earlier process that had this pid: another start time.
  const earlier = { pid: child.pid, startTime: String(Number(now.startTime) - 1) }
  assert.equal(isSameProcess(earlier), false)
  await killAll([earlier])
  // A SIGTERM sent by killAll would be delivered before the child could read this message.
  assert.equal(await answers(child), true, 'the process now holding the pid was signalled')
  assert.equal(child.signalCode, null)
  assert.equal(isSameProcess(now), true)
})

test('a recorded process that has exited is no longer recognised', async (t) => {
  const child = echoChild(t)
  const recorded = identify(child.pid)
  assert.ok(recorded)
  const exited = once(child, 'exit')
  child.disconnect()
  await exited
  assert.equal(isSameProcess(recorded), false)
  // Nothing is left to signal: killAll returns without touching the pid.
  await killAll([recorded])
})
