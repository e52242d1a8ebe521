# AOF container images: one Dockerfile, one builder stage that produces two static `aof`
# builds — `coordinator` (coordinator, dashboard, admin commands; no runner or executors)
# for the coordinator and dashboard images, `runner` (runner + executors; no coordinator,
# stores or dashboard server) for the runner images (crates/cli/Cargo.toml features) — and
# a target per image (coordinator, dashboard, runner, runner-claude-code). The
# coordinator build also holds the Matrix bridge (`aof matrix-bridge`, feature matrix). Build through
# `make release` (Makefile), which also sets the labels; see README "Images".
#
# Compressed size budgets (Makefile BUDGET_*, README "Images"): coordinator and
# dashboard 20 MB, runner 45 MB, runner-claude-code 280 MB.
#
# Works with the classic builder and with BuildKit/buildx. The classic builder builds
# every stage up to the target, so every stage below works from build args alone:
#   RUST_IMAGE   builder image (default: the public Rust image). Needs cargo unless
#                AOF_PREBUILT names a directory inside the build context with static
#                `aof-coordinator` and `aof-runner` builds; then only `sh` + coreutils
#                are used (CI: a debootstrap'ed Debian stand-in).
#   BASE_IMAGE   Debian base of the runner images (default: debian:bookworm-slim).
#   NODE_IMAGE   node + npm: fetches the pinned Claude Code CLI from the npm registry,
#                and its node/npm/npx go into the Claude Code image.
ARG RUST_IMAGE=docker.io/library/rust:1.95-slim-bookworm
ARG BASE_IMAGE=docker.io/library/debian:bookworm-slim
ARG NODE_IMAGE=docker.io/library/node:22-bookworm-slim

