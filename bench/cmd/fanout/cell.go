package main

import (
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/latchws/latch/auth"
)

// scenario is one workload of the matrix.
type scenario struct {
	name     string
	subs     int // subscriber connections
	channels int // subscriber i is on channel i % channels
	rate     int // publishes per second, all publishers together
	pubs     int // publisher connections; channel c belongs to publisher c % pubs
	idle     bool
}

// result is what one cell (one server, one scenario, one repeat) measured.
type result struct {
	// Traffic cells.
	expected, delivered int64 // in-window deliveries expected and received (unique)
	gaps                int64 // in-window publications missing though a later one arrived
	spanMsgs            int64 // publications received (any) between the CPU readings
	dups, outOfOrder    int64
	disconnected        int64 // subscribers whose connection ended early
	p50, p99, max       time.Duration
	published, acked    int64 // in-window publishes and their acks
	window              time.Duration
	serverCPU           float64 // seconds, window start to drain end
	span                time.Duration
	clientCPU           float64 // seconds in the same span
	rssKiB              int64
	// Idle cells.
	baseKiB, idleKiB int64
	err              error
}

// cpuPerMsg is the server's CPU time between the two readings over the
// publications subscribers received between them (warm-up ones included:
// a server that is behind delivers those in the window too).
func (r result) cpuPerMsg() float64 { // µs
	if r.spanMsgs == 0 {
		return 0
	}
	return r.serverCPU * 1e6 / float64(r.spanMsgs)
}

func (r result) String() string {
	if r.err != nil {
		return "ERROR: " + r.err.Error()
	}
	if r.idleKiB > 0 {
		return fmt.Sprintf("base %.1f MiB, with subscribers %.1f MiB", float64(r.baseKiB)/1024, float64(r.idleKiB)/1024)
	}
	return fmt.Sprintf("delivered %d/%d gaps %d dup %d ooo %d disc %d, p50 %.2f ms p99 %.2f ms max %.2f ms, %.2f µs cpu/msg (server %.0f%%, client %.0f%%), acks %d/%d, rss %.1f MiB",
		r.delivered, r.expected, r.gaps, r.dups, r.outOfOrder, r.disconnected,
		ms(r.p50), ms(r.p99), ms(r.max), r.cpuPerMsg(),
		100*r.serverCPU/r.span.Seconds(), 100*r.clientCPU/r.span.Seconds(),
		r.acked, r.published, float64(r.rssKiB)/1024)
}

func ms(d time.Duration) float64 { return float64(d) / 1e6 }

// The phases of a traffic cell, read by publishers.
const (
	phaseWarmup int32 = iota
	phaseMeasure
	phaseStop
)

// subscriber is one subscriber connection and what the poller read on
// it. Fields other than inWindow are owned by the poller's goroutine until
// it has stopped (or done is closed).
type subscriber struct {
	c        *wsConn
	fd       int
	ch       int
	rbuf     []byte   // bytes read, not yet a whole frame
	msg      []byte   // a fragmented message so far
	seen     []uint64 // bitmap of sequence numbers received
	maxSeq   int64
	inWindow atomic.Int64 // unique in-window publications received
	total    atomic.Int64 // unique publications received, warm-up included
	dups     int64
	ooo      int64
	err      error
	done     chan struct{} // closed when the connection failed
}

// handle takes one message: for Centrifugo, one or more lines.
func (s *subscriber) handle(m []byte, now int64, h *hist) error {
	return forLines(m, func(l []byte) error {
		ln, err := parseLine(l)
		if err != nil {
			return err
		}
		switch ln.kind {
		case linePing:
			return s.c.writeText([]byte(`{}`))
		case lineError:
			return fmt.Errorf("error message: %.300s", l)
		case linePub:
			if int(ln.c) != s.ch || ln.s < 0 {
				return errBadPayload
			}
			w, bit := ln.s/64, uint64(1)<<(ln.s%64)
			for int64(len(s.seen)) <= w {
				s.seen = append(s.seen, 0)
			}
			if s.seen[w]&bit != 0 {
				s.dups++
				return nil
			}
			s.seen[w] |= bit
			s.total.Add(1)
			if ln.s < s.maxSeq {
				s.ooo++
			} else {
				s.maxSeq = ln.s
			}
			if ln.w == 1 {
				s.inWindow.Add(1)
				h.add(now - ln.t)
			}
		}
		return nil
	})
}

