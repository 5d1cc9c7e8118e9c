//go:build linux

package main

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/keyless-dev/keyless/internal/agent"
	"github.com/keyless-dev/keyless/internal/agentapi"
	"github.com/keyless-dev/keyless/internal/logline"
)

// BenchmarkAgentVend times one vend from the cache in process, to see
// where vendbench's numbers go: the agent's Vend (verify the job token
// from its cache, decide, broker hit, audit line) with the audit line
// written as keyless agent writes it by default (text, timestamps, to a
// file as to journald) or discarded, and the container handler around it
// (Host check, JSON answer) without the network.
//
//	go test -run '^$' -bench AgentVend -cpuprofile cpu.out ./cmd/vendbench
func BenchmarkAgentVend(b *testing.B) {
	dir := b.TempDir()
	f := newFixture(b, dir)
	const addr = "127.0.0.1:9911"
	cfg, err := agent.ParseConfig([]byte(f.agentYAML(addr)), filepath.Join(dir, "agent.yaml"), dir)
	if err != nil {
		b.Fatal(err)
	}
	logFile, err := os.Create(filepath.Join(dir, "agent.log"))
	if err != nil {
		b.Fatal(err)
	}
	defer logFile.Close()
	fileLogger := slog.New(logline.NewHandler(logFile, logline.Options{Level: slog.LevelInfo, Timestamps: true}))
	newAgent := func(b *testing.B, audit *slog.Logger) *agent.Agent {
		a, err := agent.New(agent.Options{Config: cfg, Logger: audit, UserAgent: "vendbench"})
		if err != nil {
			b.Fatal(err)
		}
		return a
	}
	req := agentapi.Request{Token: f.jobToken, Listener: "container:" + addr, Remote: "127.0.0.1:40000"}
	for _, c := range []struct {
		name  string
		audit *slog.Logger
	}{{"audit-file", fileLogger}, {"audit-discarded", slog.New(slog.DiscardHandler)}} {
		a := newAgent(b, c.audit)
		if _, err := a.Vend(context.Background(), req); err != nil {
			b.Fatal(err)
		}
		b.Run("vend/"+c.name, func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := a.Vend(context.Background(), req); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
		h := agentapi.ContainerHandler(a, agentapi.Hosts(addr), "container:"+addr)
		b.Run("handler/"+c.name, func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				r := httptest.NewRequest(http.MethodGet, "http://"+addr+agent.ContainerPath, nil)
				r.Header.Set("Authorization", f.jobToken)
				r.RemoteAddr = req.Remote
				for pb.Next() {
					w := httptest.NewRecorder()
					h.ServeHTTP(w, r)
					if w.Code != http.StatusOK {
						b.Errorf("status %d: %s", w.Code, w.Body)
						return
					}
				}
			})
		})
	}
}