# ---------------------------------------------------------------------------------------
# The workspace's skeleton: manifests, lock file, build scripts and empty sources. It only
# changes when a manifest does, so the dependency layer below stays cached across
# source-only changes (what cargo-chef does, with sh).
FROM ${RUST_IMAGE} AS skeleton
WORKDIR /src
COPY . .
RUN set -eu; \
    s=/skeleton; mkdir -p "$s"; cp Cargo.toml Cargo.lock "$s/"; \
    for m in crates/*/Cargo.toml; do \
      d="${m%/Cargo.toml}"; mkdir -p "$s/$d/src"; cp "$m" "$s/$d/"; \
      if [ -f "$d/build.rs" ]; then cp "$d/build.rs" "$s/$d/"; fi; \
      : > "$s/$d/src/lib.rs"; \
      for b in "$d"/src/main.rs "$d"/benches/*.rs; do \
        if [ -f "$b" ]; then mkdir -p "$s/${b%/*}"; echo 'fn main() {}' > "$s/$b"; fi; \
      done; \
    done

# ---------------------------------------------------------------------------------------
FROM ${RUST_IMAGE} AS builder
# Empty: compile here. A context directory (e.g. `.docker-prebuilt`) holding static
# `aof-coordinator` and `aof-runner` builds: use those (CI builds them on the host).
ARG AOF_PREBUILT=
WORKDIR /src
ENV RUSTFLAGS='-C target-feature=+crt-static' CARGO_PROFILE_RELEASE_STRIP=symbols
# Dependencies first, from the skeleton: both feature sets (see the header).
COPY --from=skeleton /skeleton/ /src/
# hadolint ignore=DL4006
RUN set -eu; \
    if [ -z "${AOF_PREBUILT}" ]; then \
      target="$(rustc -vV | sed -n 's/^host: //p')"; \
      for f in coordinator,matrix runner; do \
        cargo build --locked --release -p aof-cli --no-default-features --features "$f" --target "${target}"; \
      done; \
    fi
COPY . .
# One static binary (static-pie glibc) per feature set, so the coordinator and dashboard
# images can be `scratch`. /out/<set>/aof are the binaries; /out/rootfs the rest of those
# images: passwd/group with the uid 1000 user, CA roots, a writable /tmp, the data dir
# owned by uid 1000 (copied as one tree, so modes and owners of the directories survive).
# The sources are touched: COPY keeps their old mtimes, and cargo would take the
# skeleton's empty crates for up to date.
# hadolint ignore=DL4006
RUN set -eu; \
    for f in coordinator runner; do \
      if [ -n "${AOF_PREBUILT}" ]; then \
        install -D -m 0755 "${AOF_PREBUILT}/aof-$f" "/out/$f/aof"; \
      else \
        target="$(rustc -vV | sed -n 's/^host: //p')"; \
        find crates -name '*.rs' -exec touch {} +; \
        feats="$f"; if [ "$f" = coordinator ]; then feats=coordinator,matrix; fi; \
        cargo build --locked --release -p aof-cli --no-default-features --features "$feats" --target "${target}"; \
        install -D -m 0755 "target/${target}/release/aof" "/out/$f/aof"; \
      fi; \
      "/out/$f/aof" --version; \
    done; \
    mkdir -p /out/wheels; \
    if [ -n "${AOF_PREBUILT}" ]; then find "${AOF_PREBUILT}" -maxdepth 1 -name 'uv-*.whl' -exec cp {} /out/wheels/ \; ; fi; \
    r=/out/rootfs; \
    mkdir -p "$r/etc/ssl/certs" "$r/tmp" "$r/app/.agent-orchestrator" /out/workspace; \
    chmod 1777 "$r/tmp"; \
    printf 'root:x:0:0:root:/root:/usr/sbin/nologin\naof:x:1000:1000:aof:/app:/usr/sbin/nologin\n' > "$r/etc/passwd"; \
    printf 'root:x:0:\naof:x:1000:\n' > "$r/etc/group"; \
    cp /etc/ssl/certs/ca-certificates.crt "$r/etc/ssl/certs/ca-certificates.crt"; \
    chown -R 1000:1000 "$r/app/.agent-orchestrator" /out/workspace

# ---------------------------------------------------------------------------------------
# The Claude Code CLI: its npm package ships a native, standalone binary per platform,
# so only that binary goes into the image — plus node, npm and npx themselves, which
# agents and their `npx` MCP servers use.
FROM ${NODE_IMAGE} AS claude-code
ARG CLAUDE_CODE_VERSION=2.1.330
WORKDIR /npm
RUN set -eu; \
    npm install --no-audit --no-fund --omit=dev "@anthropic-ai/claude-code@${CLAUDE_CODE_VERSION}"; \
    arch="$(node -p process.arch)"; \
    install -D -m 0755 "node_modules/@anthropic-ai/claude-code-linux-${arch}/claude" /out/claude; \
    /out/claude --version; \
    install -D -m 0755 "$(command -v node)" /out/node/bin/node; \
    mkdir -p /out/node/lib; \
    cp -a "$(dirname "$(dirname "$(readlink -f "$(command -v npm)")")")" /out/node/lib/npm; \
    rm -rf /out/node/lib/npm/docs /out/node/lib/npm/man

# ---------------------------------------------------------------------------------------
# Runner root filesystem: shell, git, CA certificates and tini (PID 1 that reaps the
# agents' orphaned children and forwards SIGTERM). Pruned (scripts/release/prune-rootfs.sh:
# git's perl extras, servers, docs, locales) and flattened into one layer below.
FROM ${BASE_IMAGE} AS runner-rootfs
# Versions are not pinned: the base image's Debian release pins them (hadolint DL3008);
# the apt lists go with the pruning (DL3009).
# hadolint ignore=DL3008,DL3009
RUN set -eu; \
    apt-get update; \
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ca-certificates git tini; \
    apt-get clean

FROM runner-rootfs AS runner-pruned
COPY scripts/release/prune-rootfs.sh /usr/local/sbin/prune-rootfs
RUN sh /usr/local/sbin/prune-rootfs && rm /usr/local/sbin/prune-rootfs
# HOME=/app and /workspace belong to uid 1000 (the runner writes there).
COPY --from=builder --chown=1000:1000 /out/rootfs/app /app
COPY --from=builder --chown=1000:1000 /out/workspace /workspace
COPY --from=builder /out/runner/aof /usr/local/bin/aof

# ---------------------------------------------------------------------------------------
# The Claude Code image's root filesystem: the runner's, plus what agents and MCP
# servers run (`npx …`, `uvx …`, python3 scripts, curl), pruned and flattened the same way.
FROM runner-rootfs AS claude-code-rootfs
# hadolint ignore=DL3008,DL3009
RUN set -eu; \
    apt-get update; \
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3 curl; \
    apt-get clean
# uv/uvx for `uvx …` MCP servers: the static binaries from uv's PyPI wheel, pinned by
# version and sha256 per architecture. AOF_PREBUILT may hold the wheel (CI fetches it on
# the host, whose network needs its own CA); else it comes from PyPI's simple index.
ARG UV_VERSION=0.13.9
ARG UV_SHA256_X86_64=d7f459fe4fd247d830351c75686d3996ace3c6f3f728eb0e85a30b7ada0cef19
ARG UV_SHA256_AARCH64=5435c5ce14a56431208ca0996416d310f1598e8c2c8ba707688985a16bb82dbe
COPY --from=builder /out/wheels/ /tmp/wheels/
# hadolint ignore=DL4006
RUN set -eu; \
    arch="$(uname -m)"; \
    case "$arch" in \
      x86_64) sum="${UV_SHA256_X86_64}" ;; \
      aarch64) sum="${UV_SHA256_AARCH64}" ;; \
      *) echo "no pinned uv wheel for $arch" >&2; exit 1 ;; \
    esac; \
    whl="$(find /tmp/wheels -name "uv-${UV_VERSION}-py3-none-manylinux_2_17_${arch}*.whl" | head -n 1)"; \
    if [ -z "$whl" ]; then \
      url="$(curl -fsSL https://pypi.org/simple/uv/ | grep -o "https://[^\"#]*/uv-${UV_VERSION}-py3-none-manylinux_2_17_${arch}[^\"#]*\.whl" | head -n 1)"; \
      whl=/tmp/uv.whl; curl -fsSL -o "$whl" "$url"; \
    fi; \
    echo "$sum  $whl" | sha256sum -c -; \
    python3 -c 'import sys,zipfile; z=zipfile.ZipFile(sys.argv[1]); [open("/usr/local/bin/"+n.rsplit("/",1)[1],"wb").write(z.read(n)) for n in z.namelist() if n.endswith(("/scripts/uv","/scripts/uvx"))]' "$whl"; \
    chmod 0755 /usr/local/bin/uv /usr/local/bin/uvx; \
    rm -rf /tmp/wheels /tmp/uv.whl; \
    uv --version; uvx --version
