# The sidecar kit (examples/kubernetes): the objects `kubectl apply -k examples/kubernetes/deploy`
# would create, rendered by kustomize (the ConfigMap of pipelines included), against the API
# schemas of the oldest and newest Kubernetes versions it supports (kubernetes-validate, strict:
# unknown fields are errors); the Prometheus configuration and alert rules with promtool (check
# config, check rules, and the rules' unit tests); and every PromQL expression of the Grafana
# dashboard through promtool (TestDashboardQueriesParse). The Go test beside the kit (run by
# `make test-go` too) runs its pipelines for real and checks every metric name the dashboard and
# the rules use against a scrape. The tools are installed once per version into build/tools by
# scripts/kubernetes-tools.sh; a failed install fails the target.
KIT_DIR          := examples/kubernetes
KIT_RENDERED     := build/kubernetes-kit.yaml
KIT_K8S_VERSIONS := 1.29 1.37
KIT_TOOLS        := bash scripts/kubernetes-tools.sh

.PHONY: kubernetes-tools test-kubernetes
kubernetes-tools:
	@$(KIT_TOOLS) promtool >/dev/null
	@$(KIT_TOOLS) kustomize >/dev/null
	@$(KIT_TOOLS) kubernetes-validate >/dev/null

test-kubernetes: kubernetes-tools
	@set -e; mkdir -p $(dir $(KIT_RENDERED)); \
	ks=$$($(KIT_TOOLS) kustomize); kv=$$($(KIT_TOOLS) kubernetes-validate); \
	$$ks build $(KIT_DIR)/deploy > $(KIT_RENDERED); \
	for v in $(KIT_K8S_VERSIONS); do \
		echo "kubernetes-validate --strict -k $$v $(KIT_RENDERED) (kustomize build $(KIT_DIR)/deploy)"; \
		$$kv --strict --quiet -k $$v $(KIT_RENDERED); \
	done; \
	grep -c '^kind:' $(KIT_RENDERED) | xargs echo "  objects validated:"
	@set -e; pt=$$($(KIT_TOOLS) promtool); \
	$$pt check config $(KIT_DIR)/prometheus/prometheus.yaml; \
	$$pt check rules $(KIT_DIR)/prometheus/alerts.yaml; \
	cd $(KIT_DIR)/prometheus && $$pt test rules alerts_test.yaml
	SLUICE_PROMTOOL=$$($(KIT_TOOLS) promtool) $(GO) test -count=1 -run 'TestDashboardQueriesParse' ./$(KIT_DIR)/

TEST_PREREQS += kubernetes-tools
TEST_TARGETS += test-kubernetes
