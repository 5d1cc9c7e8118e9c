package bench

import (
	"fmt"
	"strings"
)

// Targets of issue 16 (and earlier issues where they still stand).
const (
	hitOverBaselineMax  = 1.3   // cache hit / net/http baseline, at most
	helperOverHitMin    = 5.0   // AWS helper / cache hit, at least
	caCPUPerCertMax     = 450.0 // µs of CA process CPU per certificate, at most
	caCPUOverStepCAMax  = 0.25  // keyless's over step-ca's, at most
	emulatorSessionsMin = 7000  // sessions/s, same certificate, at least
	agentP99MaxUS       = 1000  // issue 12: p99 at the fixed rate
	agentIdleRSSMax     = 20.0  // issue 12: MiB
	caIdleRSSMax        = 20.0  // issue 4: MiB
	devOnceMaxSeconds   = 60.0  // issue 6: within a minute
)

func (r *renderer) hyperfine(m *Manifest, step string) *Hyperfine {
	return readStep(r, m, step, ParseHyperfine)
}

func (r *renderer) timeV(m *Manifest, step string) map[string][]TimeV {
	if m == nil {
		return nil
	}
	st := r.res.Step(m.Section, step)
	if st == nil {
		return nil
	}
	b, err := r.res.Read(st)
	if err != nil {
		r.errorf("%v", err)
		return nil
	}
	_, runs, err := ParseTimeV(st.Raw, b)
	if err != nil {
		r.errorf("%v", err)
		return nil
	}
	return runs
}

// timeCells are a command's median max RSS and page faults over its runs.
func timeCells(runs []TimeV) (rss, minor, major string) {
	if len(runs) == 0 {
		return "", "", ""
	}
	var a, b, c []float64
	for _, t := range runs {
		a, b, c = append(a, t.MaxRSSKB), append(b, t.MinorFaults), append(c, t.MajorFaults)
	}
	return num(median(a)/1024) + " MiB", num(median(b)), num(median(c))
}

var cpLabels = []struct{ name, label string }{
	{"keyless-hit", "`keyless credential-process`, cache hit"},
	{"keyless-no-cache", "`keyless credential-process --no-cache` (CreateSession every time)"},
	{"aws-helper", "`aws_signing_helper credential-process` v1.4.0 (no cache)"},
	{"nethttp-baseline", "baseline: static Go program linking net/http and crypto/x509"},
	{"hello", "baseline: Go hello world"},
	{"keyless-version", "`keyless version`"},
	{"true", "`true`"},
}

