package caclient_test

import (
	"crypto/tls"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/keyless-dev/keyless/internal/ca/catest"
	"github.com/keyless-dev/keyless/internal/caproto"
	"github.com/keyless-dev/keyless/internal/store"
	"github.com/keyless-dev/keyless/internal/testkit"
)

// listToken is a provisioner token for the certificate list.
func listToken(t *testing.T, c *catest.CA, now time.Time) string {
	t.Helper()
	tok, err := caproto.NewToken(caproto.TokenOptions{Provisioner: catest.Admin, Key: c.Keys[0], Subject: "list",
		Audience: c.URL + caproto.PathList, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// TestListFilterReachesTheCA: the notAfter range goes to the CA, which
// answers from its index with the certificates within it, bounds
// included, soonest first; the unfiltered list is every certificate,
// oldest first, streamed (more than one page of the store).
func TestListFilterReachesTheCA(t *testing.T) {
	clk := testkit.NewClock(time.Now().Truncate(time.Second))
	st := store.NewMemory()
	c := catest.Start(t, catest.Options{Store: st, Clock: clk})
	cl := c.Client(t)
	now := clk.Now()
	from, to := now, now.Add(24*time.Hour)
	put := func(serial int, notAfter time.Time) {
		err := st.PutCertificate(&store.Certificate{Serial: strconv.Itoa(serial), Subject: "gitlab-runner", NotBefore: now.Add(-time.Hour),
			NotAfter: notAfter, Provisioner: catest.Admin, IssuedAt: now.Add(time.Duration(serial) * time.Second)})
		if err != nil {
			t.Fatal(err)
		}
	}
	put(1, from.Add(-time.Nanosecond)) // expired a moment ago: out
	put(2, to)                         // the upper bound: in
	put(3, from)                       // the lower bound: in
	put(4, to.Add(time.Nanosecond))    // a moment too late: out
	for i := 5; i < 600; i++ {
		put(i, now.Add(48*time.Hour))
	}
	list := func(f caproto.ListFilter) []string {
		t.Helper()
		var out []string
		if err := cl.List(t.Context(), listToken(t, c, now), f, func(c caproto.Certificate) error {
			out = append(out, c.Serial)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return out
	}
	if diff := cmp.Diff([]string{"3", "2"}, list(caproto.ListFilter{NotAfterFrom: from, NotAfterTo: to})); diff != "" {
		t.Errorf("filtered list (-want +got):\n%s", diff)
	}
	all := list(caproto.ListFilter{})
	if len(all) != 599 || all[0] != "1" || all[598] != "599" {
		t.Errorf("unfiltered list: %d certificates, from %s to %s; want 599 from 1 to 599", len(all), all[0], all[len(all)-1])
	}

	// fn's error stops the list and comes back as it is.
	stop := errors.New("enough")
	n := 0
	err := cl.List(t.Context(), listToken(t, c, now), caproto.ListFilter{}, func(caproto.Certificate) error {
		if n++; n == 3 {
			return stop
		}
		return nil
	})
	if err != stop || n != 3 {
		t.Errorf("stopping: %v after %d", err, n)
	}

	// A malformed bound is refused, naming the parameter.
	req, _ := http.NewRequest(http.MethodGet, c.URL+caproto.PathList+"?notAfterFrom=yesterday&notAfterTo=2030-01-01T00:00:00Z", nil)
	req.Header.Set("Authorization", "Bearer "+listToken(t, c, now))
	httpc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: c.Roots()}}}
	defer httpc.CloseIdleConnections()
	resp, body := testkit.Do(t, httpc, req)
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), "notAfterFrom") {
		t.Errorf("a malformed bound: %d %s", resp.StatusCode, body)
	}
}

// failingList is a store whose certificate walk fails after a few.
type failingList struct {
	store.Store
	after int
}

func (s failingList) Certificates(fn func(*store.Certificate) bool) error {
	n := 0
	err := s.Store.Certificates(func(c *store.Certificate) bool {
		n++
		return n <= s.after && fn(c)
	})
	if err == nil && n > s.after {
		err = errors.New("disk on fire")
	}
	return err
}

// TestListCutShortIsAnError: when the CA's store fails in the middle of
// a list it has begun to send, the client gets an error, not a list that
// looks complete and is short.
func TestListCutShortIsAnError(t *testing.T) {
	mem := store.NewMemory()
	now := time.Now()
	for i := 1; i <= 10; i++ {
		if err := mem.PutCertificate(&store.Certificate{Serial: strconv.Itoa(i), NotAfter: now.Add(time.Hour), IssuedAt: now.Add(time.Duration(i))}); err != nil {
			t.Fatal(err)
		}
	}
	c := catest.Start(t, catest.Options{Store: failingList{Store: mem, after: 5}})
	var got []string
	err := c.Client(t).List(t.Context(), listToken(t, c, now), caproto.ListFilter{}, func(c caproto.Certificate) error {
		got = append(got, c.Serial)
		return nil
	})
	if err == nil {
		t.Fatalf("a list cut short by the store's failure: no error, %d certificates", len(got))
	}
}
