package server

import (
	"context"
	"io"
	"net"
	"testing"
	"time"

	"github.com/latchws/latch/presence"
	"github.com/latchws/latch/websocket"
)

func TestRecordError(t *testing.T) {
	t0 := time.Unix(1000, 0)
	tests := []struct {
		name    string
		offsets []time.Duration // of each error from t0
		want    int             // index of the error that trips the limit, -1 for none
	}{
		{"ten at once", repeat(10, 0), 9},
		{"nine", repeat(9, 0), -1},
		{"ten spread over 9.9s", spread(10, 1100*time.Millisecond), 9},
		{"ten spread over 10.8s", spread(10, 1200*time.Millisecond), -1},
		// A slow trickle never trips it, however long it goes on.
		{"one per 1.2s for 36s", spread(30, 1200*time.Millisecond), -1},
		// Ten errors 9.009s apart in total are within the window.
		{"one a second", spread(10, time.Second+time.Millisecond), 9},
		// The window slides: a burst after old errors trips at the tenth recent one.
		{"burst after trickle", append(spread(5, 3*time.Second), repeat(10, 30*time.Second)...), 14},
		// The error at 12s and nine of the burst make ten within 10s.
		{"burst near trickle", append(spread(5, 3*time.Second), repeat(10, 20*time.Second)...), 13},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var s session
			got := -1
			for i, off := range tt.offsets {
				if s.recordError(t0.Add(off)) {
					got = i
					break
				}
			}
			if got != tt.want {
				t.Errorf("tripped at error %d, want %d", got, tt.want)
			}
		})
	}
}

func repeat(n int, at time.Duration) []time.Duration {
	out := make([]time.Duration, n)
	for i := range out {
		out[i] = at
	}
	return out
}

func spread(n int, step time.Duration) []time.Duration {
	out := make([]time.Duration, n)
	for i := range out {
		out[i] = time.Duration(i) * step
	}
	return out
}

// While the server drains, subscribe and publish are refused with
// "unavailable". Once the hub has sent 1001 no answer can reach the client,
// so the test sets the server's draining flag without closing clients.
func TestUnavailableWhileDraining(t *testing.T) {
	srv, err := New(Config{LogOutput: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		<-done
	}()

	conn, _, err := (&websocket.Dialer{HandshakeTimeout: 5 * time.Second}).Dial("ws://"+ln.Addr().String()+"/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.CloseNow()
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	roundTrip := func(msg string) string {
		t.Helper()
		if err := conn.WriteMessage(websocket.TextMessage, []byte(msg)); err != nil {
			t.Fatal(err)
		}
		_, p, err := conn.ReadMessage()
		if err != nil {
			t.Fatal(err)
		}
		return string(p)
	}
	if _, _, err := conn.ReadMessage(); err != nil { // welcome
		t.Fatal(err)
	}
	if got := roundTrip(`{"op":"subscribe","channel":"c","id":"1"}`); got != `{"type":"ack","id":"1"}` {
		t.Fatalf("subscribe: %s", got)
	}

	srv.draining.Store(true)
	for _, msg := range []string{
		`{"op":"subscribe","channel":"d","id":"x"}`,
		`{"op":"publish","channel":"c","data":1,"id":"x"}`,
	} {
		if got := roundTrip(msg); got != `{"type":"error","id":"x","code":"unavailable","message":"server is shutting down"}` {
			t.Errorf("%s while draining: %s", msg, got)
		}
	}
	// Refusals are the server's doing: they do not count as abuse.
	for range abuseErrors {
		roundTrip(`{"op":"publish","channel":"c","data":1}`)
	}
	if got := roundTrip(`{"op":"ping"}`); got != `{"type":"pong"}` {
		t.Errorf("ping after %d refusals: %s", abuseErrors, got)
	}
	// Unsubscribing and pinging still work.
	if got := roundTrip(`{"op":"unsubscribe","channel":"c","id":"u"}`); got != `{"type":"ack","id":"u"}` {
		t.Errorf("unsubscribe while draining: %s", got)
	}
}

// A presence answer says when it lists only some of the clients.
func TestEncodePresenceTruncated(t *testing.T) {
	infos := []presence.Info{{Client: "1", User: "ann", ConnectedAt: time.UnixMilli(5)}}
	req := &request{id: "p", hasID: true}
	if got, want := string(encodePresence(req, "c", infos, false)), `{"type":"presence","id":"p","channel":"c","clients":[{"client":"1","user":"ann","connected":5}]}`; got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
	if got, want := string(encodePresence(req, "c", infos, true)), `{"type":"presence","id":"p","channel":"c","clients":[{"client":"1","user":"ann","connected":5}],"truncated":true}`; got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
}
