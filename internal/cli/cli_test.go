package cli_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"flag"
	"fmt"
	"maps"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"
	"github.com/youmark/pkcs8"
	"software.sslmate.com/src/go-pkcs12"

	"github.com/keyless-dev/keyless/internal/cli"
	"github.com/keyless-dev/keyless/internal/pki"
	"github.com/keyless-dev/keyless/internal/pki/pkitest"
	"github.com/keyless-dev/keyless/internal/rolesanywhere/rolesanywheretest"
	"github.com/keyless-dev/keyless/internal/testkit"
)

func TestMain(m *testing.M) {
	testscript.Main(testkit.Main(m), map[string]func(){
		"keyless": func() { os.Exit(cli.Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr)) },
	})
}

// TestScripts runs the keyless command end to end over the txtar scripts
// in testdata/script. Each script gets its own CA, a fake CreateSession
// endpoint that verifies signatures and trusts that CA (plain HTTP as
// $ENDPOINT, HTTPS as $TLS_ENDPOINT with its CA in $WORK/tls-ca.pem), the
// ARNs in $TA_ARN, $PROFILE_ARN and $ROLE_ARN, and a private
// $XDG_CACHE_HOME.
func TestScripts(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir:   "testdata/script",
		Setup: setupScript,
		Condition: func(cond string) (bool, error) {
			if cond == "root" {
				return os.Geteuid() == 0, nil
			}
			return false, fmt.Errorf("unknown condition %q", cond)
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"genpki":   cmdGenPKI,
			"fakeaws":  cmdFakeAWS,
			"filemode": cmdFileMode,
			"countdir": cmdCountDir,
			"waitfile": cmdWaitFile,
			"outputs":  cmdOutputs,
			"gentls":   cmdGenTLS,
			"jsonlog":  cmdJSONLog,
		},
	})
}

type scriptState struct {
	root, inter *pkitest.CA
	plain, tls  *rolesanywheretest.Server
}

const (
	taARN      = rolesanywheretest.TrustAnchorARN
	profileARN = rolesanywheretest.ProfileARN
	roleARN    = rolesanywheretest.RoleARN
)

// fatalT adapts testscript.T, which has Fatal, to pkitest.Fataler.
type fatalT struct{ testscript.T }

func (f fatalT) Fatalf(format string, args ...any) { f.Fatal(fmt.Sprintf(format, args...)) }

func setupScript(env *testscript.Env) error {
	st := &scriptState{root: pkitest.NewRoot(fatalT{env.T()}, "script-root")}
	st.inter = st.root.Intermediate(fatalT{env.T()}, "script-int")
	roots := x509.NewCertPool()
	roots.AddCert(st.root.Cert)
	st.plain = rolesanywheretest.NewServer()
	st.tls = rolesanywheretest.NewTLSServer()
	for _, s := range []*rolesanywheretest.Server{st.plain, st.tls} {
		s.Roots = roots
		s.Region = "us-east-1"
		env.Defer(s.Close)
	}
	env.Values["state"] = st
	if err := os.WriteFile(filepath.Join(env.WorkDir, "tls-ca.pem"), pki.EncodeCertificates(st.tls.Certificate()), 0o600); err != nil {
		return err
	}
	env.Setenv("ENDPOINT", st.plain.URL)
	env.Setenv("TLS_ENDPOINT", st.tls.URL)
	env.Setenv("TA_ARN", taARN)
	env.Setenv("PROFILE_ARN", profileARN)
	env.Setenv("ROLE_ARN", roleARN)
	env.Setenv("HOME", filepath.Join(env.WorkDir, "home"))
	env.Setenv("XDG_CACHE_HOME", filepath.Join(env.WorkDir, "cache"))
	return os.MkdirAll(filepath.Join(env.WorkDir, "home"), 0o700)
}

func state(ts *testscript.TestScript) *scriptState {
	return ts.Value("state").(*scriptState)
}