COPY scripts/release/prune-rootfs.sh /usr/local/sbin/prune-rootfs
RUN sh /usr/local/sbin/prune-rootfs && rm /usr/local/sbin/prune-rootfs
COPY --from=builder --chown=1000:1000 /out/rootfs/app /app
COPY --from=builder --chown=1000:1000 /out/workspace /workspace
COPY --from=builder /out/runner/aof /usr/local/bin/aof
COPY --from=claude-code /out/node/bin/node /usr/local/bin/node
COPY --from=claude-code /out/node/lib/npm /usr/local/lib/node_modules/npm
COPY --from=claude-code /out/claude /usr/local/bin/claude
RUN set -eu; \
    ln -s ../lib/node_modules/npm/bin/npm-cli.js /usr/local/bin/npm; \
    ln -s ../lib/node_modules/npm/bin/npx-cli.js /usr/local/bin/npx; \
    node --version; npm --version; npx --version; python3 --version; curl --version >/dev/null; claude --version

# ---------------------------------------------------------------------------------------
FROM scratch AS coordinator
COPY --from=builder /out/rootfs/ /
COPY --from=builder /out/coordinator/aof /usr/local/bin/aof
# Inside a container the coordinator must listen on all interfaces; with auth off that
# needs AOF_INSECURE_LISTEN (a warning is logged). Publish the port on 127.0.0.1 or set
# AUTH_ENABLED=true (README "Images", SECURITY.md). With auth off the API answers only
# `localhost`, IP addresses and the names in AOF_ALLOWED_HOSTS (set it to the name other
# containers use, e.g. `coordinator`); CORS_ORIGINS is unset (same origin only) and `*`
# is refused.
ENV AOF_DATA_DIR=/app/.agent-orchestrator \
    AOF_LISTEN=0.0.0.0:8765 \
    AOF_INSECURE_LISTEN=true \
    AOF_LOG_FORMAT=json \
    AOF_LOG_TARGET=stdout \
    SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