func (r *renderer) cp(m *Manifest) {
	h := r.hyperfine(m, "hyperfine")
	if h == nil {
		r.notMeasured("`credential-process`, cache hit", fmt.Sprintf("≤ %.1f× the static net/http baseline, same run", hitOverBaselineMax))
		r.notMeasured("AWS's helper over a cache hit", fmt.Sprintf("≥ %.0f×, same run", helperOverHitMin))
		return
	}
	tv := r.timeV(m, "time")
	r.printf("| command | median | mean ± σ | min – max | user + system CPU (mean) | max RSS | minor / major page faults |\n|---|---:|---:|---:|---:|---:|---:|\n")
	for _, c := range cpLabels {
		x := h.Get(c.name)
		if x == nil {
			continue
		}
		rss, minor, major := timeCells(tv[c.name])
		fault := ""
		if minor != "" {
			fault = minor + " / " + major
		}
		r.printf("| %s | %s | %s ± %s | %s – %s | %s | %s | %s |\n", c.label, ms(x.Median), ms(x.Mean), ms(x.Stddev), ms(x.Min), ms(x.Max), ms(x.User+x.System), rss, fault)
	}
	r.printf("\n%d runs each (hyperfine); max RSS and page faults are the median of the /usr/bin/time -v runs.\n\n", len(h.Results[0].Times))
	hit, base, helper := h.Get("keyless-hit"), h.Get("nethttp-baseline"), h.Get("aws-helper")
	if hit == nil || base == nil || helper == nil {
		r.errorf("hyperfine results lack keyless-hit, nethttp-baseline or aws-helper")
		return
	}
	hb, hh := hit.Median/base.Median, helper.Median/hit.Median
	r.printf("Cache hit over the baseline: %s (target ≤ %.1f×): %s. AWS's helper over the cache hit: %s (target ≥ %.0f×): %s.\n\n",
		ratio(hb), hitOverBaselineMax, verdict(hb <= hitOverBaselineMax), ratio(hh), helperOverHitMin, verdict(hh >= helperOverHitMin))
	r.row("`credential-process`, cache hit", ms(hit.Median)+" ("+ratio(hb)+" the baseline's "+ms(base.Median)+")", fmt.Sprintf("≤ %.1f× the static net/http baseline, same run", hitOverBaselineMax), verdict(hb <= hitOverBaselineMax))
	r.row("AWS's helper over a cache hit", ms(helper.Median)+": "+ratio(hh), fmt.Sprintf("≥ %.0f×, same run", helperOverHitMin), verdict(hh >= helperOverHitMin))
	if nc := h.Get("keyless-no-cache"); nc != nil {
		r.row("`credential-process --no-cache`", ms(nc.Median), "AWS's helper "+ms(helper.Median), "")
	}
	if hb := r.hyperfine(m, "hyperfine-bundle"); hb != nil {
		r.cpBundle(hb)
	}
	if v, hello := h.Get("keyless-version"), h.Get("hello"); v != nil && hello != nil {
		r.row("`keyless version` (start-up alone)", ms(v.Median), "Go hello world "+ms(hello.Median), "")
	}

	if gs := r.goBench(m, "sizes"); len(gs) > 0 {
		r.printf("Binary sizes (bytes):\n\n| binary | bytes |\n|---|---:|\n")
		for _, g := range gs {
			b, _ := g.Get("binary")
			r.printf("| %s | %s |\n", b, num(g.Stat("bytes").Median()))
		}
		r.printf("\n")
		if k, a := Find(gs, "BinarySize/binary=keyless"), Find(gs, "BinarySize/binary=aws_signing_helper"); k != nil && a != nil {
			r.row("keyless binary (static, not stripped)", mb(k.Stat("bytes").Median()), "AWS's helper "+mb(a.Stat("bytes").Median())+" (dynamic)", "")
		}
	}

	if st := r.res.Step(m.Section, "inittrace"); st != nil {
		b, err := r.res.Read(st)
		if err != nil {
			r.errorf("%v", err)
			return
		}
		inits, runs, err := ParseInitTrace(st.Raw, b)
		if err != nil {
			r.errorf("%v", err)
			return
		}
		total := 0.0
		for _, in := range inits {
			total += in.ClockMS.Median()
		}
		r.printf("Package initialisation of a cache hit (GODEBUG=inittrace=1, median of %d runs): %d packages, %s ms in all; the costliest:\n\n", runs, len(inits), num(total))
		r.printf("| package | init clock (ms) | bytes | allocs |\n|---|---:|---:|---:|\n")
		for _, in := range inits[:min(10, len(inits))] {
			r.printf("| %s | %s | %s | %s |\n", in.Package, num(in.ClockMS.Median()), num(in.Bytes.Median()), num(in.Allocs.Median()))
		}
		r.printf("\n")
	}
}

