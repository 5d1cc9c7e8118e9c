//go:build linux

package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"time"
)

// target is one credential server under load: where it listens, the
// exact bytes of one vend request, and its process.
type target struct {
	name string
	addr string
	req  []byte
	pid  int
}

// client is one keep-alive HTTP/1.1 connection with a minimal response
// reader (status line, Content-Length or chunked body), so that the load
// generator, which shares the CPUs with the servers, costs little.
type client struct {
	addr string
	c    net.Conn
	br   *bufio.Reader
	body []byte
}

func dial(addr string) (*client, error) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	return &client{addr: addr, c: c, br: bufio.NewReaderSize(c, 16<<10), body: make([]byte, 0, 8<<10)}, nil
}

func (c *client) close() {
	if c.c != nil {
		c.c.Close()
		c.c = nil
	}
}

// redial replaces a connection that failed.
func (c *client) redial() error {
	c.close()
	n, err := dial(c.addr)
	if err != nil {
		return err
	}
	*c = *n
	return nil
}

// vend sends req and reads the answer: nil only for a 200 whose body has
// non-empty AccessKeyId, SecretAccessKey, Token and Expiration.
func (c *client) vend(req []byte) error {
	if c.c == nil {
		if err := c.redial(); err != nil {
			return err
		}
	}
	if _, err := c.c.Write(req); err != nil {
		c.close()
		return err
	}
	status, keep, err := c.readResponse()
	if err != nil {
		c.close()
		return err
	}
	if !keep {
		c.close()
	}
	if status != 200 {
		return fmt.Errorf("status %d: %.200s", status, c.body)
	}
	if !hasCredentials(c.body) {
		return fmt.Errorf("200 without credentials: %.200s", c.body)
	}
	return nil
}

var errMalformed = errors.New("malformed HTTP response")

func (c *client) line() ([]byte, error) {
	l, err := c.br.ReadSlice('\n')
	if err != nil {
		return nil, err
	}
	return bytes.TrimRight(l, "\r\n"), nil
}

func (c *client) readResponse() (status int, keepAlive bool, err error) {
	l, err := c.line()
	if err != nil {
		return 0, false, err
	}
	// HTTP/1.1 200 OK
	if len(l) < 12 || !bytes.HasPrefix(l, []byte("HTTP/1.")) {
		return 0, false, errMalformed
	}
	status, err = strconv.Atoi(string(l[9:12]))
	if err != nil {
		return 0, false, errMalformed
	}
	length, chunked, keepAlive := -1, false, true
	for {
		l, err := c.line()
		if err != nil {
			return 0, false, err
		}
		if len(l) == 0 {
			break
		}
		name, value, ok := bytes.Cut(l, []byte(":"))
		if !ok {
			return 0, false, errMalformed
		}
		value = bytes.TrimSpace(value)
		switch {
		case bytes.EqualFold(name, []byte("Content-Length")):
			if length, err = strconv.Atoi(string(value)); err != nil {
				return 0, false, errMalformed
			}
		case bytes.EqualFold(name, []byte("Transfer-Encoding")):
			chunked = bytes.EqualFold(value, []byte("chunked"))
		case bytes.EqualFold(name, []byte("Connection")):
			keepAlive = !bytes.EqualFold(value, []byte("close"))
		}
	}
	c.body = c.body[:0]
	switch {
	case chunked:
		for {
			l, err := c.line()
			if err != nil {
				return 0, false, err
			}
			size, err := strconv.ParseInt(string(bytes.TrimSpace(l)), 16, 32)
			if err != nil {
				return 0, false, errMalformed
			}
			if size == 0 {
				if _, err := c.line(); err != nil { // the empty trailer
					return 0, false, err
				}
				break
			}
			if err := c.read(int(size)); err != nil {
				return 0, false, err
			}
			if _, err := c.line(); err != nil {
				return 0, false, err
			}
		}
	case length >= 0:
		if err := c.read(length); err != nil {
			return 0, false, err
		}
	default:
		return 0, false, errors.New("a response with neither Content-Length nor chunked encoding")
	}
	return status, keepAlive, nil
}

func (c *client) read(n int) error {
	start := len(c.body)
	c.body = slices.Grow(c.body, n)[:start+n]
	_, err := io.ReadFull(c.br, c.body[start:])
	return err
}

