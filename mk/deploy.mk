# Deployment checks (issue 6): Dockerfile (hadolint), docker-compose.yml, Kubernetes manifests
# (kustomize render, Kubernetes + Strimzi/CloudNativePG schema validation, invariants) and a
# checkov security scan. Needs no Docker engine and no cluster. Included by the main Makefile.
UV ?= $(shell command -v uv 2>/dev/null || echo $(HOME)/.local/bin/uv)

.PHONY: check-deploy render-k8s

check-deploy:
	$(UV) run --group deploy pytest tests/deploy -q -p no:cacheprovider

# Print what an overlay renders: make render-k8s OVERLAY=prod
OVERLAY ?= dev
render-k8s:
	$(UV) run --group deploy kubectl kustomize deploy/k8s/overlays/$(OVERLAY)