// publisher is one publishing connection; its writer owns the sequence
// numbers, its reader counts acks.
type publisher struct {
	c         *wsConn
	chans     []int    // the channels it publishes to, round robin
	seq       []uint64 // next sequence number per entry of chans
	winSeqs   []int64  // in-window publishes per entry of chans
	winFirst  []uint64 // first in-window sequence number per entry of chans
	sent      int64    // in-window publishes
	firstWin  atomic.Uint64
	acked     atomic.Int64 // acks of in-window publishes
	errAnswer atomic.Int64
	err       error // writer's
	rerr      error // reader's
	done      chan struct{}
}

func (p *publisher) readAcks(stopping *atomic.Bool) {
	defer close(p.done)
	for {
		m, err := p.c.readMessage()
		if err != nil {
			if !stopping.Load() {
				p.rerr = err
			}
			return
		}
		_ = forLines(m, func(l []byte) error {
			ln, err := parseLine(l)
			if err != nil {
				return err
			}
			switch ln.kind {
			case linePing:
				return p.c.writeText([]byte(`{}`))
			case lineError:
				if p.errAnswer.Add(1) == 1 {
					fmt.Fprintf(stderr, "publish error: %.300s\n", l)
				}
			case lineAck:
				if f := p.firstWin.Load(); f != 0 && ln.id >= f {
					p.acked.Add(1)
				}
			}
			return nil
		})
	}
}

// write publishes at rate per second until the phase is phaseStop, on a
// fixed schedule (a late send does not move the ones after it).
func (p *publisher) write(proto protocol, rate float64, base time.Time, phase *atomic.Int32, limit int64) {
	interval := time.Duration(float64(time.Second) / rate)
	next := time.Now()
	var id uint64 = 100
	var buf, data []byte
	for i := 0; int64(i) < limit; i++ {
		if d := time.Until(next); d > 0 {
			time.Sleep(d)
		}
		next = next.Add(interval)
		ph := phase.Load()
		if ph == phaseStop {
			return
		}
		k := i % len(p.chans)
		p.seq[k]++
		id++
		in := ph == phaseMeasure
		if in {
			if p.sent == 0 {
				p.firstWin.Store(id)
			}
			p.sent++
			if p.winSeqs[k] == 0 {
				p.winFirst[k] = p.seq[k]
			}
			p.winSeqs[k]++
		}
		data = appendPayload(data[:0], p.chans[k], p.seq[k], int64(time.Since(base)), in)
		buf = proto.appendPublish(buf[:0], id, channelName(p.chans[k]), data)
		if err := p.c.writeText(buf); err != nil {
			p.err = err
			return
		}
	}
}

func channelName(i int) string { return "bench:c" + strconv.Itoa(i) }

// token mints the HS256 connection token of user "u<i>" (no expiry).
func token(secret string, i int) (string, error) {
	return auth.SignHS256([]byte(secret), auth.Identity{User: "u" + strconv.Itoa(i)}, time.Now())
}

// connectSubscribers opens n subscribers, 32 handshakes at a time, each
// subscribed (and acknowledged) before its reader starts.
func connectSubscribers(s *server, secret string, n, channels int) ([]*subscriber, error) {
	subs := make([]*subscriber, n)
	errs := make([]error, n)
	sem := make(chan struct{}, 32)
	var wg sync.WaitGroup
	for i := range subs {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			tok, err := token(secret, i)
			if err != nil {
				errs[i] = err
				return
			}
			c, err := s.proto.open(s.addr, tok, 20*time.Second)
			if err != nil {
				errs[i] = fmt.Errorf("subscriber %d: %w", i, err)
				return
			}
			ch := i % channels
			if err := c.writeText(s.proto.appendSubscribe(nil, 2, channelName(ch))); err != nil {
				c.Close()
				errs[i] = err
				return
			}
			if err := awaitReply(c, 2, 20*time.Second); err != nil {
				c.Close()
				errs[i] = fmt.Errorf("subscriber %d: subscribe: %w", i, err)
				return
			}
			subs[i] = &subscriber{c: c, ch: ch, done: make(chan struct{})}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		closeSubs(subs)
		return nil, firstErr(errs)
	}
	return subs, nil
}