// hasCredentials checks the four fields both servers answer (as JSON
// strings, non-empty).
func hasCredentials(b []byte) bool {
	for _, k := range [][]byte{[]byte(`"AccessKeyId":"`), []byte(`"SecretAccessKey":"`), []byte(`"Token":"`), []byte(`"Expiration":"`)} {
		i := bytes.Index(b, k)
		if i < 0 || i+len(k) >= len(b) || b[i+len(k)] == '"' {
			return false
		}
	}
	return true
}

// errorLog keeps the first few distinct errors.
type errorLog struct {
	mu   sync.Mutex
	seen map[string]int
}

func (e *errorLog) add(err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.seen == nil {
		e.seen = map[string]int{}
	}
	if _, ok := e.seen[err.Error()]; ok || len(e.seen) < 5 {
		e.seen[err.Error()]++
	}
}

func (e *errorLog) list() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []string
	for k, n := range e.seen {
		out = append(out, fmt.Sprintf("%dx %s", n, k))
	}
	slices.Sort(out)
	return out
}

// Percentiles in microseconds.
type Percentiles struct {
	P50  float64 `json:"p50_us"`
	P90  float64 `json:"p90_us"`
	P99  float64 `json:"p99_us"`
	P999 float64 `json:"p99_9_us"`
	Max  float64 `json:"max_us"`
}

func percentiles(ns []int64) Percentiles {
	if len(ns) == 0 {
		return Percentiles{}
	}
	slices.Sort(ns)
	at := func(p float64) float64 {
		i := int(p*float64(len(ns))+0.999999) - 1
		i = max(0, min(i, len(ns)-1))
		return float64(ns[i]) / 1e3
	}
	return Percentiles{P50: at(0.50), P90: at(0.90), P99: at(0.99), P999: at(0.999), Max: float64(ns[len(ns)-1]) / 1e3}
}

// Throughput is a closed-loop run.
type Throughput struct {
	Clients   int         `json:"clients"`
	Seconds   float64     `json:"seconds"`
	OK        int         `json:"ok"`
	Failed    int         `json:"failed"`
	PerSecond float64     `json:"vends_per_second"`
	Latency   Percentiles `json:"latency"`
	// ServerCPU is the server process's CPU time (user+system) during
	// the run; ClientCPU the load generator's (this whole process).
	ServerCPU       float64  `json:"server_cpu_seconds"`
	ClientCPU       float64  `json:"client_cpu_seconds"`
	ServerCPUPerOp  float64  `json:"server_cpu_us_per_vend"`
	Errors          []string `json:"errors,omitempty"`
	ServerCPUShares float64  `json:"server_cpus_used"`
}

// closedLoop has clients connections each send a request as soon as the
// previous answer is in, for d.
func closedLoop(t *target, clients int, d time.Duration) (*Throughput, error) {
	conns := make([]*client, clients)
	for i := range conns {
		c, err := dial(t.addr)
		if err != nil {
			return nil, err
		}
		defer c.close()
		conns[i] = c
	}
	var (
		wg     sync.WaitGroup
		errs   errorLog
		lats   = make([][]int64, clients)
		oks    = make([]int, clients)
		fails  = make([]int, clients)
		starts = make(chan struct{})
	)
	cpu0, cpuSelf0 := procCPU(t.pid), selfCPU()
	start := time.Now()
	deadline := start.Add(d)
	for i, c := range conns {
		wg.Go(func() {
			<-starts
			lat := make([]int64, 0, 1<<16)
			for {
				t0 := time.Now()
				if !t0.Before(deadline) {
					break
				}
				err := c.vend(t.req)
				lat = append(lat, int64(time.Since(t0)))
				if err != nil {
					fails[i]++
					errs.add(err)
					continue
				}
				oks[i]++
			}
			lats[i] = lat
		})
	}
	close(starts)
	wg.Wait()
	elapsed := time.Since(start).Seconds()
	cpu1, cpuSelf1 := procCPU(t.pid), selfCPU()
	r := &Throughput{Clients: clients, Seconds: elapsed, Errors: errs.list(), ServerCPU: cpu1 - cpu0, ClientCPU: cpuSelf1 - cpuSelf0}
	var all []int64
	for i := range conns {
		r.OK += oks[i]
		r.Failed += fails[i]
		all = append(all, lats[i]...)
	}
	r.PerSecond = float64(r.OK) / elapsed
	r.Latency = percentiles(all)
	if r.OK > 0 {
		r.ServerCPUPerOp = r.ServerCPU / float64(r.OK) * 1e6
	}
	r.ServerCPUShares = r.ServerCPU / elapsed
	return r, nil
}

