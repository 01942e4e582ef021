# syntax=docker/dockerfile:1
#
# Gatehouse token service image (`gatehouse`): the token service, the admin CLI and the migrations.
#   docker run IMAGE serve      token service (gRPC :7400, HTTP :7480)
#   docker run IMAGE migrate    apply database migrations, then exit
#   docker run IMAGE keys list  any other `gatehouse` command
# The sidecar has its own, smaller image: deploy/docker/sidecar.Dockerfile.
#
# Build from the repository root (needs BuildKit, the default since Docker 23):
#   docker build -f deploy/docker/token-service.Dockerfile -t gatehouse:dev \
#     --build-arg VERSION=0.1.0 --build-arg REVISION="$(git rev-parse HEAD)" \
#     --build-arg CREATED="$(date -u +%Y-%m-%dT%H:%M:%SZ)" --build-arg SOURCE_URL=<repository URL> .
#
# Run it the way production does (see deploy/compose.yaml for the whole stack):
#   docker run --read-only --tmpfs /tmp --cap-drop ALL --security-opt no-new-privileges:true \
#     -e DATABASE_URL -e GATEHOUSE_ISSUER -e GATEHOUSE_MASTER_KEY -p 7400:7400 -p 7480:7480 gatehouse:dev serve
#
# What runs is compiled JavaScript only: the esbuild bundle of `npm run build` (dist/cli) and the
# few packages it leaves external (scripts/runtime-files.mjs), no TypeScript, tsx, esbuild, Prisma
# CLI, PGlite or pino-pretty. GATEHOUSE_RUNTIME=dist makes the launcher refuse a missing or stale
# build instead of falling back. Read-only-root friendly: nothing is written outside /tmp, and the
# files belong to root, so the process (uid 10001) could not change them even on a writable root.
#
# For reproducible production builds pin the base by digest:
#   --build-arg NODE_IMAGE=node:24-bookworm-slim@sha256:<digest>
ARG NODE_IMAGE=node:24-bookworm-slim

# ---- build: the full install from the lockfile, code generation, the bundle, its runtime files ----
FROM ${NODE_IMAGE} AS build
WORKDIR /app
ENV CI=true \
    NPM_CONFIG_AUDIT=false \
    NPM_CONFIG_FUND=false \
    NPM_CONFIG_UPDATE_NOTIFIER=false
# Only what `npm ci` reads, including the inputs of its postinstall code generation
# (scripts/generate.mjs: buf generate from proto/, prisma generate from prisma/), so this layer stays
# cached until the lockfile, the protos or the schema change.
COPY package.json package-lock.json buf.yaml buf.gen.yaml prisma.config.ts ./
COPY scripts/generate.mjs scripts/generate.mjs
COPY proto/ proto/
COPY prisma/ prisma/
# The lockfile lists only the platform builds of biome, buf and esbuild that the registry we develop
# against serves, and `npm ci` refuses a lockfile without the others (npm/cli#8320): then
# `npm install --no-save` installs the same locked versions without rewriting the lockfile (as
# .ci/run does).
RUN --mount=type=cache,target=/root/.npm \
    { npm ci || npm install --no-save; } \
 && test -f services/gen/prisma/client.ts \
 && test -d services/gen/proto/gatehouse
COPY tsconfig.json ./
COPY bin/ bin/
COPY services/ services/
COPY scripts/build.mjs scripts/bundle.mjs scripts/sidecar-bundle.mjs scripts/runtime-files.mjs scripts/
ARG REVISION=unknown
RUN REVISION="${REVISION}" node scripts/build.mjs --only cli \
 && node scripts/runtime-files.mjs token-service /runtime

# ---- runtime: the bundle, the packages it needs, the launcher, the migrations ----
FROM ${NODE_IMAGE} AS runtime
# Stamped by the release build; SOURCE_URL is where the repository is published.
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG CREATED=unknown
ARG SOURCE_URL=""
LABEL org.opencontainers.image.title="gatehouse" \
      org.opencontainers.image.description="Gatehouse token service: issues, refreshes and revokes tokens for microservice platforms" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.source="${SOURCE_URL}" \
      org.opencontainers.image.vendor="Gatehouse" \
      org.opencontainers.image.base.name="${NODE_IMAGE}"

# A fixed numeric uid/gid, so Kubernetes' runAsNonRoot can verify the user from the image alone.
# npm, npx, corepack and yarn are removed: nothing installs at run time, and they are the bulk of
# the base image's scanner findings.
# jemalloc replaces glibc's malloc (LD_PRELOAD below, linked at one path on every architecture): the
# service used 0.83-0.97x the CPU per Refresh in paired runs (median 0.93x; docs/operations.md,
# "Sizing"); with glibc ~9 % of its time went to malloc. MALLOC_CONF hands freed pages back within a
# second, so idle RSS stays below glibc's (109-111 against 116 MB). The benchmarks run
# `gatehouse serve` the same way (bench/lib/image-allocator.ts reads MALLOC_CONF from here).
RUN groupadd --system --gid 10001 gatehouse \
 && useradd --system --uid 10001 --gid gatehouse --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin gatehouse \
 && rm -rf /usr/local/lib/node_modules/npm /usr/local/lib/node_modules/corepack \
      /usr/local/bin/npm /usr/local/bin/npx /usr/local/bin/corepack \
      /usr/local/bin/yarn /usr/local/bin/yarnpkg /opt/yarn-* \
 && apt-get update \
 && apt-get install -y --no-install-recommends libjemalloc2 \
 && rm -rf /var/lib/apt/lists/* \
 && ln -s "$(dpkg -L libjemalloc2 | grep '/libjemalloc\.so\.2$')" /usr/local/lib/libjemalloc.so.2

WORKDIR /app
ENV NODE_ENV=production \
    GATEHOUSE_RUNTIME=dist \
    HOME=/tmp \
    TMPDIR=/tmp \
    LD_PRELOAD=/usr/local/lib/libjemalloc.so.2 \
    MALLOC_CONF=background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0

COPY --from=build /runtime/ ./
COPY bin/gatehouse.mjs bin/sidecar-bundle.mjs bin/
COPY prisma/migrations/ prisma/migrations/
COPY deploy/docker/healthcheck.mjs deploy/docker/healthcheck.mjs

USER 10001:10001
EXPOSE 7400 7480
# /healthz on the token service's HTTP listener (:7480). Pass /readyz to check readiness instead.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
  CMD ["node", "/app/deploy/docker/healthcheck.mjs"]
ENTRYPOINT ["node", "/app/bin/gatehouse.mjs"]
CMD ["--help"]
