# AOF container images: one Dockerfile, one builder stage that produces `aof` once, a
# target per image (coordinator, dashboard, runner, runner-claude-code). Build through
# `make release` (Makefile), which also sets the labels; see README "Images".
#
# Works with the classic builder and with BuildKit/buildx. The classic builder builds
# every stage up to the target, so every stage below works from build args alone:
#   RUST_IMAGE   builder image (default: the public Rust image). Needs cargo unless
#                AOF_PREBUILT names a static `aof` inside the build context; then only
#                `sh` + coreutils are used (CI: a debootstrap'ed Debian stand-in).
#   BASE_IMAGE   Debian base of the runner images (default: debian:bookworm-slim).
#   NODE_IMAGE   has `npm`; fetches the pinned Claude Code CLI from the npm registry.
ARG RUST_IMAGE=docker.io/library/rust:1.95-slim-bookworm
ARG BASE_IMAGE=docker.io/library/debian:bookworm-slim
ARG NODE_IMAGE=docker.io/library/node:22-bookworm-slim

# ---------------------------------------------------------------------------------------
FROM ${RUST_IMAGE} AS builder
# Empty: compile here. A context path (e.g. `.docker-prebuilt/aof`): use that static
# binary instead (CI builds it once on the host and reuses it across runs).
ARG AOF_PREBUILT=
WORKDIR /src
COPY . .
# One static binary (static-pie glibc), so the coordinator and dashboard images can be
# `scratch`. /out/aof is the binary; /out/rootfs the rest of those images: passwd/group
# with the uid 1000 user, CA roots, a writable /tmp, the data dir owned by uid 1000
# (copied as one tree, so modes and owners of the directories survive).
# hadolint ignore=DL4006
RUN set -eu; \
    if [ -n "${AOF_PREBUILT}" ]; then \
      install -D -m 0755 "${AOF_PREBUILT}" /out/aof; \
    else \
      target="$(rustc -vV | sed -n 's/^host: //p')"; \
      RUSTFLAGS='-C target-feature=+crt-static' CARGO_PROFILE_RELEASE_STRIP=symbols \
        cargo build --locked --release -p aof-cli --target "${target}"; \
      install -D -m 0755 "target/${target}/release/aof" /out/aof; \
    fi; \
    /out/aof --version; \
    r=/out/rootfs; \
    mkdir -p "$r/etc/ssl/certs" "$r/tmp" "$r/app/.agent-orchestrator" /out/workspace; \
    chmod 1777 "$r/tmp"; \
    printf 'root:x:0:0:root:/root:/usr/sbin/nologin\naof:x:1000:1000:aof:/app:/usr/sbin/nologin\n' > "$r/etc/passwd"; \
    printf 'root:x:0:\naof:x:1000:\n' > "$r/etc/group"; \
    cp /etc/ssl/certs/ca-certificates.crt "$r/etc/ssl/certs/ca-certificates.crt"; \
    chown -R 1000:1000 "$r/app/.agent-orchestrator" /out/workspace

# ---------------------------------------------------------------------------------------
# The Claude Code CLI: its npm package ships a native, standalone binary per platform
# (no node needed at run time), so only that binary goes into the image.
FROM ${NODE_IMAGE} AS claude-code
ARG CLAUDE_CODE_VERSION=2.1.330
WORKDIR /npm
RUN set -eu; \
    npm install --no-audit --no-fund --omit=dev "@anthropic-ai/claude-code@${CLAUDE_CODE_VERSION}"; \
    arch="$(node -p process.arch)"; \
    install -D -m 0755 "node_modules/@anthropic-ai/claude-code-linux-${arch}/claude" /out/claude; \
    /out/claude --version