// Latency is an open-loop run at a fixed rate.
type Latency struct {
	Rate      float64 `json:"rate_per_second"`
	Seconds   float64 `json:"seconds"`
	Conns     int     `json:"connections"`
	Scheduled int     `json:"scheduled"`
	OK        int     `json:"ok"`
	Failed    int     `json:"failed"`
	// Late counts requests sent more than LateAfter after their
	// scheduled time (all connections busy, or the generator behind).
	Late      int     `json:"late"`
	LateAfter float64 `json:"late_after_us"`
	// FromSchedule is measured from each request's scheduled time to
	// its answer (no coordinated omission); Service from the moment it
	// was written; Lag is how late the generator handed it to a
	// connection.
	FromSchedule   Percentiles `json:"from_schedule"`
	Service        Percentiles `json:"service"`
	Lag            Percentiles `json:"generator_lag"`
	ServerCPU      float64     `json:"server_cpu_seconds"`
	ClientCPU      float64     `json:"client_cpu_seconds"`
	ServerCPUPerOp float64     `json:"server_cpu_us_per_vend"`
	Errors         []string    `json:"errors,omitempty"`
}

type scheduled struct {
	at, handed time.Time
}

// openLoop sends rate requests a second for d on conns connections,
// each at its scheduled time (on a timeline, not after the previous
// answer), and measures each from that time.
func openLoop(t *target, rate float64, d time.Duration, conns int, lateAfter time.Duration) (*Latency, error) {
	n := int(rate * d.Seconds())
	interval := time.Duration(float64(time.Second) / rate)
	clients := make([]*client, conns)
	for i := range clients {
		c, err := dial(t.addr)
		if err != nil {
			return nil, err
		}
		defer c.close()
		clients[i] = c
	}
	var (
		wg      sync.WaitGroup
		errs    errorLog
		jobs    = make(chan scheduled, n)
		fromS   = make([][]int64, conns)
		service = make([][]int64, conns)
		lag     = make([][]int64, conns)
		oks     = make([]int, conns)
		fails   = make([]int, conns)
		late    = make([]int, conns)
	)
	for i, c := range clients {
		wg.Go(func() {
			for j := range jobs {
				sent := time.Now()
				err := c.vend(t.req)
				end := time.Now()
				fromS[i] = append(fromS[i], int64(end.Sub(j.at)))
				service[i] = append(service[i], int64(end.Sub(sent)))
				lag[i] = append(lag[i], int64(j.handed.Sub(j.at)))
				if sent.Sub(j.at) > lateAfter {
					late[i]++
				}
				if err != nil {
					fails[i]++
					errs.add(err)
					continue
				}
				oks[i]++
			}
		})
	}
	cpu0, cpuSelf0 := procCPU(t.pid), selfCPU()
	start := time.Now().Add(10 * time.Millisecond)
	done := make(chan struct{})
	go func() {
		// The dispatcher sleeps on its own thread with nanosleep and a
		// tiny timer slack: Go's own timers round sleeps under a
		// millisecond up to one when the process is idle, which would
		// count the generator's lateness against the server.
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		preciseTimers()
		for i := range n {
			at := start.Add(time.Duration(i) * interval)
			if wait := time.Until(at); wait > 0 {
				sleep(wait)
			}
			jobs <- scheduled{at: at, handed: time.Now()}
		}
		close(jobs)
		close(done)
	}()
	<-done
	wg.Wait()
	elapsed := time.Since(start).Seconds()
	cpu1, cpuSelf1 := procCPU(t.pid), selfCPU()
	r := &Latency{Rate: rate, Seconds: elapsed, Conns: conns, Scheduled: n, LateAfter: float64(lateAfter) / 1e3, Errors: errs.list(),
		ServerCPU: cpu1 - cpu0, ClientCPU: cpuSelf1 - cpuSelf0}
	var a, b, c []int64
	for i := range clients {
		r.OK += oks[i]
		r.Failed += fails[i]
		r.Late += late[i]
		a = append(a, fromS[i]...)
		b = append(b, service[i]...)
		c = append(c, lag[i]...)
	}
	r.FromSchedule, r.Service, r.Lag = percentiles(a), percentiles(b), percentiles(c)
	if r.OK > 0 {
		r.ServerCPUPerOp = r.ServerCPU / float64(r.OK) * 1e6
	}
	return r, nil
}