// cpBundle writes the second hyperfine run, with AWS_CA_BUNDLE set to
// the system's bundle, which keyless's cache key and AWS's helper read.
func (r *renderer) cpBundle(h *Hyperfine) {
	hit, base, helper := h.Get("keyless-hit"), h.Get("nethttp-baseline"), h.Get("aws-helper")
	if hit == nil || base == nil || helper == nil {
		r.errorf("the AWS_CA_BUNDLE hyperfine results lack keyless-hit, nethttp-baseline or aws-helper")
		return
	}
	r.printf("With AWS_CA_BUNDLE set to the system's bundle of trusted CAs (a second hyperfine run, %d runs each):\n\n", len(h.Results[0].Times))
	r.printf("| command | median | mean ± σ | min – max | user + system CPU (mean) |\n|---|---:|---:|---:|---:|\n")
	for _, c := range cpLabels {
		if x := h.Get(c.name); x != nil {
			r.printf("| %s | %s | %s ± %s | %s – %s | %s |\n", c.label, ms(x.Median), ms(x.Mean), ms(x.Stddev), ms(x.Min), ms(x.Max), ms(x.User+x.System))
		}
	}
	hb, hh := hit.Median/base.Median, helper.Median/hit.Median
	r.printf("\nCache hit over the baseline: %s (target ≤ %.1f×): %s. AWS's helper over the cache hit: %s (target ≥ %.0f×): %s.\n\n",
		ratio(hb), hitOverBaselineMax, verdict(hb <= hitOverBaselineMax), ratio(hh), helperOverHitMin, verdict(hh >= helperOverHitMin))
	r.row("`credential-process`, cache hit, AWS_CA_BUNDLE set", ms(hit.Median)+" ("+ratio(hb)+" the baseline's "+ms(base.Median)+")", fmt.Sprintf("≤ %.1f× the static net/http baseline, same run", hitOverBaselineMax), verdict(hb <= hitOverBaselineMax))
	r.row("AWS's helper over a cache hit, AWS_CA_BUNDLE set", ms(helper.Median)+": "+ratio(hh), fmt.Sprintf("≥ %.0f×, same run", helperOverHitMin), verdict(hh >= helperOverHitMin))
}

func (r *renderer) ca(m *Manifest) {
	defer r.caInProcess(m)
	gs := r.goBench(m, "cabench")
	target := fmt.Sprintf("≤ %.0f µs and ≤ %.2f× step-ca's, same run", caCPUPerCertMax, caCPUOverStepCAMax)
	if len(gs) == 0 {
		if m != nil {
			r.printf("The CA process against step-ca: not measured in this run (no cabench results).\n\n")
		}
		r.notMeasured("CA process CPU per certificate", target)
		return
	}
	r.printf("The CA processes, keyless against step-ca (cabench):\n\n")
	r.table(gs, "benchmark")
	// Judge keyless against step-ca for every op and client count.
	type key struct{ op, clients string }
	var order []key
	keyless, step := map[key]float64{}, map[key]float64{}
	for _, g := range gs {
		op, _ := g.Get("op")
		server, _ := g.Get("server")
		clients, _ := g.Get("clients")
		s := g.Stat("cpu-us/cert")
		if s == nil {
			continue
		}
		k := key{op, clients}
		switch server {
		case "keyless":
			if _, seen := keyless[k]; !seen {
				order = append(order, k)
			}
			keyless[k] = s.Median()
		case "step-ca":
			step[k] = s.Median()
		}
	}
	byOp := map[string][]string{}
	okOp := map[string]bool{}
	var ops []string
	for _, k := range order {
		kv, sv := keyless[k], step[k]
		ok := kv <= caCPUPerCertMax && sv > 0 && kv <= caCPUOverStepCAMax*sv
		if _, seen := okOp[k.op]; !seen {
			ops = append(ops, k.op)
			okOp[k.op] = true
		}
		okOp[k.op] = okOp[k.op] && ok
		cell := fmt.Sprintf("%s µs at clients=%s", num(kv), k.clients)
		if sv > 0 {
			cell += fmt.Sprintf(" (step-ca %s µs: %s)", num(sv), ratio(kv/sv))
		} else {
			cell += " (no step-ca figure)"
		}
		byOp[k.op] = append(byOp[k.op], cell)
		r.printf("- %s, clients=%s: keyless %s µs of CPU per certificate, step-ca %s µs: %s (target ≤ %.0f µs and ≤ %.2f×): %s\n", k.op, k.clients, num(kv), num(sv), ratio(kv/max(sv, 1e-9)), caCPUPerCertMax, caCPUOverStepCAMax, verdict(ok))
	}
	r.printf("\n")
	for _, op := range ops {
		r.row("CA process CPU per certificate, "+op, strings.Join(byOp[op], "; "), target, verdict(okOp[op]))
	}
}