# ---------------------------------------------------------------------------------------
# Runner root filesystem: shell, git, CA certificates and tini (PID 1 that reaps the
# agents' orphaned children and forwards SIGTERM). Flattened into one layer below, so
# what is pruned here (apt lists, docs, man pages, locales) costs nothing.
FROM ${BASE_IMAGE} AS runner-rootfs
# Versions are not pinned: the base image's Debian release pins them (hadolint DL3008).
# The dpkg-query list is split on purpose (SC2046).
# hadolint ignore=DL3008,SC2046
RUN set -eu; \
    apt-get update; \
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ca-certificates git tini; \
    apt-get clean; \
    # Perl beyond perl-base serves only git's perl extras (add -i/-p, send-email, svn):
    # ~50 MB unpacked, which the 45 MB budget cannot carry. Core git does not use it.
    dpkg --purge --force-depends liberror-perl $(dpkg-query -W -f '${Package} ' perl 'perl-modules-*' 'libperl5*'); \
    # Servers and mail/IMAP helpers an agent does not use; one git binary, not two;
    # iconv modules (glibc converts UTF-8/ASCII/UCS without them).
    g=/usr/lib/git-core; \
    rm -f "$g/git-daemon" "$g/git-http-backend" "$g/git-http-push" "$g/git-imap-send" \
      "$g/git-shell" "$g/scalar" /usr/bin/git-shell /usr/bin/scalar; \
    ln -sf ../../bin/git "$g/git"; \
    # The runner applies AOF_RUN_RLIMIT_* through util-linux prlimit (Essential in Debian).
    prlimit --version >/dev/null; \
    rm -rf /usr/lib/*-linux-gnu*/gconv; \
    rm -rf /var/lib/apt/lists/* /var/cache/apt/* /var/cache/debconf/*-old /var/log/* \
      /usr/share/doc/* /usr/share/man/* /usr/share/info/* /usr/share/locale/* /usr/share/lintian; \
    getent passwd 1000 >/dev/null || { \
      echo 'aof:x:1000:1000:aof:/app:/bin/sh' >> /etc/passwd; \
      echo 'aof:x:1000:' >> /etc/group; \
    }
# HOME=/app and /workspace belong to uid 1000 (the runner writes there).
COPY --from=builder --chown=1000:1000 /out/rootfs/app /app
COPY --from=builder --chown=1000:1000 /out/workspace /workspace
COPY --from=builder /out/aof /usr/local/bin/aof

# ---------------------------------------------------------------------------------------
FROM scratch AS coordinator
COPY --from=builder /out/rootfs/ /
COPY --from=builder /out/aof /usr/local/bin/aof
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
ARG VERSION=dev REVISION=unknown CREATED=unknown SOURCE=https://example.invalid/aof COMPONENT_VERSION=dev
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
COPY --from=builder /out/aof /usr/local/bin/aof
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
ARG VERSION=dev REVISION=unknown CREATED=unknown SOURCE=https://example.invalid/aof COMPONENT_VERSION=dev
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
# The whole root filesystem on purpose: one layer without what runner-rootfs pruned.
# hadolint ignore=DL3067
COPY --from=runner-rootfs / /
ENV AGENT_ORCHESTRATOR_API_URL=http://coordinator:8765 \
    AOF_DATA_DIR=/app/.agent-orchestrator \
    AOF_WORKSPACE=/workspace \
    AOF_PROJECT_DIR=/workspace \
    AOF_LOG_FORMAT=json \
    AOF_LOG_TARGET=stdout \
    HOME=/app
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
ARG VERSION=dev REVISION=unknown CREATED=unknown SOURCE=https://example.invalid/aof COMPONENT_VERSION=dev
LABEL org.opencontainers.image.title="aof-runner" \
      org.opencontainers.image.description="AOF runner with the command executor (shell, git, CA certificates)" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.licenses="MIT" \
      aof.component="runner" \
      aof.component.version="${COMPONENT_VERSION}"

# ---------------------------------------------------------------------------------------
FROM runner AS runner-claude-code
COPY --from=claude-code /out/claude /usr/local/bin/claude
# The CLI keeps its settings and sessions (needed for resume) on the data volume; no
# auto-update or other non-essential traffic. Credentials come from the environment
# (CLAUDE_CODE_OAUTH_TOKEN or ANTHROPIC_API_KEY), never from the image.
ENV AOF_EXECUTOR=claude_code \
    CLAUDE_CONFIG_DIR=/app/.agent-orchestrator/claude \
    CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1 \
    DISABLE_AUTOUPDATER=1
ARG VERSION=dev REVISION=unknown CREATED=unknown SOURCE=https://example.invalid/aof COMPONENT_VERSION=dev
LABEL org.opencontainers.image.title="aof-runner-claude-code" \
      org.opencontainers.image.description="AOF runner with the Claude Code CLI" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.licenses="MIT" \
      aof.component="runner-claude-code" \
      aof.component.version="${COMPONENT_VERSION}"
