//go:build tools

// Package tools only names the commands we build, so that `go mod tidy`
// keeps their dependencies in go.mod and go.sum. It is never compiled.
package tools

import (
	_ "sigs.k8s.io/kwok/cmd/kwok"
	_ "sigs.k8s.io/kwok/cmd/kwokctl"
)