// cmdGenPKI writes a leaf certificate and key issued by the script's CA:
//
//	genpki [-key p256|p384|rsa2048|...] [-format F] [-password PW] [-expired] [-ca] [-untrusted] NAME
//
// It writes NAME.crt (the leaf), NAME.chain.crt (leaf then intermediate),
// int.crt (the intermediate), root.crt (the trusted root) and the key as NAME.key in format F: pkcs8
// (default), pkcs1, sec1, der, enc-pbkdf2-sha256, enc-pbkdf2-sha1,
// enc-scrypt; or, for p12, p12-legacy and p12-nopass, NAME.p12 holding key,
// leaf and intermediate.
func cmdGenPKI(ts *testscript.TestScript, neg bool, args []string) {
	if neg {
		ts.Fatalf("unsupported: ! genpki")
	}
	fs := flag.NewFlagSet("genpki", flag.ContinueOnError)
	kind := fs.String("key", pkitest.P256, "key kind")
	format := fs.String("format", "pkcs8", "key format")
	password := fs.String("password", "", "password for encrypted formats")
	expired := fs.Bool("expired", false, "issue an expired certificate")
	isCA := fs.Bool("ca", false, "issue a CA certificate")
	untrusted := fs.Bool("untrusted", false, "issue from a CA the endpoint does not trust")
	noDS := fs.Bool("no-digital-signature", false, "leave digitalSignature out of keyUsage")
	cn := fs.String("cn", "", "subject common name (default gitlab-runner)")
	if err := fs.Parse(args); err != nil || fs.NArg() != 1 {
		ts.Fatalf("usage: genpki [flags] NAME")
	}
	name := fs.Arg(0)
	st := state(ts)
	issuer := st.inter
	if *untrusted {
		issuer = pkitest.NewRoot(ts, "untrusted-root").Intermediate(ts, "untrusted-int")
	}
	key := pkitest.Key(ts, *kind)
	opts := pkitest.LeafOptions{Key: key, IsCA: *isCA, CommonName: *cn}
	if *expired {
		opts.NotBefore = time.Now().Add(-48 * time.Hour)
		opts.NotAfter = time.Now().Add(-24 * time.Hour)
	}
	if *isCA {
		opts.KeyUsage = x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign
	}
	if *noDS {
		opts.KeyUsage = x509.KeyUsageKeyEncipherment
	}
	leaf := issuer.Leaf(ts, opts)
	write := func(file string, data []byte) {
		if err := os.WriteFile(ts.MkAbs(file), data, 0o600); err != nil {
			ts.Fatalf("%v", err)
		}
	}
	write(name+".crt", pki.EncodeCertificates(leaf))
	write(name+".chain.crt", pki.EncodeCertificates(leaf, issuer.Cert))
	write("int.crt", pki.EncodeCertificates(issuer.Cert))
	write("root.crt", pki.EncodeCertificates(st.root.Cert))
	keyPEM, err := pki.EncodePrivateKey(key) // PKCS#8, ML-DSA keys too
	ts.Check(err)
	p8Block, _ := pem.Decode(keyPEM)
	p8 := p8Block.Bytes
	block := func(typ string, der []byte) []byte { return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}) }
	encrypted := func(kdf pkcs8.KDFOpts) []byte {
		der, err := pkcs8.MarshalPrivateKey(key, []byte(*password), &pkcs8.Opts{Cipher: pkcs8.AES256CBC, KDFOpts: kdf})
		ts.Check(err)
		return block("ENCRYPTED PRIVATE KEY", der)
	}
	p12 := func(enc *pkcs12.Encoder) {
		data, err := enc.Encode(key, leaf, []*x509.Certificate{issuer.Cert}, *password)
		ts.Check(err)
		write(name+".p12", data)
	}
	switch *format {
	case "pkcs8":
		write(name+".key", block("PRIVATE KEY", p8))
	case "der":
		write(name+".key", p8)
	case "pkcs1":
		write(name+".key", block("RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(key.(*rsa.PrivateKey))))
	case "sec1":
		der, err := x509.MarshalECPrivateKey(key.(*ecdsa.PrivateKey))
		ts.Check(err)
		write(name+".key", block("EC PRIVATE KEY", der))
	case "enc-pbkdf2-sha256":
		write(name+".key", encrypted(pkcs8.PBKDF2Opts{SaltSize: 16, IterationCount: 2048, HMACHash: crypto.SHA256}))
	case "enc-pbkdf2-sha1":
		write(name+".key", encrypted(pkcs8.PBKDF2Opts{SaltSize: 8, IterationCount: 2048, HMACHash: crypto.SHA1}))
	case "enc-scrypt":
		write(name+".key", encrypted(pkcs8.ScryptOpts{SaltSize: 16, CostParameter: 1 << 14, BlockSize: 8, ParallelizationParameter: 1}))
	case "p12":
		p12(pkcs12.Modern2023)
	case "p12-legacy":
		p12(pkcs12.LegacyRC2)
	case "p12-nopass":
		p12(pkcs12.Passwordless)
	default:
		ts.Fatalf("genpki: unknown format %q", *format)
	}
	sum := sha256.Sum256(leaf.Raw)
	write(name+".fingerprint", []byte(hex.EncodeToString(sum[:])))
	write(name+".serial", []byte(leaf.SerialNumber.String()+"\n"))
}

// cmdFakeAWS inspects and steers the fake endpoint (the TLS one when the
// first argument is "tls"):
//
//	fakeaws [tls] sessions N          exactly N sessions were issued
//	fakeaws [tls] calls N             exactly N requests arrived
//	fakeaws [tls] fail STATUS CODE MESSAGE...   next call answers this error
//	fakeaws [tls] drop                next call's connection is closed
//	fakeaws [tls] lifetime DURATION   credentials expire after DURATION
//	fakeaws [tls] lastrequest         print the last request's query, body and signed headers
func cmdFakeAWS(ts *testscript.TestScript, neg bool, args []string) {
	srv := state(ts).plain
	if len(args) > 0 && args[0] == "tls" {
		srv, args = state(ts).tls, args[1:]
	}
	if len(args) == 0 {
		ts.Fatalf("usage: fakeaws [tls] sessions|calls|fail|drop|lifetime|lastrequest ...")
	}
	count := func(got int) {
		want, err := strconv.Atoi(args[1])
		ts.Check(err)
		if (got == want) == neg {
			ts.Fatalf("%s: got %d, want %s%d", args[0], got, map[bool]string{true: "not ", false: ""}[neg], want)
		}
	}
	switch args[0] {
	case "sessions":
		count(srv.Sessions())
	case "calls":
		count(srv.Calls())
	case "fail":
		status, err := strconv.Atoi(args[1])
		ts.Check(err)
		srv.FailNext(rolesanywheretest.Failure{Status: status, Code: args[2], Message: strings.Join(args[3:], " ")})
	case "drop":
		srv.FailNext(rolesanywheretest.Failure{CloseConnection: true})
	case "lifetime":
		d, err := time.ParseDuration(args[1])
		ts.Check(err)
		srv.SetLifetime(d)
	case "lastrequest":
		reqs := srv.Requests()
		if len(reqs) == 0 {
			ts.Fatalf("no request yet")
		}
		r := reqs[len(reqs)-1]
		chain := 0
		if v := r.Header.Get("X-Amz-X509-Chain"); v != "" {
			chain = len(strings.Split(v, ","))
		}
		fmt.Fprintf(ts.Stdout(), "query: %s\nbody: %s\nauthorization: %s\nchain: %d\nuser-agent: %s\n",
			r.Query, r.Body, r.Header.Get("Authorization"), chain, r.Header.Get("User-Agent"))
	default:
		ts.Fatalf("fakeaws: unknown subcommand %q", args[0])
	}
}

// cmdFileMode checks permission bits: filemode 0600 PATH.
func cmdFileMode(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 2 {
		ts.Fatalf("usage: filemode MODE PATH")
	}
	want, err := strconv.ParseUint(args[0], 8, 32)
	ts.Check(err)
	info, err := os.Stat(ts.MkAbs(args[1]))
	ts.Check(err)
	if got := uint64(info.Mode().Perm()); (got == want) == neg {
		ts.Fatalf("%s has mode %04o, want %s%04o", args[1], got, map[bool]string{true: "not ", false: ""}[neg], want)
	}
}

// cmdCountDir checks how many *.json files a directory holds: countdir N DIR.
func cmdCountDir(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 2 {
		ts.Fatalf("usage: countdir N DIR")
	}
	want, err := strconv.Atoi(args[0])
	ts.Check(err)
	matches, err := filepath.Glob(filepath.Join(ts.MkAbs(args[1]), "*.json"))
	ts.Check(err)
	if (len(matches) == want) == neg {
		ts.Fatalf("%s holds %d entries, want %d", args[1], len(matches), want)
	}
}

// cmdWaitFile waits (up to 30 s) until a file exists and is not empty:
// waitfile PATH. Background commands announce readiness by writing one.
func cmdWaitFile(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: waitfile PATH")
	}
	testkit.WaitFor(ts, 30*time.Second, args[0], func() (bool, string) {
		info, err := os.Stat(ts.MkAbs(args[0]))
		return err == nil && info.Size() > 0, ""
	})
}

