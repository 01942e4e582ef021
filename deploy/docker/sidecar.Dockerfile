# syntax=docker/dockerfile:1
#
# Gatehouse sidecar image (`gatehouse-sidecar`): only the sidecar verifier, for every app pod.
#   docker run IMAGE sidecar    proxy :7401 in front of GATEHOUSE_UPSTREAM; ext_authz, /authz,
#                               health and metrics on :7402
# The token service, the CLI and the migrations are in deploy/docker/token-service.Dockerfile.
#
# Build from the repository root (needs BuildKit, the default since Docker 23):
#   docker build -f deploy/docker/sidecar.Dockerfile -t gatehouse-sidecar:dev \
#     --build-arg VERSION=0.1.0 --build-arg REVISION="$(git rev-parse HEAD)" \
#     --build-arg CREATED="$(date -u +%Y-%m-%dT%H:%M:%SZ)" --build-arg SOURCE_URL=<repository URL> .
#
# What runs is the sidecar's esbuild bundle (dist/sidecar: its code, the generated protobuf code and
# the packages it uses, in one file plus lazily loaded chunks) and pino, which it leaves external
# (scripts/runtime-files.mjs); no Prisma, no token service, no TypeScript. GATEHOUSE_RUNTIME=dist
# makes the launcher refuse a missing or stale bundle instead of falling back to tsx (not installed
# here). Read-only-root friendly: nothing is written outside /tmp.
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
# As in token-service.Dockerfile: what `npm ci` and its code generation read, then a fallback for a
# lockfile `npm ci` refuses (npm/cli#8320) that installs the same locked versions without rewriting it.
COPY package.json package-lock.json buf.yaml buf.gen.yaml prisma.config.ts ./
COPY scripts/generate.mjs scripts/generate.mjs
COPY proto/ proto/
COPY prisma/ prisma/
RUN --mount=type=cache,target=/root/.npm \
    { npm ci || npm install --no-save; } \
 && test -d services/gen/proto/gatehouse
COPY tsconfig.json ./
COPY bin/ bin/
COPY services/ services/
COPY scripts/build.mjs scripts/bundle.mjs scripts/sidecar-bundle.mjs scripts/runtime-files.mjs scripts/
ARG REVISION=unknown
RUN REVISION="${REVISION}" node scripts/build.mjs --only sidecar \
 && node scripts/runtime-files.mjs sidecar /runtime

# ---- runtime: the bundle, pino, the launcher ----
FROM ${NODE_IMAGE} AS runtime
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG CREATED=unknown
ARG SOURCE_URL=""
LABEL org.opencontainers.image.title="gatehouse-sidecar" \
      org.opencontainers.image.description="Gatehouse sidecar: verifies tokens and revocations beside an app (reverse proxy, Envoy ext_authz, forward-auth)" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.source="${SOURCE_URL}" \
      org.opencontainers.image.vendor="Gatehouse" \
      org.opencontainers.image.base.name="${NODE_IMAGE}"

RUN groupadd --system --gid 10001 gatehouse \
 && useradd --system --uid 10001 --gid gatehouse --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin gatehouse \
 && rm -rf /usr/local/lib/node_modules/npm /usr/local/lib/node_modules/corepack \
      /usr/local/bin/npm /usr/local/bin/npx /usr/local/bin/corepack \
      /usr/local/bin/yarn /usr/local/bin/yarnpkg /opt/yarn-*

WORKDIR /app
ENV NODE_ENV=production \
    GATEHOUSE_RUNTIME=dist \
    HOME=/tmp \
    TMPDIR=/tmp

COPY --from=build /runtime/ ./
COPY bin/gatehouse.mjs bin/sidecar-bundle.mjs bin/
COPY deploy/docker/healthcheck.mjs deploy/docker/healthcheck.mjs

USER 10001:10001
EXPOSE 7401 7402
# /healthz on the sidecar's control listener (:7402). Pass /readyz to check readiness instead.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
  CMD ["node", "/app/deploy/docker/healthcheck.mjs"]
ENTRYPOINT ["node", "/app/bin/gatehouse.mjs"]
CMD ["sidecar"]
