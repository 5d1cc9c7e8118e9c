package iampolicy_test

import (
	"testing"

	"github.com/keyless-dev/keyless/internal/iampolicy"
	"github.com/keyless-dev/keyless/internal/rolesanywhere/rolesanywheretest"
)

func BenchmarkEvaluateTrustPolicy(b *testing.B) {
	p := mustParse(b, trustPolicy)
	for _, c := range []struct{ name, cn string }{{"allowed", "gitlab-runner"}, {"denied", "runner-2"}} {
		b.Run(c.name, func(b *testing.B) {
			r := iampolicy.Request{Principal: service, Action: "sts:AssumeRole", Context: runnerContext(rolesanywheretest.TrustAnchorARN, c.cn)}
			b.ReportAllocs()
			for b.Loop() {
				if d := p.Evaluate(r); d.Allowed() != (c.cn == "gitlab-runner") {
					b.Fatal(d)
				}
			}
		})
	}
}

func BenchmarkParseTrustPolicy(b *testing.B) {
	doc := []byte(trustPolicy)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := iampolicy.Parse(doc); err != nil {
			b.Fatal(err)
		}
	}
}
