# syntax=docker/dockerfile:1
# The sluice binary in a small non-root image, for the sidecar of examples/kubernetes.
#
#   docker build -t sluice:dev .
#   docker build --build-arg VERSION=v0.1.0 -t registry.example.com/sluice:0.1.0 .
#
# The binary is static (CGO_ENABLED=0: the WASM runtime and every connector are pure Go), so the
# final stage needs no libc: distroless/static brings CA certificates, /etc/passwd with the
# nonroot user (65532) and tzdata, and nothing to exec into.
ARG GO_VERSION=1.26.8

FROM golang:${GO_VERSION}-bookworm AS build
WORKDIR /src
# The module files first, so the dependency download is a cached layer of its own. The runtime
# builds against the SDK and example-plugin modules of this repository (go.mod's replace lines).
COPY go.mod go.sum ./
COPY sdk/go/go.mod sdk/go/go.sum sdk/go/
COPY examples/plugin-csv/go.mod examples/plugin-csv/go.sum examples/plugin-csv/
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
ARG VERSION=dev
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
	CGO_ENABLED=0 GOFLAGS=-buildvcs=false go build -trimpath \
		-ldflags="-s -w -X github.com/sluicehq/sluice/internal/cli.Version=${VERSION}" \
		-o /out/sluice ./cmd/sluice
# The WASM transforms manifests may name by an absolute path (examples/kubernetes/pipelines).
RUN mkdir -p /out/transforms /out/data && \
	cp transforms/validate_price/c/validate_price.wasm /out/transforms/validate_price.wasm && \
	cp transforms/mask_fields/mask_fields.wasm transforms/rename_fields/rename_fields.wasm \
	   transforms/explode_array/explode_array.wasm transforms/dedupe/dedupe.wasm \
	   transforms/stats/stats.wasm transforms/anomaly/anomaly.wasm /out/transforms/ && \
	/out/sluice version

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/sluice /usr/local/bin/sluice
COPY --from=build /out/transforms/ /usr/share/sluice/transforms/
# The data directory; in Kubernetes a volume is mounted over it (examples/kubernetes).
COPY --from=build --chown=65532:65532 /out/data/ /var/lib/sluice/
USER 65532:65532
ENV SLUICE_DATA_DIR=/var/lib/sluice
# The admin server: /healthz, /readyz, /metrics and the API.
EXPOSE 9464
ENTRYPOINT ["/usr/local/bin/sluice"]
CMD ["run", "--admin-addr=0.0.0.0:9464", "/etc/sluice/pipelines"]
