# The service as a container image: TypeScript built with dev dependencies in one stage,
# production dependencies installed in another, and a slim runtime that runs the PM2
# ecosystem file in the foreground (pm2-runtime) as the unprivileged `node` user.
# Node 24 (the current LTS, the same major as `engines` and the dev dependency `node` that runs the
# tests) on Debian 13 trixie (glibc: the toolchain's native binaries need it).
ARG NODE_IMAGE=node:24.21.0-trixie-slim

FROM ${NODE_IMAGE} AS build
WORKDIR /app
# The service and the plugin package it uses by name (an npm workspace).
COPY package.json package-lock.json ./
COPY packages/plugin/package.json ./packages/plugin/
# No install scripts: the image has its own Node 24, so the `node` dev dependency's download
# (its preinstall) is not needed, and `prepare` would build before the sources are copied.
RUN npm ci --no-fund --no-audit --ignore-scripts
COPY tsconfig.json tsconfig.build.json ./
COPY packages/plugin/tsconfig.build.json ./packages/plugin/
COPY packages/plugin/src ./packages/plugin/src
COPY src ./src
RUN npm run build

FROM ${NODE_IMAGE} AS deps
WORKDIR /app
COPY package.json package-lock.json ./
COPY packages/plugin/package.json ./packages/plugin/
RUN npm ci --omit=dev --ignore-scripts --no-fund --no-audit && npm cache clean --force

FROM ${NODE_IMAGE} AS runtime
ENV NODE_ENV=production \
    PORT=5000 \
    HOST=0.0.0.0 \
    PM2_HOME=/home/node/.pm2
WORKDIR /app
# Owned by root and read-only to the service: it writes only to PM2_HOME and /tmp (sockets).
COPY --from=deps /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY --from=build /app/packages/plugin/dist ./packages/plugin/dist
COPY package.json ecosystem.config.js ./
COPY packages/plugin/package.json ./packages/plugin/
COPY scripts/container-start.sh ./scripts/
USER node
EXPOSE 5000
# Node's own fetch: the slim image has neither curl nor wget.
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.PORT||5000)+'/health').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
# Checks the configuration (non-zero exit naming the variable), then execs pm2-runtime, which stays
# in the foreground, forwards SIGTERM/SIGINT to the workers and exits with them; it exits non-zero
# once PM2 gave up on every worker (max_restarts), e.g. when the port is taken.
CMD ["scripts/container-start.sh"]
