# syntax=docker/dockerfile:1
#
# firedrill with the tools drills use: kubectl and kwokctl, built from Go
# modules at the versions pinned in tools/k8s/ (Kubernetes 1.36.3, kwok
# 0.8.0), as .ci/install-k8s builds them.
#
#   docker build -t firedrill:0.1.0 .
#   docker run --rm -v "$PWD:/work" firedrill:0.1.0 validate drills/
#
# The image runs as an unprivileged user (uid 10001) in /work, where runs
# keep their records (.firedrill/runs). Drills on the local target whose
# faults need root (`tc`, `iptables`) need `--user 0` and the capabilities
# they use; drills on Kubernetes targets need neither.
#
# Not built on the machines firedrill is developed on (no container engine
# there): tests/packaging.rs lints this file with hadolint and checks its
# pins; see the README.

# ---- firedrill, release profile (LTO, stripped) ----
FROM rust:1.95.0-slim-trixie AS firedrill
WORKDIR /src
# Manifests first: the dependency layer is rebuilt only when they change.
COPY Cargo.toml Cargo.lock ./
COPY benches benches
RUN mkdir src \
    && echo 'fn main() {}' > src/main.rs \
    && touch src/lib.rs \
    && cargo build --release --locked \
    && rm -rf src
COPY src src
# The stub's artifacts are newer than the real sources' mtimes in the copy:
# touch them so cargo rebuilds firedrill itself.
RUN touch src/main.rs src/lib.rs \
    && cargo build --release --locked --bin firedrill \
    && cp target/release/firedrill /firedrill

# ---- kubectl and kwokctl from our Go modules (no prebuilt download) ----
FROM golang:1.26.8-trixie AS k8s-tools
ENV CGO_ENABLED=0 GOFLAGS=-trimpath
WORKDIR /tools
COPY tools/k8s/kubernetes kubernetes
COPY tools/k8s/kwok kwok
# Kubernetes reads its version from these variables, as its own build sets
# them (`kubectl version --client` then prints v1.36.3).
WORKDIR /tools/kubernetes
RUN kube=$(awk '$1 == "require" && $2 == "k8s.io/kubernetes" { print $3 }' go.mod) \
    && minor=${kube#v*.} && minor=${minor%%.*} \
    && flags="-s -w" \
    && for p in k8s.io/client-go/pkg/version k8s.io/component-base/version; do \
         flags="$flags -X $p.gitVersion=$kube -X $p.gitMajor=1 -X $p.gitMinor=$minor -X $p.gitTreeState=clean"; \
       done \
    && go build -ldflags="$flags" -o /out/kubectl k8s.io/kubernetes/cmd/kubectl
WORKDIR /tools/kwok
RUN go build -ldflags="-s -w" -o /out/kwokctl sigs.k8s.io/kwok/cmd/kwokctl

# ---- runtime: a shell and the usual runbook tools, no compiler ----
FROM debian:13-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends bash ca-certificates curl jq \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --uid 10001 --user-group --create-home --home-dir /home/firedrill --shell /bin/bash firedrill \
    && mkdir /work \
    && chown firedrill:firedrill /work
COPY --from=firedrill /firedrill /usr/local/bin/firedrill
COPY --from=k8s-tools /out/kubectl /out/kwokctl /usr/local/bin/
ENV NO_COLOR=1
USER 10001:10001
WORKDIR /work
ENTRYPOINT ["firedrill"]
CMD ["--help"]
