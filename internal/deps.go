//go:build tools

// Package internal pins the project's chosen dependencies while the packages
// that use them are written, so parallel work never races on go.mod.
package internal

import (
	_ "github.com/axiomhq/hyperloglog"
	_ "github.com/go-zeromq/zmq4"
	_ "github.com/gorilla/websocket"
	_ "github.com/leodido/go-syslog/v4"
	_ "github.com/prometheus/client_golang/prometheus"
	_ "github.com/tidwall/wal"
	_ "go.yaml.in/yaml/v3"
)
