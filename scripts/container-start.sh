#!/bin/sh
# The image's command: checks the configuration, then becomes pm2-runtime. pm2-runtime itself
# logs an ecosystem file's error and exits 0, which restart policies and smoke tests read as
# success; here a bad value stops the container with status 78 (EX_CONFIG) and a message naming
# the variable (ecosystem.config.js checks INSTANCES, APP_NAME and the service's settings).
set -eu
node -e '
try {
  require("./ecosystem.config.js")
} catch (err) {
  process.stderr.write(err.message + "\n")
  process.exit(78)
}'
exec node_modules/.bin/pm2-runtime start ecosystem.config.js "$@"