// cmdJSONLog checks that every line of FILE (stdout or stderr: what the
// last exec or wait wrote) is a JSON log record: an object with a UTC
// "time" in milliseconds, a "level" and a "msg": jsonlog FILE.
func cmdJSONLog(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: jsonlog FILE")
	}
	text := ts.ReadFile(args[0])
	if text == "" {
		ts.Fatalf("%s is empty", args[0])
	}
	timeRE := regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$`)
	for i, line := range strings.Split(strings.TrimSuffix(text, "\n"), "\n") {
		var r map[string]any
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			ts.Fatalf("%s line %d is not a JSON object: %v: %q", args[0], i+1, err, line)
		}
		t, _ := r["time"].(string)
		level, _ := r["level"].(string)
		msg, _ := r["msg"].(string)
		if !timeRE.MatchString(t) || !slices.Contains([]string{"DEBUG", "INFO", "WARN", "ERROR"}, level) || msg == "" {
			ts.Fatalf("%s line %d lacks a time, level or msg: %q", args[0], i+1, line)
		}
	}
}

// cmdOutputs reads the emulator's --outputs file and sets EMU_ENDPOINT,
// EMU_TA, EMU_PROFILE and EMU_ROLE (the first resource of each kind, by
// name): outputs FILE.
func cmdOutputs(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: outputs FILE")
	}
	var out struct {
		Endpoint                      string
		TrustAnchors, Profiles, Roles map[string]string
	}
	ts.Check(json.Unmarshal([]byte(ts.ReadFile(args[0])), &out))
	firstOf := func(m map[string]string) string {
		keys := slices.Sorted(maps.Keys(m))
		if len(keys) == 0 {
			ts.Fatalf("outputs: an empty map in %s", args[0])
		}
		return m[keys[0]]
	}
	ts.Setenv("EMU_ENDPOINT", out.Endpoint)
	ts.Setenv("EMU_TA", firstOf(out.TrustAnchors))
	ts.Setenv("EMU_PROFILE", firstOf(out.Profiles))
	ts.Setenv("EMU_ROLE", firstOf(out.Roles))
}

// cmdGenTLS writes a TLS server certificate for 127.0.0.1 and localhost
// as NAME.crt and NAME.key, and its CA as NAME-ca.crt: gentls NAME.
func cmdGenTLS(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: gentls NAME")
	}
	ca := pkitest.NewRoot(ts, "tls-root")
	key := pkitest.Key(ts, "p256#tls")
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: "localhost"},
		NotBefore:    time.Now().Add(-time.Minute),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, key.Public(), ca.Key)
	ts.Check(err)
	p8, err := x509.MarshalPKCS8PrivateKey(key)
	ts.Check(err)
	name := args[0]
	ts.Check(os.WriteFile(ts.MkAbs(name+".crt"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600))
	ts.Check(os.WriteFile(ts.MkAbs(name+".key"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: p8}), 0o600))
	ts.Check(os.WriteFile(ts.MkAbs(name+"-ca.crt"), pki.EncodeCertificates(ca.Cert), 0o600))
}
