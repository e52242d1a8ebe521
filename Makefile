# Release tooling for the AOF container images (README "Images").
#
#   make release VERSION=1.2.3 [REGISTRY=ghcr.io/org] [PUSH=true] [BUILD_PLATFORMS=linux/amd64,linux/arm64]
#   make release-coordinator|release-runner|release-dashboard VERSION=…
#   make image-check VERSION=…        labels, uid 1000, HEALTHCHECK, size budgets
#   make local-up|local-logs|local-down   the docker-compose.yml quickstart
#
# Every image of a release gets the same version, labels and tag set (scripts/release/tags.sh):
# the version's tags, `sha-<7 hex>` of HEAD, and with REF=<git ref> (CI) a branch or pr-N tag.
# Without BUILD_PLATFORMS: `docker build` (classic builder or BuildKit) for the host's
# platform, `docker push` per tag. With it: `docker buildx build --platform … --push`.

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c

DOCKER ?= docker
COMPOSE ?= $(shell command -v docker-compose >/dev/null 2>&1 && echo docker-compose || echo docker compose)
REGISTRY ?= aof
PUSH ?= false
BUILD_PLATFORMS ?=
# Extra `docker build` flags (CI: `--network host`; stand-in base images via --build-arg).
DOCKER_BUILD_FLAGS ?=
# buildx registry cache, e.g. CACHE_REF=ghcr.io/org/aof-cache (CI sets it).
CACHE_REF ?=
REF ?=
CLAUDE_CODE_VERSION ?= 2.1.330

GIT_SHA := $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
CREATED := $(shell date -u +%Y-%m-%dT%H:%M:%SZ)
# The OCI source label: Cargo.toml's `repository`, the one place the URL is kept
# (Chart.yaml `sources` is checked against it by scripts/ci/helm.sh).
SOURCE ?= $(shell sed -n 's/^repository *= *"\(.*\)"/\1/p' Cargo.toml)
AOF_CRATE_VERSION := $(shell sed -n 's/^version *= *"\(.*\)"/\1/p' Cargo.toml | head -n1)
# Labels carry the version without a leading v; a branch or PR build (REF, no VERSION)
# is labelled <crate version>-dev.<sha>.
LABEL_VERSION = $(if $(VERSION),$(patsubst v%,%,$(VERSION)),$(AOF_CRATE_VERSION)-dev.$(shell git rev-parse --short=7 HEAD 2>/dev/null))

# Computed once, on first use (not for targets that need no tags).
TAGS = $(eval TAGS := $(shell scripts/release/tags.sh $(if $(VERSION),--version '$(VERSION)') $(if $(filter unknown,$(GIT_SHA)),,--sha $(GIT_SHA)) $(if $(REF),--ref '$(REF)') || echo TAGS_FAILED))$(TAGS)

# component → Dockerfile target (= image name suffix) and aof.component.version
IMAGES_coordinator := coordinator
IMAGES_dashboard := dashboard
IMAGES_runner := runner runner-claude-code
COMPONENT_VERSION_coordinator = $(AOF_CRATE_VERSION)
COMPONENT_VERSION_dashboard = $(AOF_CRATE_VERSION)
COMPONENT_VERSION_runner = $(AOF_CRATE_VERSION)
COMPONENT_VERSION_runner-claude-code = $(AOF_CRATE_VERSION)+claude-code.$(CLAUDE_CODE_VERSION)

# Compressed size budgets in MB (a check fails above them and prints the layers); the
# same numbers are in the Dockerfile header and README "Images".
BUDGET_coordinator := 20
BUDGET_dashboard := 20
# The runner images hold an `aof` built with the `runner` feature only (no coordinator,
# stores or dashboard server: Dockerfile, crates/cli/Cargo.toml).
BUDGET_runner := 45
# The CLI's native binary alone is ~165 MB compressed; node/npm/npx, python3 and curl
# for agents and their MCP servers come on top.
BUDGET_runner-claude-code := 280

# A literal comma inside $(if …) arguments.
, := ,

