package conformance

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// wsConn is the part of *websocket.Conn the echo applications use; both
// Latch and gorilla satisfy it.
type wsConn interface {
	NextReader() (int, io.Reader, error)
	NextWriter(messageType int) (io.WriteCloser, error)
	ReadMessage() (int, []byte, error)
	WriteMessage(messageType int, data []byte) error
	SetReadLimit(limit int64)
	Close() error
}

// tcase is one conformance case. The raw peer sends frames (whole, or in
// chunks of chop bytes) and must then observe exactly want. When want does
// not end in a close, the peer closes cleanly with 1000 and expects 1000
// back. After the implementation's close frame, TCP must be closed.
type tcase struct {
	name    string
	frames  []frame
	chop    int
	want    []event
	only    string        // "server" or "client": case applies to that role only
	timeout time.Duration // per event; default 3s

	readLimit    int64 // >0: SetReadLimit on the connection under test
	wantLimitErr bool  // the application's read must fail with ErrReadLimit

	check func(t *testing.T, p *peer) // extra assertions after the close

	comp *zconf // permessage-deflate enabled on the implementation (RFC 7692)
}

// echoStream is the streaming echo application (NextReader → NextWriter +
// io.Copy). On a read error it stops without finishing the message.
func echoStream(c wsConn) error {
	for {
		mt, r, err := c.NextReader()
		if err != nil {
			return err
		}
		w, err := c.NextWriter(mt)
		if err != nil {
			return err
		}
		if _, err := io.Copy(w, r); err != nil {
			return err
		}
		if err := w.Close(); err != nil {
			return err
		}
	}
}

// echoMessages is the whole-message echo application.
func echoMessages(c wsConn) error {
	for {
		mt, p, err := c.ReadMessage()
		if err != nil {
			return err
		}
		if err := c.WriteMessage(mt, p); err != nil {
			return err
		}
	}
}

// target is one way of putting the implementation under test.
type target struct {
	name string
	role string // role of the implementation: "server" or "client"
	// start returns the raw peer connected to the implementation and a
	// channel that receives the application's final error.
	start func(t *testing.T, tc tcase, release <-chan struct{}) (*peer, <-chan error)
	// wireOnly: the application's error and Conn.Compressed are not
	// observable (a whole server under test); the wire is asserted alone.
	wireOnly bool
}

var targets = []target{
	{name: "server-stream", role: "server", start: func(t *testing.T, tc tcase, r <-chan struct{}) (*peer, <-chan error) {
		return startServer(t, tc, r, echoStream)
	}},
	{name: "server-message", role: "server", start: func(t *testing.T, tc tcase, r <-chan struct{}) (*peer, <-chan error) {
		return startServer(t, tc, r, echoMessages)
	}},
	{name: "client-message", role: "client", start: startClient},
}

func startServer(t *testing.T, tc tcase, release <-chan struct{}, app func(wsConn) error) (*peer, <-chan error) {
	appErr := make(chan error, 1)
	done := make(chan struct{})
	compCh := make(chan bool, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer close(done)
		c, err := upgrade(w, r, tc.comp)
		if err != nil {
			appErr <- fmt.Errorf("upgrade: %w", err)
			return
		}
		compCh <- compressed(c)
		if tc.readLimit > 0 {
			c.SetReadLimit(tc.readLimit)
		}
		appErr <- app(c)
		closeAfter(c, release)
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { waitApp(t, done) })
	addr := srv.Listener.Addr().String()
	if tc.comp == nil {
		p, err := rawClientHandshake(addr)
		if err != nil {
			t.Fatalf("opening handshake with %s server: %v", implName, err)
		}
		p.sutCompressed = compCh
		return p, appErr
	}
	p, ext, err := rawClientHandshakeExt(addr, tc.comp.offers)
	if err != nil {
		t.Fatalf("opening handshake with %s server: %v", implName, err)
	}
	p.sutCompressed = compCh
	if ext != tc.comp.wantResp {
		p.conn.Close()
		t.Fatalf("%s server answered offer %q with Sec-WebSocket-Extensions %q, want %q", implName, tc.comp.offers, ext, tc.comp.wantResp)
	}
	if ext != "" {
		if p.z, err = newPMD(ext, strings.Join(tc.comp.offers, ", "), true); err != nil {
			p.conn.Close()
			t.Fatalf("raw client cannot use the response %q: %v", ext, err)
		}
	}
	return p, appErr
}

func startClient(t *testing.T, tc tcase, release <-chan struct{}) (*peer, <-chan error) {
	return startClientApp(t, tc, release, echoMessages)
}

