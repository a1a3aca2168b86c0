// Writes the dashboard JSON that Grafana provisions: `npm run dashboard`.
import { mkdirSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { dashboardJson } from './dashboard'

export const DASHBOARD_FILE = join(__dirname, '..', 'dashboards', 'webapp-workers.json')

if (require.main === module) {
  mkdirSync(dirname(DASHBOARD_FILE), { recursive: true })
  writeFileSync(DASHBOARD_FILE, dashboardJson())
  console.log(`wrote ${DASHBOARD_FILE}`)
}
