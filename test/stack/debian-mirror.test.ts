// scripts/lib/debian-mirror.sh: the scripts that fetch from Debian take the archive from this
// machine's apt sources (read by apt itself, pointed here at a temporary configuration through
// APT_CONFIG), with DEBIAN_MIRROR as the override; no script names a mirror of its own.
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'node:test'

const ROOT = join(__dirname, '..', '..')
const LIB = join(ROOT, 'scripts', 'lib', 'debian-mirror.sh')
// The fallback without package lists matches this machine's own suite.
const CODENAME = /^VERSION_CODENAME=(.*)$/m.exec(readFileSync('/etc/os-release', 'utf8'))?.[1] ?? ''

interface AptState {
  sourcesList?: string
  parts?: Record<string, string>
  // Downloaded package lists: file name -> Release text (an empty Packages index goes beside it).
  releases?: Record<string, string>
}

function debianMirror(state: AptState, env: Record<string, string> = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'apt-'))
  try {
    mkdirSync(join(dir, 'parts'))
    mkdirSync(join(dir, 'lists'))
    writeFileSync(join(dir, 'sources.list'), state.sourcesList ?? '')
    for (const [name, text] of Object.entries(state.parts ?? {})) {
      writeFileSync(join(dir, 'parts', name), text)
    }
    for (const [prefix, text] of Object.entries(state.releases ?? {})) {
      writeFileSync(join(dir, 'lists', `${prefix}_Release`), text)
      writeFileSync(join(dir, 'lists', `${prefix}_main_binary-amd64_Packages`), '')
    }
    writeFileSync(
      join(dir, 'apt.conf'),
      [
        `Dir::Etc::sourcelist "${join(dir, 'sources.list')}";`,
        `Dir::Etc::sourceparts "${join(dir, 'parts')}";`,
        `Dir::State::Lists "${join(dir, 'lists')}";`,
        'APT::Architecture "amd64";',
      ].join('\n'),
    )
    const { DEBIAN_MIRROR: _, ...inherited } = process.env
    const run = spawnSync('bash', ['-c', `. '${LIB}'; debian_mirror`], {
      env: { ...inherited, APT_CONFIG: join(dir, 'apt.conf'), ...env },
      encoding: 'utf8',
    })
    return { status: run.status, stdout: run.stdout.trim(), stderr: run.stderr.trim() }
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

const deb822 = (uri: string, suites: string) =>
  `Types: deb\nURIs: ${uri}\nSuites: ${suites}\nComponents: main\n`

test("without package lists: the deb822 source of the machine's own suite, not -security", () => {
  assert.notEqual(CODENAME, '', 'no VERSION_CODENAME in /etc/os-release')
  const parts = {
    'a-security.sources': deb822('http://security.example/debian-security', `${CODENAME}-security`),
    'debian.sources': `${deb822('http://archive.example/debian/', `${CODENAME}-updates ${CODENAME}`)}`,
  }
  assert.deepEqual(debianMirror({ parts }), {
    status: 0,
    stdout: 'http://archive.example/debian',
    stderr: '',
  })
})

test('without package lists: a one-line source in sources.list', () => {
  const sourcesList = `deb http://list.example/debian ${CODENAME} main\n`
  assert.equal(debianMirror({ sourcesList }).stdout, 'http://list.example/debian')
})

test('with package lists: the source whose Release says Origin and Label Debian', () => {
  // Suites named by alias ("stable") match no codename: the Release files tell them apart.
  const parts = {
    'debian.sources': `${deb822('http://security.example/debian-security', 'stable-security')}\n${deb822('http://archive.example/debian', 'stable')}`,
  }
  const releases = {
    'security.example_debian-security_dists_stable-security':
      'Origin: Debian\nLabel: Debian-Security\nSuite: stable-security\nComponents: main\n',
    'archive.example_debian_dists_stable':
      'Origin: Debian\nLabel: Debian\nSuite: stable\nComponents: main\n',
  }
  assert.equal(debianMirror({ parts, releases }).stdout, 'http://archive.example/debian')
})

test('DEBIAN_MIRROR wins over the sources', () => {
  const sourcesList = `deb http://list.example/debian ${CODENAME} main\n`
  assert.equal(
    debianMirror({ sourcesList }, { DEBIAN_MIRROR: 'http://override.example/debian/' }).stdout,
    'http://override.example/debian',
  )
})

test('no Debian source: a clear error naming DEBIAN_MIRROR, nothing printed', () => {
  const parts = { 'other.sources': deb822('http://other.example/apt', 'nodistro') }
  const run = debianMirror({ parts })
  assert.equal(run.status, 1)
  assert.equal(run.stdout, '')
  assert.match(run.stderr, /set DEBIAN_MIRROR/)
})

test('no shell script names a mirror of its own: every URL comes from the machine or a variable', () => {
  const scripts = join(ROOT, 'scripts')
  const files = [
    ...readdirSync(scripts).map((f) => join(scripts, f)),
    ...readdirSync(join(scripts, 'lib')).map((f) => join(scripts, 'lib', f)),
  ].filter((f) => f.endsWith('.sh'))
  assert.ok(files.some((f) => f.endsWith('other-suite-apt.sh')))
  for (const file of files) {
    assert.doesNotMatch(readFileSync(file, 'utf8'), /\bhttps?:\/\/[a-z0-9]/i, file)
  }
})