func startClientApp(t *testing.T, tc tcase, release <-chan struct{}, app func(wsConn) error) (*peer, <-chan error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	appErr := make(chan error, 1)
	done := make(chan struct{})
	compCh := make(chan bool, 1)
	t.Cleanup(func() { waitApp(t, done) })
	go func() {
		defer close(done)
		c, err := dial("ws://"+ln.Addr().String()+"/echo", tc.comp)
		if err != nil {
			appErr <- fmt.Errorf("dial: %w", err)
			return
		}
		compCh <- compressed(c)
		if tc.readLimit > 0 {
			c.SetReadLimit(tc.readLimit)
		}
		appErr <- app(c)
		closeAfter(c, release)
	}()
	ln.(*net.TCPListener).SetDeadline(time.Now().Add(3 * time.Second))
	conn, err := ln.Accept()
	if err != nil {
		t.Fatalf("%s client did not connect: %v", implName, err)
	}
	var resp string
	if tc.comp != nil {
		resp = tc.comp.resp
	}
	p, offer, err := rawServerHandshakeExt(conn, resp)
	if err != nil {
		conn.Close()
		t.Fatalf("opening handshake with %s client: %v", implName, err)
	}
	p.sutCompressed = compCh
	if tc.comp == nil {
		if offer != "" {
			conn.Close()
			t.Fatalf("%s client offered extensions %q without compression enabled", implName, offer)
		}
		return p, appErr
	}
	if offer != tc.comp.latchOffer() {
		conn.Close()
		t.Fatalf("%s client offered Sec-WebSocket-Extensions %q, want %q", implName, offer, tc.comp.latchOffer())
	}
	if resp != "" {
		if p.z, err = newPMD(resp, offer, false); err != nil {
			conn.Close()
			t.Fatalf("raw server cannot use its own response %q: %v", resp, err)
		}
	}
	return p, appErr
}

// closeAfter calls Close once the test has checked the wire, so that what
// the peer observed is the library's own doing, not the application's.
func closeAfter(c wsConn, release <-chan struct{}) {
	select {
	case <-release:
	case <-time.After(10 * time.Second):
	}
	c.Close()
}

// waitApp checks that the application goroutine has ended, so no case
// leaks goroutines; runCase has closed the raw connection by then.
func waitApp(t *testing.T, done <-chan struct{}) {
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Errorf("%s application goroutine still running 5s after the test", implName)
	}
}

// sentClose describes the first close frame the raw peer sends: its code
// (1005 for an empty payload, -2 for a 1-byte one) and reason.
func sentClose(frames []frame) (code int, reason string, ok bool) {
	for _, f := range frames {
		if f.opcode != opClose || f.raw != nil {
			continue
		}
		switch len(f.payload) {
		case 0:
			return 1005, "", true
		case 1:
			return -2, "", true
		}
		return int(binary.BigEndian.Uint16(f.payload)), string(f.payload[2:]), true
	}
	return 0, "", false
}

func sameEvent(got, want event) bool {
	if got.kind != want.kind {
		return false
	}
	switch got.kind {
	case "close":
		return got.code == want.code
	case "msg":
		return got.op == want.op && bytes.Equal(got.data, want.data)
	}
	return bytes.Equal(got.data, want.data)
}

