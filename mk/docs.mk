# Generated reference: connectors/<name>/README.md for every built-in component and the manifest
# JSON Schema in manifests/schema.json, both from the registered specs. A test in
# manifests/internal/gendocs fails when the committed files drift; `make docs` fixes it.
.PHONY: docs
docs:
	$(GO) run ./manifests/internal/gendocs
