//go:build linux

package websocket

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"

	"github.com/latchws/latch/internal/deflate"
	"github.com/latchws/latch/internal/frame"
)

// outcome names how a read ended, for comparing the two drivers.
func outcome(err error) string {
	var ce *CloseError
	var pe *protocolError
	switch {
	case errors.As(err, &ce):
		return fmt.Sprintf("close %d", ce.Code)
	case errors.As(err, &pe):
		return fmt.Sprintf("protocol %d", pe.code)
	case err == ErrReadLimit:
		return "limit"
	}
	return "error " + err.Error()
}

func messageEvent(mt int, p []byte) string {
	return fmt.Sprintf("msg %d %d %x", mt, len(p), sha256.Sum256(p))
}

func fuzzConnConfig(mode byte, limit uint16) connConfig {
	cfg := connConfig{isServer: mode&1 == 0, readLimit: int64(limit) + 1, heartbeatInterval: -1}
	if mode&2 != 0 {
		cfg.compression = &compressionConfig{params: deflate.Params{
			ServerNoContextTakeover: mode&4 != 0, ClientNoContextTakeover: mode&4 != 0,
			ServerMaxWindowBits: 15, ClientMaxWindowBits: 15,
		}}
	}
	return cfg
}

// readBlocking is what a blocking Conn makes of the stream, delivered in
// the chunks given.
func readBlocking(stream, chunks []byte, mode byte, limit uint16) []string {
	c := newConn(&chunkConn{in: stream, sizes: chunks}, fuzzConnConfig(mode, limit))
	defer c.CloseNow()
	var events []string
	for range 10000 {
		mt, p, err := c.ReadMessage()
		if err != nil {
			return append(events, outcome(err))
		}
		events = append(events, messageEvent(mt, p))
	}
	return events
}

// readEngine is what an event loop makes of the same stream, fed to it
// chunk by chunk as reads would deliver it. The loop does not run: the
// test calls it as its epoll events would.
func readEngine(t *testing.T, stream, chunks []byte, mode byte, limit uint16) []string {
	e := &Engine{cfg: EngineConfig{MaxQueuedBytes: 1 << 30}}
	l, err := newEventLoop(e)
	if err != nil {
		t.Fatal(err)
	}
	e.loops = []*eventLoop{l}
	defer l.closeFds()
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(fds[1])
	f := os.NewFile(uintptr(fds[0]), "engine-end")
	nc, err := net.FileConn(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	var events []string
	c := newConn(nc, fuzzConnConfig(mode, limit))
	e.conns.Add(1)
	h := Callbacks{
		OnMessage: func(c *Conn, mt int, p []byte) { events = append(events, messageEvent(mt, p)) },
		OnClose:   func(c *Conn, err error) { events = append(events, outcome(err)) },
	}
	if err := l.adopt(c, nc, nil, h); err != nil {
		t.Fatal(err)
	}
	l.servePending()
	lc := c.conn.(*loopConn)
	defer func() {
		lc.abort()
		l.closeFd(lc)
	}()
	for len(stream) > 0 && !lc.readDone {
		n := len(stream)
		if len(chunks) > 0 {
			n = min(n, int(chunks[0])+1)
			chunks = chunks[1:]
		}
		start := l.takeRest(lc)
		n = copy(l.buf[start:], stream[:n])
		stream = stream[n:]
		l.received(lc, start, n)
	}
	if !lc.readDone {
		l.readFailed(lc, io.EOF)
	}
	return events
}

// FuzzEngineMatchesBlocking feeds the same bytes, split anywhere, to a
// blocking Conn and to an event loop's connection: both must deliver the
// same messages and end the same way. The loop drives the Conn's own read
// path, so this checks the driver: where it stops and resumes, what it
// keeps between reads, compressed messages inflated across reads.
func FuzzEngineMatchesBlocking(f *testing.F) {
	text := maskedFrame(frame.OpText, false, []byte("hello"))
	bin := maskedFrame(frame.OpBinary, false, bytes.Repeat([]byte{0xfe}, 300))
	ping := maskedFrame(frame.OpPing, false, []byte("p"))
	frag := append(append([]byte{}, maskedFrame(frame.OpText, false, []byte("hé"))...), maskedFrame(frame.OpContinuation, false, []byte("llo"))...)
	frag[0] &^= 0x80
	closeFrame := maskedFrame(frame.OpClose, false, []byte{0x03, 0xe8})
	z := maskedFrame(frame.OpText, true, deflateForTest([]byte("compressed compressed compressed")))
	zbad := maskedFrame(frame.OpText, true, deflateForTest([]byte("bad \xff utf-8 in a compressed message")))
	zdata := deflateForTest([]byte(strings.Repeat("a compressed message in two frames, ", 20)))
	zfrag := maskedFrame(frame.OpText, true, zdata[:len(zdata)/2])
	zfrag[0] &^= 0x80 // FIN off: a continuation follows
	zfrag = append(zfrag, maskedFrame(frame.OpContinuation, false, zdata[len(zdata)/2:])...)
	split := append([]byte{}, zfrag[:len(zfrag)/3]...) // the message never completes
	f.Add(append(append(append([]byte{}, text...), ping...), bin...), []byte{1, 2, 200}, byte(0), uint16(1000))
	f.Add(append(append([]byte{}, frag...), closeFrame...), []byte{0, 0, 0, 3}, byte(0), uint16(10))
	f.Add(append(append(append([]byte{}, z...), ping...), z...), []byte{3, 0, 7}, byte(2), uint16(1000))
	f.Add(append(append([]byte{}, z...), z...), []byte{1}, byte(6), uint16(1000))
	f.Add(zbad, []byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, byte(2), uint16(1000))
	f.Add(append(append([]byte{}, zfrag...), text...), []byte{5, 5, 5}, byte(2), uint16(100))
	f.Add(split, []byte{}, byte(2), uint16(1000))
	f.Add([]byte{0x81, 0x05, 'h', 'e', 'l', 'l', 'o', 0x89, 0x00}, []byte{2}, byte(1), uint16(64)) // to a client
	f.Add(maskedFrame(frame.OpText, false, []byte{0xff, 0xfe}), []byte{}, byte(0), uint16(64))
	f.Fuzz(func(t *testing.T, stream, chunks []byte, mode byte, limit uint16) {
		want := readBlocking(stream, chunks, mode, limit)
		got := readEngine(t, stream, chunks, mode, limit)
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("engine read %q\nblocking Conn read %q", got, want)
		}
	})
}