func runCase(t *testing.T, tg target, tc tcase) {
	release := make(chan struct{})
	var releaseOnce sync.Once
	releaseApp := func() { releaseOnce.Do(func() { close(release) }) }
	defer releaseApp()
	p, appErr := tg.start(t, tc, release)
	frames, want := tc.frames, tc.want
	if len(want) == 0 || want[len(want)-1].kind != "close" {
		frames = append(slices.Clone(frames), closeF(1000, ""))
		want = append(slices.Clone(want), closeEv(1000))
	}
	wire := p.encodeAll(frames)
	wdone := make(chan struct{})
	go func() {
		defer close(wdone)
		// Write errors are expected once the implementation fails the
		// connection; what it sent back is what the case asserts.
		p.write(wire, tc.chop)
	}()
	defer func() {
		p.conn.Close()
		<-wdone
	}()

	timeout := tc.timeout
	if timeout == 0 {
		timeout = 3 * time.Second
	}
	for i, w := range want {
		got, err := p.readEvent(time.Now().Add(timeout))
		if err != nil {
			t.Fatalf("%s %s: event %d: want %v, got error: %v", implName, tg.role, i, w, err)
		}
		p.got = append(p.got, got)
		if !sameEvent(got, w) {
			t.Fatalf("%s %s: event %d: want %v, got %v", implName, tg.role, i, w, got)
		}
		checkCompression(t, tg, tc, p, i, got, w)
		if got.kind == "close" && got.frames == -1 && w.code == 1000 {
			t.Logf("note: close frame arrived in the middle of an echoed message")
		}
	}

	final := want[len(want)-1].code
	code, reason, weClosed := sentClose(frames)
	reply := weClosed && code == final
	if tg.role == "server" || !reply {
		// The server closes TCP once the exchange is done (RFC 6455
		// §7.1.1); an endpoint that fails the connection closes it at once
		// (§7.1.7), without waiting for our close frame. The application
		// has not called Close yet: this is the library's own doing.
		if err := p.expectTCPClosed(3 * time.Second); err != nil {
			t.Errorf("%s %s: %v", implName, tg.role, err)
		}
	}
	// Close our side too, like any peer that has seen the close (or EOF);
	// the raw server does so first when the implementation is the client
	// (§7.1.1).
	p.conn.Close()

	var err error
	select {
	case err = <-appErr:
	case <-time.After(3 * time.Second):
		t.Fatalf("%s %s: application read still blocked 3s after the close", implName, tg.role)
	}
	releaseApp()
	if tg.wireOnly {
		if tc.check != nil {
			tc.check(t, p)
		}
		return
	}
	switch {
	case reply:
		// The reader gets *CloseError with the peer's code and reason.
		c, text, ok := asCloseError(err)
		if !ok || c != code || text != reason {
			t.Errorf("%s %s: application error %v, want *CloseError{%d, %q}", implName, tg.role, err, code, reason)
		}
	case err == nil:
		t.Errorf("%s %s: application read returned no error", implName, tg.role)
	case !weClosed && closeStatus(err) != -1:
		t.Errorf("%s %s: CloseStatus(%v) = %d, want -1: no close frame was received", implName, tg.role, err, closeStatus(err))
	}
	if tc.wantLimitErr && !errors.Is(err, errReadLimit) {
		t.Errorf("%s %s: application error %v, want ErrReadLimit", implName, tg.role, err)
	}
	if tc.comp != nil && compressedKnown {
		select {
		case c := <-p.sutCompressed:
			if c != (p.z != nil) {
				t.Errorf("%s %s: Conn.Compressed() = %v, want %v", implName, tg.role, c, p.z != nil)
			}
		default:
			t.Errorf("%s %s: Conn.Compressed() not reported", implName, tg.role)
		}
	}
	if tc.check != nil {
		tc.check(t, p)
	}
}

// checkCompression asserts RSV1 on an echoed message (RFC 7692 §6.1): the
// threshold decides, for NextWriter too (it waits for the message to reach
// the threshold or to fill its write buffer, 4 KiB by default).
func checkCompression(t *testing.T, tg target, tc tcase, p *peer, i int, got, w event) {
	if got.kind != "msg" || w.z == zAny {
		return
	}
	want := w.z == zComp
	if w.z == zAuto {
		thr := tc.comp.thresholdOrDefault()
		streamed := strings.HasPrefix(tg.name, "server-stream") && len(w.data) > 4096
		want = p.z != nil && (thr < 0 || len(w.data) >= thr || streamed)
	}
	if got.comp != want {
		t.Errorf("%s %s: event %d (%d bytes): RSV1 %v, want %v", implName, tg.role, i, len(got.data), got.comp, want)
	}
	// Deflate must shrink the suite's compressible payloads.
	if got.comp && len(got.data) >= 1024 && got.wire >= len(got.data) {
		t.Errorf("%s %s: event %d: %d bytes compressed to %d", implName, tg.role, i, len(got.data), got.wire)
	}
}

// heavy reports whether a case moves more than 1 MiB; those run one at a
// time so that the 2-core CI machine meets their deadlines.
func heavy(tc tcase) bool {
	n := 0
	for _, f := range tc.frames {
		n += len(f.payload)
	}
	return n > 1<<20
}

// TestConformance runs every case against the server (streaming and
// whole-message echo) and the client. Light cases mostly wait on the
// network, so they run eight at a time (more than -parallel's default of
// GOMAXPROCS) to keep even a failing run short.
func TestConformance(t *testing.T) {
	runTable(t, allCases())
}

// runTable runs cases against every target, light ones eight at a time.
func runTable(t *testing.T, cases []tcase) {
	names := map[string]bool{}
	for _, tc := range cases {
		if names[tc.name] {
			t.Fatalf("duplicate case name %q", tc.name)
		}
		names[tc.name] = true
	}
	for _, tg := range targets {
		t.Run(tg.name, func(t *testing.T) {
			var light, big []tcase
			for _, tc := range cases {
				switch {
				case tc.only != "" && tc.only != tg.role:
				case heavy(tc):
					big = append(big, tc)
				default:
					light = append(light, tc)
				}
			}
			queue := make(chan tcase, len(light))
			for _, tc := range light {
				queue <- tc
			}
			close(queue)
			var wg sync.WaitGroup
			for range 8 {
				wg.Go(func() {
					for tc := range queue {
						t.Run(tc.name, func(t *testing.T) { runCase(t, tg, tc) })
					}
				})
			}
			wg.Wait()
			for _, tc := range big {
				t.Run(tc.name, func(t *testing.T) { runCase(t, tg, tc) })
			}
		})
	}
}