func firstErr(errs []error) error {
	n := 0
	var first error
	for _, e := range errs {
		if e != nil {
			if first == nil {
				first = e
			}
			n++
		}
	}
	if n > 1 {
		return fmt.Errorf("%w (and %d more)", first, n-1)
	}
	return first
}

func closeSubs(subs []*subscriber) {
	for _, s := range subs {
		if s != nil {
			s.c.Close()
		}
	}
}

// runCell runs one scenario against a fresh server.
func runCell(name string, sc scenario, o *options, secret string, profile string) (r result) {
	s, err := startServer(name, o, secret)
	if err != nil {
		return result{err: err}
	}
	var subs []*subscriber
	var pubs []*publisher
	var stopping atomic.Bool
	pl, err := newPoller()
	if err != nil {
		s.stop()
		return result{err: err}
	}
	polling := false
	defer func() {
		stopping.Store(true)
		if polling {
			<-pl.done
		}
		pl.close()
		// The server goes first, so the client's sockets are reset rather
		// than left in TIME_WAIT.
		s.stop()
		closeSubs(subs)
		for _, p := range pubs {
			p.c.Close()
			<-p.done
		}
	}()
	base := time.Now()
	h := &hist{}
	startPolling := func() error {
		for _, sb := range subs {
			if err := pl.add(sb); err != nil {
				return err
			}
		}
		polling = true
		go pl.run(base, h, &stopping, time.Now().Add(o.warmup+o.window+o.drain+60*time.Second))
		return nil
	}
	if sc.idle {
		before, err := s.settledRSS()
		if err != nil {
			return result{err: err}
		}
		subs, err = connectSubscribers(s, secret, sc.subs, max(sc.channels, 1))
		if err != nil {
			return result{err: err}
		}
		if err := startPolling(); err != nil { // answers Centrifugo's pings
			return result{err: err}
		}
		after, err := s.settledRSS()
		if err != nil {
			return result{err: err}
		}
		for _, sb := range subs {
			select {
			case <-sb.done:
				return result{err: fmt.Errorf("subscriber dropped while idle: %v", sb.err)}
			default:
			}
		}
		return result{baseKiB: before, idleKiB: after}
	}

	subs, err = connectSubscribers(s, secret, sc.subs, sc.channels)
	if err != nil {
		return result{err: err}
	}
	subsOn := make([]int64, sc.channels)
	for _, sb := range subs {
		subsOn[sb.ch]++
	}
	if err := startPolling(); err != nil {
		return result{err: err}
	}
	for k := range sc.pubs {
		tok, err := token(secret, 1_000_000+k)
		if err != nil {
			return result{err: err}
		}
		c, err := s.proto.open(s.addr, tok, 10*time.Second)
		if err != nil {
			return result{err: fmt.Errorf("publisher %d: %w", k, err)}
		}
		p := &publisher{c: c, done: make(chan struct{})}
		for ch := k; ch < sc.channels; ch += sc.pubs {
			p.chans = append(p.chans, ch)
		}
		p.seq = make([]uint64, len(p.chans))
		p.winSeqs = make([]int64, len(p.chans))
		p.winFirst = make([]uint64, len(p.chans))
		pubs = append(pubs, p)
		go p.readAcks(&stopping)
	}
	time.Sleep(200 * time.Millisecond) // let the subscriptions settle

	var phase atomic.Int32
	limit := int64(float64(sc.rate)*(o.warmup+o.window).Seconds()*1.1) + 100
	var wg sync.WaitGroup
	for _, p := range pubs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.write(s.proto, float64(sc.rate)/float64(sc.pubs), base, &phase, limit/int64(sc.pubs))
		}()
	}
	time.Sleep(o.warmup)

	t0, err := cpuTicks(s.pid())
	if err != nil {
		return result{err: err}
	}
	c0, _ := cpuTicks(selfPID)
	var m0 int64
	for _, sb := range subs {
		m0 += sb.total.Load()
	}
	start := time.Now()
	var prof chan error
	if profile != "" {
		prof = make(chan error, 1)
		go func() { prof <- s.saveCPUProfile(profile, int(o.window.Seconds())) }()
	}
	phase.Store(phaseMeasure)
	time.Sleep(o.window)
	phase.Store(phaseStop)
	r.window = time.Since(start)
	wg.Wait()

	for _, p := range pubs {
		if p.err != nil {
			return result{err: fmt.Errorf("publisher: %w", p.err)}
		}
		r.published += p.sent
		for k, ch := range p.chans {
			r.expected += p.winSeqs[k] * subsOn[ch]
		}
	}
	// Drain: wait for every in-window publication and ack, or give up.
	deadline := time.Now().Add(o.drain)
	for time.Now().Before(deadline) {
		r.delivered, r.acked = 0, 0
		alive := 0
		for _, sb := range subs {
			r.delivered += sb.inWindow.Load()
			select {
			case <-sb.done:
			default:
				alive++
			}
		}
		for _, p := range pubs {
			r.acked += p.acked.Load()
		}
		if (r.delivered >= r.expected || alive == 0) && r.acked >= r.published {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	r.span = time.Since(start)
	t1, err := cpuTicks(s.pid())
	if err != nil {
		return result{err: err}
	}
	c1, _ := cpuTicks(selfPID)
	for _, sb := range subs {
		r.spanMsgs += sb.total.Load()
	}
	r.spanMsgs -= m0
	r.serverCPU = float64(t1-t0) / clkTck
	r.clientCPU = float64(c1-c0) / clkTck
	r.rssKiB, _ = rssKiB(s.pid())
	if prof != nil {
		if err := <-prof; err != nil {
			fmt.Fprintln(stderr, "profile:", err)
		}
	}
	stopping.Store(true)
	for _, p := range pubs {
		if p.rerr != nil {
			return result{err: fmt.Errorf("publisher read: %w", p.rerr)}
		}
	}
	var firstSubErr error
	for _, sb := range subs {
		select {
		case <-sb.done:
			r.disconnected++
			if firstSubErr == nil {
				firstSubErr = sb.err
			}
		default:
		}
	}
	if firstSubErr != nil {
		fmt.Fprintf(stderr, "  %d subscribers ended early; first: %v\n", r.disconnected, firstSubErr)
	}
	// The poller still runs: stop it before reading what it owns.
	<-pl.done
	polling = false
	owner := make(map[int]*publisher)
	slot := make(map[int]int)
	for _, p := range pubs {
		for k, ch := range p.chans {
			owner[ch], slot[ch] = p, k
		}
	}
	for _, sb := range subs {
		r.dups += sb.dups
		r.outOfOrder += sb.ooo
		p, k := owner[sb.ch], slot[sb.ch]
		if p == nil {
			continue
		}
		for q := p.winFirst[k]; q < p.winFirst[k]+uint64(p.winSeqs[k]); q++ {
			w := q / 64
			got := w < uint64(len(sb.seen)) && sb.seen[w]&(1<<(q%64)) != 0
			if !got && int64(q) < sb.maxSeq {
				r.gaps++
			}
		}
	}
	r.p50, r.p99 = time.Duration(h.quantile(0.50)), time.Duration(h.quantile(0.99))
	r.max = time.Duration(h.max.Load())
	if r.delivered > r.expected {
		r.delivered = r.expected // cannot happen: unique deliveries; guard the ratio
	}
	return r
}