func (r *renderer) emulator(m *Manifest) {
	gs := r.goBench(m, "loopback")
	target := fmt.Sprintf("≥ %s sessions/s", num(emulatorSessionsMin))
	if len(gs) == 0 {
		r.notMeasured("emulator CreateSession, loopback, same certificate", target)
	} else {
		r.table(gs, "benchmark")
		if g := Find(gs, "CreateSessionLoopback/same-certificate"); g != nil && g.Stat("sessions/s") != nil {
			v := g.Stat("sessions/s").Median()
			r.printf("Same certificate: %s sessions/s (median; target ≥ %s): %s.\n\n", num(v), num(emulatorSessionsMin), verdict(v >= emulatorSessionsMin))
			r.row("emulator CreateSession, loopback, same certificate", num(v)+" sessions/s", target, verdict(v >= emulatorSessionsMin))
		}
		if g := Find(gs, "CreateSessionLoopback/new-certificate-each-time"); g != nil && g.Stat("sessions/s") != nil {
			r.row("emulator CreateSession, a new certificate each time", num(g.Stat("sessions/s").Median())+" sessions/s", "", "")
		}
	}
	r.scales(m)
}

func (r *renderer) agent(m *Manifest) {
	var v *Vendbench
	if m != nil {
		if st := r.res.Step(m.Section, "vendbench"); st != nil {
			b, err := r.res.Read(st)
			if err == nil {
				v, err = ParseVendbench(st.Raw, b)
			}
			if err != nil {
				r.errorf("%v", err)
				return
			}
		}
	}
	if v == nil {
		r.notMeasured("`keyless agent`, vends from cache", "at least AWS's helper `serve`, same run (issue 12)")
	} else {
		h := v.Helper
		r.printf("Versions: %s (agent and serve), %s.\n\n", v.Agent.Version, h.Version)
		r.printf("Throughput: closed loop, %d keep-alive clients, %s; latency: open loop at %s vends/s for %s. In parentheses, the figure over the helper's.\n\n", v.Concurrency, v.Duration, num(v.Rate), v.Duration)
		r.printf("| server | vends/s | server CPU per vend (µs) | p50 (ms) | p99 (ms) | p99.9 (ms) | max (ms) | failed / late | idle RSS (MiB) | RSS after the load / peak (MiB) |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
		rel := func(s *VendSide, a, b float64) string {
			if s == h || b == 0 {
				return num(a)
			}
			return num(a) + " (" + ratio(a/b) + ")"
		}
		for _, s := range []*VendSide{v.Agent, v.Serve, h} {
			l, hl := s.Latency.FromSchedule, h.Latency.FromSchedule
			r.printf("| %s | %s | %s | %s | %s | %s | %s | %d / %d | %s | %s / %s |\n", s.Name,
				rel(s, s.Throughput.PerSecond, h.Throughput.PerSecond), rel(s, s.Throughput.ServerCPUPerOp, h.Throughput.ServerCPUPerOp),
				rel(s, l.P50/1000, hl.P50/1000), rel(s, l.P99/1000, hl.P99/1000), rel(s, l.P999/1000, hl.P999/1000), rel(s, l.Max/1000, hl.Max/1000),
				s.Throughput.Failed+s.Latency.Failed, s.Latency.Late, rel(s, s.IdleMemory.RSS, h.IdleMemory.RSS), num(s.AfterMemory.RSS), num(s.AfterMemory.Peak))
		}
		a := v.Agent
		okT, okP, okR := a.Throughput.PerSecond >= h.Throughput.PerSecond, a.Latency.FromSchedule.P99 <= agentP99MaxUS && a.Latency.Failed == 0, a.IdleMemory.RSS <= agentIdleRSSMax
		r.printf("\nThe three servers made %d CreateSession calls during the measurements. Issue 12's targets for the agent: throughput at least the helper's: %s; p99 ≤ 1 ms at %s/s: %s; idle RSS ≤ 20 MiB: %s.\n\n", v.CreateSessions, verdict(okT), num(v.Rate), verdict(okP), verdict(okR))
		r.row("`keyless agent`, vends from cache", num(a.Throughput.PerSecond)+"/s ("+ratio(a.Throughput.PerSecond/h.Throughput.PerSecond)+")", "at least AWS's helper `serve` ("+num(h.Throughput.PerSecond)+"/s), same run (issue 12)", verdict(okT))
		r.row("`keyless agent`, p99 at "+num(v.Rate)+" vends/s", num(a.Latency.FromSchedule.P99/1000)+" ms", "≤ 1 ms (issue 12); helper "+num(h.Latency.FromSchedule.P99/1000)+" ms", verdict(okP))
		r.row("`keyless agent`, idle RSS", num(a.IdleMemory.RSS)+" MiB", "≤ 20 MiB (issue 12); helper "+num(h.IdleMemory.RSS)+" MiB", verdict(okR))
		r.row("`keyless serve`, vends from cache", num(v.Serve.Throughput.PerSecond)+"/s, p99 "+num(v.Serve.Latency.FromSchedule.P99/1000)+" ms", "AWS's helper `serve`: "+num(h.Throughput.PerSecond)+"/s, p99 "+num(h.Latency.FromSchedule.P99/1000)+" ms", "")
	}
	r.scales(m)
}

func (r *renderer) dev(m *Manifest) {
	h := r.hyperfine(m, "hyperfine")
	target := "within a minute (issue 6)"
	if h == nil || h.Get("dev-once") == nil {
		r.notMeasured("`keyless dev --once`, whole chain", target)
		return
	}
	x := h.Get("dev-once")
	rss, _, _ := timeCells(r.timeV(m, "time")["dev-once"])
	r.printf("| command | median | mean ± σ | min – max | max RSS |\n|---|---:|---:|---:|---:|\n| `keyless dev --once` | %s | %s ± %s | %s – %s | %s |\n\n", ms(x.Median), ms(x.Mean), ms(x.Stddev), ms(x.Min), ms(x.Max), rss)
	r.row("`keyless dev --once`, whole chain", ms(x.Median)+", "+rss+" max RSS", target, verdict(x.Median <= devOnceMaxSeconds))
}

func (r *renderer) caOps(m *Manifest) {
	gs := r.goBench(m, "idle")
	if g := Find(gs, "CAIdleRSS"); g != nil && g.Stat("rss-MB") != nil {
		v := g.Stat("rss-MB").Median()
		r.printf("Idle RSS of `keyless ca serve`: %s MiB (target ≤ %.0f MiB): %s.\n\n", num(v), caIdleRSSMax, verdict(v <= caIdleRSSMax))
		r.row("CA idle RSS", num(v)+" MiB", "≤ 20 MiB (issue 4)", verdict(v <= caIdleRSSMax))
	} else {
		r.notMeasured("CA idle RSS", "≤ 20 MiB (issue 4)")
	}
	if h := r.hyperfine(m, "list"); h != nil && h.Get("ca-list") != nil {
		x := h.Get("ca-list")
		r.printf("| command | median | mean ± σ | min – max |\n|---|---:|---:|---:|\n| `keyless ca list` against the running CA | %s | %s ± %s | %s – %s |\n\n", ms(x.Median), ms(x.Mean), ms(x.Stddev), ms(x.Min), ms(x.Max))
		r.row("`keyless ca list` against a running CA", ms(x.Median), "", "")
	} else {
		r.notMeasured("`keyless ca list` against a running CA", "")
	}
}

// caInProcess is internal/ca/caapi's BenchmarkSign: POST /sign in
// process over keep-alive HTTPS, client and server in one process.
func (r *renderer) caInProcess(m *Manifest) {
	gs := r.goBench(m, "inprocess")
	if len(gs) == 0 {
		return
	}
	r.printf("The CA's handler in process (internal/ca/caapi BenchmarkSign: POST /1.0/sign over keep-alive HTTPS, tokens and CSRs made in advance, every certificate and token fsynced before the answer; client and server in one process):\n\n")
	r.table(gs, "benchmark")
	for _, g := range gs {
		if s := g.Stat("certs/s"); s != nil {
			c, _ := g.Get("clients")
			r.row("CA `POST /sign` in process, clients="+c, num(s.Median())+" certificates/s", "", "")
		}
	}
}