.PHONY: release release-coordinator release-runner release-dashboard image-check \
        tags-test local-up local-logs local-down check-version \
        image-coordinator image-dashboard image-runner image-runner-claude-code

release: release-coordinator release-runner release-dashboard

check-version:
	@[[ -n "$(VERSION)$(REF)" ]] || { echo "make: VERSION is required, e.g. make release VERSION=1.0.0 (or REF=refs/heads/… in CI)" >&2; exit 2; }
	@[[ "$(TAGS)" != *TAGS_FAILED* ]] || { echo "make: cannot compute tags for VERSION=$(VERSION)" >&2; exit 2; }
	@[[ "$(PUSH)" != true || "$(REGISTRY)" == */* ]] || { echo "make: PUSH=true needs REGISTRY=host/org" >&2; exit 2; }
	@[[ "$(SOURCE)" == http*://* ]] || { echo "make: no source URL (Cargo.toml [workspace.package] repository)" >&2; exit 2; }
	@[[ "$(PUSH)" != true || "$(SOURCE)" != *.invalid/* || "$(REGISTRY)" == 127.0.0.1:* || "$(REGISTRY)" == localhost:* ]] || { echo "make: Cargo.toml repository is still the placeholder $(SOURCE); set the project's real URL before publishing (it becomes the images' org.opencontainers.image.source)" >&2; exit 2; }
	@echo "release $(LABEL_VERSION) of $(GIT_SHA); tags: $(TAGS)"

IMAGE_TARGETS := image-coordinator image-dashboard image-runner image-runner-claude-code

release-coordinator: image-coordinator
release-dashboard: image-dashboard
release-runner: image-runner image-runner-claude-code

# One `docker build`/`buildx build` per image; all targets share the builder stage, so
# `aof` is compiled once (layer cache, or buildx's shared stage).
$(IMAGE_TARGETS): image-%: check-version
	@echo "=== $(REGISTRY)/aof-$*"
	$(if $(BUILD_PLATFORMS),$(DOCKER) buildx build --platform '$(BUILD_PLATFORMS)' \
	  $(if $(CACHE_REF),--cache-from type=registry$(,)ref=$(CACHE_REF) --cache-to type=registry$(,)ref=$(CACHE_REF)$(,)mode=max) \
	  $(if $(filter true,$(PUSH)),--push) --metadata-file .release-$*.json,$(DOCKER) build) \
	  $(DOCKER_BUILD_FLAGS) --target $* \
	  --build-arg VERSION=$(LABEL_VERSION) --build-arg REVISION=$(GIT_SHA) \
	  --build-arg CREATED=$(CREATED) --build-arg SOURCE=$(SOURCE) \
	  --build-arg COMPONENT_VERSION=$(COMPONENT_VERSION_$*) \
	  --build-arg CLAUDE_CODE_VERSION=$(CLAUDE_CODE_VERSION) \
	  $(foreach t,$(TAGS),-t $(REGISTRY)/aof-$*:$(t)) .
	$(if $(filter true,$(PUSH)),$(if $(BUILD_PLATFORMS),\
	  echo "pushed $(REGISTRY)/aof-$*@$$(jq -r '."containerimage.digest"' .release-$*.json) ($(BUILD_PLATFORMS))",\
	  scripts/release/push.sh $(REGISTRY)/aof-$* $(TAGS)),@true)

# Checks the images of VERSION built on this machine (CI runs it after `make release`).
image-check: check-version
	$(foreach i,coordinator runner runner-claude-code $(if $(SKIP_DASHBOARD),,dashboard),\
	  scripts/release/check-image.sh $(REGISTRY)/aof-$(i):$(firstword $(TAGS)) $(i) $(BUDGET_$(i)) $(LABEL_VERSION) $(GIT_SHA) '$(SOURCE)';)

tags-test:
	scripts/release/tags_test.sh

# Quickstart: docker-compose.yml with the images of AOF_VERSION (default latest).
local-up:
	mkdir -p config/agents workspace
	$(COMPOSE) up -d
	$(COMPOSE) ps

local-logs:
	$(COMPOSE) logs -f --tail=100

local-down:
	$(COMPOSE) down
