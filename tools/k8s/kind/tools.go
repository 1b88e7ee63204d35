//go:build tools

// Package tools only names the command we build, so that `go mod tidy`
// keeps its dependencies in go.mod and go.sum. It is never compiled.
package tools

import _ "sigs.k8s.io/kind"
