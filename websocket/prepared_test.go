package websocket

import (
	"bufio"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

// batchOf prepares n text messages of size bytes, numbered.
func batchOf(t *testing.T, n, size int) []*PreparedMessage {
	t.Helper()
	pms := make([]*PreparedMessage, n)
	for i := range pms {
		msg := fmt.Sprintf("%05d", i) + strings.Repeat("m", max(size-5, 0))
		pm, err := NewPreparedMessage(TextMessage, []byte(msg))
		if err != nil {
			t.Fatal(err)
		}
		pms[i] = pm
	}
	return pms
}

// TestWritePreparedMessagesInOrder: a batch mixing shared frames, control
// frames and frames the connection encodes itself (a client's masked
// frames; compression with and without context takeover) arrives whole and
// in order, on both sides.
func TestWritePreparedMessagesInOrder(t *testing.T) {
	ping, _ := NewPreparedMessage(PingMessage, []byte("p"))
	for _, tc := range []struct {
		name               string
		server, compressed bool
		takeover           bool
	}{
		{"server", true, false, false},
		{"server compressed", true, true, false},
		{"server compressed takeover", true, true, true},
		{"client", false, false, false},
		{"client compressed", false, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pms := append(batchOf(t, 20, 300), ping)
			pms = append(pms, batchOf(t, 20, 3000)...)
			got := make(chan []string, 1)
			pingAt := make(chan int, 1)
			read := func(c *Conn) {
				var msgs []string
				c.SetPingHandler(func(s string) error { pingAt <- len(msgs); return nil })
				for range 40 {
					_, p, err := c.ReadMessage()
					if err != nil {
						t.Errorf("read: %v", err)
						break
					}
					msgs = append(msgs, string(p))
				}
				got <- msgs
			}
			write := func(c *Conn) {
				if err := c.WritePreparedMessages(pms); err != nil {
					t.Errorf("WritePreparedMessages: %v", err)
				}
			}
			u := &Upgrader{EnableCompression: tc.compressed, CompressionContextTakeover: tc.takeover}
			url := serve(t, u, func(c *Conn) {
				if tc.server {
					write(c)
					c.ReadMessage() // ends with the client
				} else {
					read(c)
				}
			})
			d := &Dialer{EnableCompression: tc.compressed, CompressionContextTakeover: tc.takeover}
			c, _, err := d.Dial(url, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer c.CloseNow()
			if c.Compressed() != tc.compressed {
				t.Fatalf("compression negotiated: %v", c.Compressed())
			}
			if tc.server {
				read(c)
			} else {
				write(c)
			}
			msgs := <-got
			var want []string
			for _, pm := range pms {
				if pm.messageType == TextMessage {
					want = append(want, string(pm.data))
				}
			}
			if strings.Join(msgs, "|") != strings.Join(want, "|") {
				t.Fatalf("got %d messages, not the %d sent in order", len(msgs), len(want))
			}
			select {
			case at := <-pingAt:
				if at != 20 {
					t.Fatalf("the ping arrived after %d messages, want 20", at)
				}
			default:
				t.Fatal("the ping in the batch never arrived")
			}
		})
	}
}

// TestWritePreparedMessagesJoinsWrites: without a descriptor (as under
// TLS) every Write is a system call and a record: a batch of small frames
// is joined into writes of up to 16 KiB instead of one per message.
func TestWritePreparedMessagesJoinsWrites(t *testing.T) {
	c, wc, client, _ := coalescePair(t)
	go func() {
		buf := make([]byte, 64<<10)
		for {
			if _, err := client.Read(buf); err != nil {
				return
			}
		}
	}()
	for _, tc := range []struct{ n, size, maxWrites int }{
		{50, 100, 1},       // 5 KiB: one write
		{200, 1 << 10, 14}, // 200 KiB: 16 KiB pieces
		{4, 64 << 10, 4},   // large frames go out as they are
		{1, 10, 1},         // a batch of one
	} {
		before := wc.writes.Load()
		if err := c.WritePreparedMessages(batchOf(t, tc.n, tc.size)); err != nil {
			t.Fatal(err)
		}
		if n := wc.writes.Load() - before; n > int64(tc.maxWrites) {
			t.Errorf("%d messages of %d bytes took %d writes, want at most %d", tc.n, tc.size, n, tc.maxWrites)
		}
	}
}

// syscw is the number of write system calls this process has made
// (Linux's /proc/self/io), or -1 where it cannot be read.
func syscw() int64 {
	b, err := os.ReadFile("/proc/self/io")
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "syscw: "); ok {
			n, _ := strconv.ParseInt(v, 10, 64)
			return n
		}
	}
	return -1
}

// TestWritePreparedMessagesOneSyscall: on a TCP socket a batch of shared
// frames is one writev, where WritePreparedMessage makes one write each.
func TestWritePreparedMessagesOneSyscall(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("counts system calls with /proc/self/io")
	}
	c, client := rawPair(t)
	br := bufio.NewReader(client)
	pms := batchOf(t, 50, 200)
	count := func(write func() error) int64 {
		before := syscw()
		if err := write(); err != nil {
			t.Fatal(err)
		}
		n := syscw() - before
		for range pms {
			readServerFrame(t, br)
		}
		return n
	}
	one := count(func() error {
		for _, pm := range pms {
			if err := c.WritePreparedMessage(pm); err != nil {
				return err
			}
		}
		return nil
	})
	batched := count(func() error { return c.WritePreparedMessages(pms) })
	t.Logf("50 messages: %d write system calls one by one, %d batched", one, batched)
	if one < 50 {
		t.Fatalf("one by one took %d write system calls for 50 messages: the counter does not count them", one)
	}
	if batched > 3 {
		t.Fatalf("batched took %d write system calls, want 1 (a few with noise)", batched)
	}
}

// TestWritePreparedMessagesUnderStall: a batch to a peer that does not
// read fails with ErrWriteStalled and closes the connection.
func TestWritePreparedMessagesUnderStall(t *testing.T) {
	done := make(chan error, 1)
	u := &Upgrader{WriteStallTimeout: 300 * time.Millisecond}
	url := serve(t, u, func(c *Conn) {
		smallBuffers(c.NetConn())
		pms := batchOf(t, 64, 16<<10)
		for range 1000 {
			if err := c.WritePreparedMessages(pms); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	})
	stalledPeer(t, url, nil)
	select {
	case err := <-done:
		if err == nil || !isTimeout(err) {
			t.Fatalf("batches to a peer that never reads: %v, want ErrWriteStalled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a stalled batch never failed")
	}
}
