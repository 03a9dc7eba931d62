# Generated reference: connectors/<name>/README.md for every built-in component, the manifest
# JSON Schema in manifests/schema.json and the Pipeline document reference in
# manifests/REFERENCE.md, from the registered specs and the manifest loader's own tables. A test in
# manifests/internal/gendocs fails when the committed files drift; `make docs` fixes it.
.PHONY: docs
docs:
	$(GO) run ./manifests/internal/gendocs