WORKDIR /app
USER 1000:1000
VOLUME ["/app/.agent-orchestrator"]
EXPOSE 8765
HEALTHCHECK --interval=10s --timeout=5s --start-period=10s --retries=3 \
  CMD ["/usr/local/bin/aof", "health", "http://127.0.0.1:8765"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/aof"]
CMD ["coordinator"]
ARG VERSION=dev REVISION=unknown CREATED=unknown SOURCE= COMPONENT_VERSION=dev
LABEL org.opencontainers.image.title="aof-coordinator" \
      org.opencontainers.image.description="AOF coordinator: sessions, runs, event log, agent registry" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.licenses="MIT" \
      aof.component="coordinator" \
      aof.component.version="${COMPONENT_VERSION}"

# ---------------------------------------------------------------------------------------
FROM scratch AS dashboard
COPY --from=builder /out/rootfs/ /
COPY --from=builder /out/coordinator/aof /usr/local/bin/aof
ENV AGENT_ORCHESTRATOR_API_URL=http://coordinator:8765 \
    AOF_DATA_DIR=/app/.agent-orchestrator \
    AOF_LOG_FORMAT=json \
    AOF_LOG_TARGET=stdout \
    SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
WORKDIR /app
USER 1000:1000
VOLUME ["/app/.agent-orchestrator"]
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=5s --start-period=10s --retries=3 \
  CMD ["/usr/local/bin/aof", "health", "http://127.0.0.1:8080"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/aof"]
CMD ["dashboard", "--listen", "0.0.0.0:8080"]
ARG VERSION=dev REVISION=unknown CREATED=unknown SOURCE= COMPONENT_VERSION=dev
LABEL org.opencontainers.image.title="aof-dashboard" \
      org.opencontainers.image.description="AOF dashboard: web UI over the coordinator API" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.licenses="MIT" \
      aof.component="dashboard" \
      aof.component.version="${COMPONENT_VERSION}"

# ---------------------------------------------------------------------------------------
FROM scratch AS runner
# The whole root filesystem on purpose: one layer without what runner-pruned pruned.
# hadolint ignore=DL3067
COPY --from=runner-pruned / /
# Default executor: `command` running `sh -s` — an agent without an executor of its own
# gets its prompt as a shell script, run in its workspace (git, coreutils). Blueprints
# may pick their own (`command`, `model_api`); AOF_EXECUTOR / AOF_COMMAND change it.
ENV AGENT_ORCHESTRATOR_API_URL=http://coordinator:8765 \
    AOF_DATA_DIR=/app/.agent-orchestrator \
    AOF_WORKSPACE=/workspace \
    AOF_PROJECT_DIR=/workspace \
    AOF_LOG_FORMAT=json \
    AOF_LOG_TARGET=stdout \
    HOME=/app \
    AOF_EXECUTOR=command \
    AOF_COMMAND="sh -s"
WORKDIR /workspace
USER 1000:1000
VOLUME ["/app/.agent-orchestrator", "/workspace"]
# The runner serves nothing; healthy = the coordinator it works for answers.
HEALTHCHECK --interval=10s --timeout=5s --start-period=10s --retries=3 \
  CMD ["/usr/local/bin/aof", "health"]
STOPSIGNAL SIGTERM
# tini only, so `docker run IMAGE sh|git|id …` works too.
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["aof", "runner"]
ARG VERSION=dev REVISION=unknown CREATED=unknown SOURCE= COMPONENT_VERSION=dev
LABEL org.opencontainers.image.title="aof-runner" \
      org.opencontainers.image.description="AOF runner: command executor (sh -s) with shell, git, CA certificates" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.licenses="MIT" \
      aof.component="runner" \
      aof.component.version="${COMPONENT_VERSION}"

# ---------------------------------------------------------------------------------------
# Not `FROM runner`: its own flattened root filesystem (node, npm, python3, curl) and
# its own default executor. Each run's Claude Code CLI gets its session's own config
# dir, `CLAUDE_CONFIG_DIR=/workspace/.sessions/<session>/claude` (settings, transcripts
# for resume; AOF_WORKSPACE), set by the executor — so none is set here. A
# CLAUDE_CODE_OAUTH_TOKEN (or ANTHROPIC_API_KEY) from the environment is all the CLI
# needs: `claude -p` has no onboarding step (scripts/ci/images.sh runs it headless).
# No auto-update or other non-essential traffic; credentials never in the image.
FROM scratch AS runner-claude-code
# hadolint ignore=DL3067
COPY --from=claude-code-rootfs / /
ENV AGENT_ORCHESTRATOR_API_URL=http://coordinator:8765 \
    AOF_DATA_DIR=/app/.agent-orchestrator \
    AOF_WORKSPACE=/workspace \
    AOF_PROJECT_DIR=/workspace \
    AOF_LOG_FORMAT=json \
    AOF_LOG_TARGET=stdout \
    HOME=/app \
    AOF_EXECUTOR=claude_code \
    CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1 \
    DISABLE_AUTOUPDATER=1
WORKDIR /workspace
USER 1000:1000
VOLUME ["/app/.agent-orchestrator", "/workspace"]
HEALTHCHECK --interval=10s --timeout=5s --start-period=10s --retries=3 \
  CMD ["/usr/local/bin/aof", "health"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["aof", "runner"]
ARG VERSION=dev REVISION=unknown CREATED=unknown SOURCE= COMPONENT_VERSION=dev
LABEL org.opencontainers.image.title="aof-runner-claude-code" \
      org.opencontainers.image.description="AOF runner with the Claude Code CLI, node/npm/npx, python3, curl, git" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.licenses="MIT" \
      aof.component="runner-claude-code" \
      aof.component.version="${COMPONENT_VERSION}"
