package caops_test

import (
	"bufio"
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/keyless-dev/keyless/internal/ca"
	"github.com/keyless-dev/keyless/internal/ca/catest"
	"github.com/keyless-dev/keyless/internal/caops"
	"github.com/keyless-dev/keyless/internal/caproto"
	"github.com/keyless-dev/keyless/internal/pki/pkitest"
	"github.com/keyless-dev/keyless/internal/testkit"
)

// BenchmarkScaleCAStore measures a CA directory whose store holds certs
// certificates (issued over 30 days for 24h each, one in a hundred
// revoked): the store file's size, and per iteration one start of the
// keyless binary's `ca serve` on it: the time until it answers /health
// (restart-ms) and its first /sign after that (first-sign-ms), and its
// VmRSS then (rss-MB) and after 20 more signs (rss-signs-MB). The start
// includes decrypting the intermediate key (600,000 PBKDF2 rounds),
// whatever the store's size. 10^6 certificates only with
// KEYLESS_BENCH_LARGE=1.
func BenchmarkScaleCAStore(b *testing.B) {
	sizes := []int{10_000}
	if os.Getenv("KEYLESS_BENCH_LARGE") == "1" {
		sizes = append(sizes, 1_000_000)
	}
	for _, n := range sizes {
		b.Run(fmt.Sprintf("certs=%d", n), func(b *testing.B) { benchCAStore(b, n) })
	}
}

func benchCAStore(b *testing.B, n int) {
	exe := testkit.Keyless(b)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	dir := filepath.Join(b.TempDir(), "ca")
	d, err := caops.Init(dir, ca.InitOptions{Name: "Scale CA", DNSNames: []string{"127.0.0.1"}, Address: addr, Provisioner: "runners",
		Password: password, Allow: []string{"*"}})
	if err != nil {
		b.Fatal(err)
	}
	pwFile := filepath.Join(b.TempDir(), "pw")
	if err := os.WriteFile(pwFile, password, 0o600); err != nil {
		b.Fatal(err)
	}
	dbPath := d.Config.Path(d.Config.DB)
	f := catest.NewFiller(b, pkitest.NewRoot(b, "filler"))
	now := time.Now()
	span := 30 * 24 * time.Hour
	catest.FillStore(b, dbPath, f, n, func(i int) (time.Time, time.Time, time.Time) {
		issued := now.Add(-span + time.Duration(i)*(span/time.Duration(n)))
		var revoked time.Time
		if i%100 == 0 {
			revoked = issued.Add(time.Hour)
		}
		return issued, issued.Add(24 * time.Hour), revoked
	})
	fi, err := os.Stat(dbPath)
	if err != nil {
		b.Fatal(err)
	}

	url := "https://" + addr
	prov, key, err := d.ProvisionerKey("", password)
	if err != nil {
		b.Fatal(err)
	}
	const signs = 21
	bodies := make([][]byte, b.N*signs)
	for i := range bodies {
		tok, err := caproto.NewToken(caproto.TokenOptions{Provisioner: prov.Name, Key: key, Subject: "gitlab-runner",
			SANs: []string{"gitlab-runner"}, Audience: url + caproto.PathSign, Now: time.Now()})
		if err != nil {
			b.Fatal(err)
		}
		bodies[i], _ = json.Marshal(caproto.SignRequest{CSR: benchCSR(b), OTT: tok})
	}
	pool := x509.NewCertPool()
	pool.AddCert(d.Root)

	var restart, firstSign time.Duration
	var rss, rssSigns float64
	b.ResetTimer()
	for i := range b.N {
		client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}, Timeout: 10 * time.Second}
		cmd := exec.Command(exe, "ca", "serve", "--dir", dir, "--password-file", pwFile, "--log-level", "warn")
		cmd.Stdout, cmd.Stderr = io.Discard, os.Stderr
		start := time.Now()
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		for {
			resp, err := client.Get(url + "/health")
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					break
				}
			}
			if time.Since(start) > 5*time.Minute {
				cmd.Process.Kill()
				b.Fatalf("the CA did not answer /health within 5 minutes: %v", err)
			}
			time.Sleep(2 * time.Millisecond)
		}
		restart += time.Since(start)
		rss += vmRSS(b, cmd.Process.Pid)
		for j := range signs {
			t0 := time.Now()
			resp, err := client.Post(url+caproto.PathSign, "application/json", bytes.NewReader(bodies[i*signs+j]))
			if err != nil {
				b.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusCreated {
				b.Fatalf("sign: status %d", resp.StatusCode)
			}
			if j == 0 {
				firstSign += time.Since(t0)
			}
		}
		rssSigns += vmRSS(b, cmd.Process.Pid)
		client.CloseIdleConnections()
		cmd.Process.Signal(syscall.SIGTERM)
		if err := cmd.Wait(); err != nil {
			b.Fatalf("ca serve: %v", err)
		}
	}
	b.StopTimer()
	per := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 / float64(b.N) }
	b.ReportMetric(float64(fi.Size())/(1<<20), "store-MB")
	b.ReportMetric(per(restart), "restart-ms")
	b.ReportMetric(per(firstSign), "first-sign-ms")
	b.ReportMetric(rss/float64(b.N), "rss-MB")
	b.ReportMetric(rssSigns/float64(b.N), "rss-signs-MB")
}

// vmRSS reads a process's resident set size, MB.
func vmRSS(b *testing.B, pid int) float64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			fields := strings.Fields(v)
			kb, err := strconv.ParseFloat(fields[0], 64)
			if err != nil {
				b.Fatal(err)
			}
			return kb / 1024
		}
	}
	b.Fatal("no VmRSS in /proc/PID/status")
	return 0
}

func benchCSR(b *testing.B) string {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{DNSNames: []string{"gitlab-runner"}}, k)
	if err != nil {
		b.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))
}
