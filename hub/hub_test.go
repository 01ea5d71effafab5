package hub_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/latchws/latch/hub"
	"github.com/latchws/latch/websocket"
)

// subscribeFromQuery subscribes each client to the channels in ?ch=a,b and
// reports it on ready.
func subscribeFromQuery(h **hub.Hub, ready chan<- uint64) func(c *hub.Client) {
	return func(c *hub.Client) {
		for _, ch := range strings.Split(c.Request().URL.Query().Get("ch"), ",") {
			if ch != "" {
				if err := (*h).Subscribe(c, ch); err != nil {
					panic(err)
				}
			}
		}
		ready <- c.ID()
	}
}

func TestPublishFanout(t *testing.T) {
	const clients, publishers, perPublisher = 20, 3, 50
	var h *hub.Hub
	ready := make(chan uint64, clients+1)
	h, url := startHub(t, hub.Config{OnConnect: subscribeFromQuery(&h, ready)})

	conns := make([]*websocket.Conn, clients)
	for i := range conns {
		conns[i] = dial(t, url+"?ch=news,other")
	}
	outsider := dial(t, url+"?ch=sport")
	for range clients + 1 {
		<-ready
	}

	var wg sync.WaitGroup
	for p := range publishers {
		wg.Go(func() {
			for seq := range perPublisher {
				msg := fmt.Sprintf("p%d-%d", p, seq)
				if n := h.Publish("news", websocket.TextMessage, []byte(msg)); n != clients {
					t.Errorf("Publish(%q) queued for %d clients, want %d", msg, n, clients)
				}
			}
		})
	}
	wg.Wait()
	if n := h.Broadcast(websocket.TextMessage, []byte("end")); n != clients+1 {
		t.Errorf("Broadcast queued for %d clients, want %d", n, clients+1)
	}

	for i, c := range conns {
		wg.Go(func() {
			c.SetReadDeadline(time.Now().Add(10 * time.Second))
			next := make([]int, publishers)
			for range publishers * perPublisher {
				_, p, err := c.ReadMessage()
				if err != nil {
					t.Errorf("client %d: %v", i, err)
					return
				}
				var pub, seq int
				if _, err := fmt.Sscanf(string(p), "p%d-%d", &pub, &seq); err != nil || pub >= publishers {
					t.Errorf("client %d: unexpected message %q", i, p)
					return
				}
				if seq != next[pub] {
					t.Errorf("client %d: publisher %d message %d, want %d (order lost)", i, pub, seq, next[pub])
					return
				}
				next[pub]++
			}
			if _, p, err := c.ReadMessage(); err != nil || string(p) != "end" {
				t.Errorf("client %d: after all publishes got %q, %v; want the broadcast", i, p, err)
			}
		})
	}
	wg.Wait()
	outsider.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, p, err := outsider.ReadMessage(); err != nil || string(p) != "end" {
		t.Errorf("unsubscribed client got %q, %v; want only the broadcast", p, err)
	}
	st := h.Stats()
	if want := uint64(clients*publishers*perPublisher + clients + 1); st.MessagesOut != want {
		t.Errorf("MessagesOut = %d, want %d", st.MessagesOut, want)
	}
	if st.FanoutLatency.Count != publishers*perPublisher+1 || st.FanoutLatency.Sum <= 0 {
		t.Errorf("FanoutLatency = %+v", st.FanoutLatency)
	}
	if st.Connections != clients+1 || h.Len() != clients+1 {
		t.Errorf("Connections = %d, Len = %d, want %d", st.Connections, h.Len(), clients+1)
	}
}

func TestSubscribeUnsubscribeChannels(t *testing.T) {
	var h *hub.Hub
	clients := make(chan *hub.Client, 1)
	h, url := startHub(t, hub.Config{OnConnect: func(c *hub.Client) { clients <- c }})
	conn := dial(t, url)
	c := <-clients
	for _, ch := range []string{"b", "a", "b"} {
		if err := h.Subscribe(c, ch); err != nil {
			t.Fatal(err)
		}
	}
	if got := h.Channels(c); !slices.Equal(got, []string{"a", "b"}) {
		t.Errorf("Channels = %q, want [a b]", got)
	}
	h.Unsubscribe(c, "b")
	h.Unsubscribe(c, "nope")
	if n := h.Publish("b", websocket.TextMessage, []byte("x")); n != 0 {
		t.Errorf("Publish to a left channel queued for %d", n)
	}
	if n := h.Publish("a", websocket.TextMessage, []byte("to a")); n != 1 {
		t.Errorf("Publish to a queued for %d, want 1", n)
	}
	if n := h.Publish("a", websocket.TextMessage, []byte{0xff}); n != 0 {
		t.Errorf("invalid UTF-8 text queued for %d, want 0", n)
	}
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, p, err := conn.ReadMessage(); err != nil || string(p) != "to a" {
		t.Fatalf("got %q, %v", p, err)
	}
	conn.Close()
	<-c.Done()
	if err := h.Subscribe(c, "a"); !errors.Is(err, hub.ErrClosed) {
		t.Errorf("Subscribe after disconnect: %v, want ErrClosed", err)
	}
	if err := c.Send(websocket.TextMessage, []byte("late")); !errors.Is(err, hub.ErrClosed) {
		t.Errorf("Send after disconnect: %v, want ErrClosed", err)
	}
	if n := h.Publish("a", websocket.TextMessage, []byte("x")); n != 0 {
		t.Errorf("Publish after disconnect queued for %d", n)
	}
}

func TestSendEchoAndClientClose(t *testing.T) {
	gone := make(chan disconnect, 1)
	_, url := startHub(t, hub.Config{
		OnMessage: func(c *hub.Client, mt int, data []byte) {
			if string(data) == "bye" {
				c.Send(mt, []byte("last"))
				c.Close(4000, "done")
				if err := c.Send(mt, []byte("after close")); !errors.Is(err, hub.ErrClosed) {
					panic(fmt.Sprintf("Send after Close: %v", err))
				}
				return
			}
			if err := c.Send(mt, data); err != nil {
				panic(err)
			}
		},
		OnDisconnect: onDisconnect(gone),
	})
	conn := dial(t, url)
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	for i := range 10 {
		msg := []byte("m" + strconv.Itoa(i))
		if err := conn.WriteMessage(websocket.BinaryMessage, msg); err != nil {
			t.Fatal(err)
		}
		mt, p, err := conn.ReadMessage()
		if err != nil || mt != websocket.BinaryMessage || string(p) != string(msg) {
			t.Fatalf("echo %d: %d %q %v", i, mt, p, err)
		}
	}
	conn.WriteMessage(websocket.TextMessage, []byte("bye"))
	if _, p, err := conn.ReadMessage(); err != nil || string(p) != "last" {
		t.Fatalf("message queued before Close: %q, %v", p, err)
	}
	_, _, err := conn.ReadMessage()
	if !websocket.IsCloseError(err, 4000) {
		t.Fatalf("read after Close: %v, want close 4000", err)
	}
	d := <-gone
	if d.code != 4000 {
		t.Errorf("OnDisconnect code %d (%v), want 4000", d.code, d.err)
	}
}

func TestMaxConnections(t *testing.T) {
	var h *hub.Hub
	gone := make(chan disconnect, 3)
	h, url := startHub(t, hub.Config{MaxConnections: 2, OnDisconnect: onDisconnect(gone)})
	a := dial(t, url)
	dial(t, url)
	if got := dialStatus(t, url, nil); got != http.StatusServiceUnavailable {
		t.Fatalf("third connection: HTTP %d, want 503", got)
	}
	if n := h.Stats().Rejected["max_connections"]; n != 1 {
		t.Errorf("Rejected[max_connections] = %d, want 1", n)
	}
	a.Close()
	if d := <-gone; d.code != websocket.CloseNormalClosure {
		t.Errorf("OnDisconnect code %d, want 1000", d.code)
	}
	dial(t, url) // a slot is free again
	// The hub registers a client just after its handshake response.
	for deadline := time.Now().Add(2 * time.Second); h.Stats().Connected < 3 && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	if st := h.Stats(); st.Connected != 3 || st.Disconnected != 1 || st.CloseCodes[1000] != 1 {
		t.Errorf("Stats = %+v", st)
	}
}

func TestAuthorize(t *testing.T) {
	var h *hub.Hub
	h, url := startHub(t, hub.Config{Authorize: func(r *http.Request) error {
		switch r.Header.Get("X-Token") {
		case "good":
			return nil
		case "":
			return &hub.HTTPError{Status: http.StatusUnauthorized, Message: "token required"}
		}
		return errors.New("bad token")
	}})
	if got := dialStatus(t, url, http.Header{"X-Token": {"bad"}}); got != http.StatusForbidden {
		t.Errorf("bad token: HTTP %d, want 403", got)
	}
	if got := dialStatus(t, url, nil); got != http.StatusUnauthorized {
		t.Errorf("no token: HTTP %d, want 401", got)
	}
	c, _, err := websocket.DefaultDialer.Dial(url, http.Header{"X-Token": {"good"}})
	if err != nil {
		t.Fatalf("good token: %v", err)
	}
	defer c.Close()
	// The hub registers the client just after the handshake response.
	for deadline := time.Now().Add(2 * time.Second); h.Stats().Connected == 0 && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	st := h.Stats()
	if st.Rejected["unauthorized"] != 2 || st.Connected != 1 {
		t.Errorf("Rejected = %v, Connected = %d", st.Rejected, st.Connected)
	}
	// Authorize runs before the handshake is looked at.
	resp, err := http.Get("http" + strings.TrimPrefix(url, "ws"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("plain GET without token: HTTP %d, want 401", resp.StatusCode)
	}
	if st := h.Stats(); st.Rejected["unauthorized"] != 3 || st.Rejected["handshake"] != 0 {
		t.Errorf("Rejected = %v", st.Rejected)
	}
}

func TestHandshakeRejected(t *testing.T) {
	h, url := startHub(t, hub.Config{})
	resp, err := http.Get("http" + strings.TrimPrefix(url, "ws"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("plain GET: HTTP %d, want 400", resp.StatusCode)
	}
	if n := h.Stats().Rejected["handshake"]; n != 1 {
		t.Errorf("Rejected[handshake] = %d, want 1", n)
	}
}

// publishUntil publishes 64 KiB messages numbered from 0 until stop says
// so, and after each one reads it on the fast client, so that the fast
// client keeps up while the slow one falls behind. It returns how many
// were published and the longest Publish call.
func publishUntil(t *testing.T, h *hub.Hub, fast *websocket.Conn, limit int, stop func(i, queued int) bool) (int, time.Duration) {
	t.Helper()
	payload := make([]byte, 64<<10)
	var longest time.Duration
	fast.SetReadDeadline(time.Now().Add(15 * time.Second))
	for i := range limit {
		copy(payload, fmt.Sprintf("%08d", i))
		start := time.Now()
		n := h.Publish("feed", websocket.BinaryMessage, payload)
		longest = max(longest, time.Since(start))
		_, p, err := fast.ReadMessage()
		if err != nil {
			t.Fatalf("fast client, message %d: %v", i, err)
		}
		if got := string(p[:8]); got != fmt.Sprintf("%08d", i) {
			t.Fatalf("fast client got message %s, want %d", got, i)
		}
		if stop(i, n) {
			return i + 1, longest
		}
	}
	return limit, longest
}

func TestSlowConsumerDisconnect(t *testing.T) {
	var h *hub.Hub
	ready := make(chan uint64, 2)
	gone := make(chan disconnect, 2)
	h, url := startHub(t, hub.Config{
		Upgrader:     &websocket.Upgrader{CloseTimeout: 300 * time.Millisecond},
		SendQueue:    4,
		WriteTimeout: 5 * time.Second,
		OnConnect:    subscribeFromQuery(&h, ready),
		OnDisconnect: onDisconnect(gone),
	})
	slow := dialRaw(t, url+"?ch=feed")
	slowID := <-ready
	fast := dial(t, url+"?ch=feed")
	<-ready

	n, longest := publishUntil(t, h, fast, 1000, func(_, queued int) bool { return queued == 1 })
	if n == 1000 {
		t.Fatal("the slow client was never found slow")
	}
	// The publisher never waited for the stuck writer (WriteTimeout 5s).
	if longest > time.Second {
		t.Errorf("a Publish call took %v: publishers are blocked by a slow client", longest)
	}
	if got := h.Stats().SlowDisconnects; got != 1 {
		t.Errorf("SlowDisconnects = %d, want 1", got)
	}

	// Reading again, the slow client gets what was in flight, then close
	// 1008, then the end of the connection.
	slow.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	var closeCode int
	for range 2000 {
		f, err := slow.readFrame()
		if err != nil {
			t.Fatalf("slow client: %v before a close frame", err)
		}
		if f.op == 0x8 {
			if len(f.payload) < 2 {
				t.Fatalf("close frame without code")
			}
			closeCode = int(f.payload[0])<<8 | int(f.payload[1])
			if reason := string(f.payload[2:]); reason != "slow consumer" {
				t.Errorf("close reason %q", reason)
			}
			break
		}
	}
	if closeCode != websocket.ClosePolicyViolation {
		t.Fatalf("close code %d, want 1008", closeCode)
	}
	slow.sendClose(closeCode)
	if _, err := slow.readFrame(); err == nil {
		t.Error("connection still open after the closing handshake")
	}
	d := <-gone
	if d.id != slowID || !errors.Is(d.err, hub.ErrSlowConsumer) || d.code != 1008 {
		t.Errorf("OnDisconnect(id %d, code %d, err %v), want id %d, 1008, ErrSlowConsumer", d.id, d.code, d.err, slowID)
	}
	if st := h.Stats(); st.CloseCodes[1008] != 1 || st.SlowDisconnects != 1 {
		t.Errorf("CloseCodes %v, SlowDisconnects %d; want 1008 counted once", st.CloseCodes, st.SlowDisconnects)
	}
	// The fast client is still served.
	if n := h.Publish("feed", websocket.TextMessage, []byte("still here")); n != 1 {
		t.Errorf("Publish after the slow disconnect queued for %d, want 1", n)
	}
	if _, p, err := fast.ReadMessage(); err != nil || string(p) != "still here" {
		t.Errorf("fast client: %q, %v", p, err)
	}
}

func TestSlowConsumerDropOldest(t *testing.T) {
	const total = 200
	var h *hub.Hub
	clients := make(chan *hub.Client, 2)
	ready := make(chan uint64, 2)
	subscribe := subscribeFromQuery(&h, ready)
	h, url := startHub(t, hub.Config{
		SendQueue:    4,
		SlowConsumer: hub.DropOldest,
		WriteTimeout: 10 * time.Second,
		OnConnect:    func(c *hub.Client) { subscribe(c); clients <- c },
	})
	slow := dialRaw(t, url+"?ch=feed")
	<-ready
	slowClient := <-clients
	fast := dial(t, url+"?ch=feed")
	<-ready

	_, longest := publishUntil(t, h, fast, total, func(i, queued int) bool {
		if queued != 2 {
			t.Errorf("message %d queued for %d clients, want 2", i, queued)
		}
		return false
	})
	if longest > time.Second {
		t.Errorf("a Publish call took %v: publishers are blocked by a slow client", longest)
	}
	dropped := slowClient.Dropped()
	if st := h.Stats(); dropped == 0 || st.Dropped != dropped || st.SlowDisconnects != 0 {
		t.Fatalf("client dropped %d, Stats.Dropped %d, SlowDisconnects %d", dropped, st.Dropped, st.SlowDisconnects)
	}
	// The slow client now reads: it gets every message not dropped, in
	// order, ending with the newest.
	slow.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	got, last := 0, -1
	for got+int(dropped) < total {
		f, err := slow.readFrame()
		if err != nil {
			t.Fatalf("slow client after %d messages: %v", got, err)
		}
		seq, _ := strconv.Atoi(string(f.payload[:8]))
		if seq <= last {
			t.Fatalf("slow client got %d after %d", seq, last)
		}
		last = seq
		got++
	}
	if last != total-1 {
		t.Errorf("slow client's last message is %d, want the newest %d", last, total-1)
	}
}

func TestShutdown(t *testing.T) {
	const clients = 10
	var h *hub.Hub
	ready := make(chan uint64, clients)
	gone := make(chan disconnect, clients)
	h, url := startHub(t, hub.Config{OnConnect: subscribeFromQuery(&h, ready), OnDisconnect: onDisconnect(gone)})
	conns := make([]*websocket.Conn, clients)
	for i := range conns {
		conns[i] = dial(t, url)
		<-ready
	}
	errs := make(chan error, clients)
	for _, c := range conns {
		go func() {
			c.SetReadDeadline(time.Now().Add(10 * time.Second))
			_, _, err := c.ReadMessage()
			errs <- err
		}()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := h.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if ctx.Err() != nil {
		t.Fatal("Shutdown returned at its deadline, not after the handshakes")
	}
	if !h.Draining() || h.Len() != 0 {
		t.Errorf("Draining %v, Len %d", h.Draining(), h.Len())
	}
	for range clients {
		if err := <-errs; !websocket.IsCloseError(err, websocket.CloseGoingAway) {
			t.Errorf("client read: %v, want close 1001", err)
		}
		if d := <-gone; d.code != websocket.CloseGoingAway {
			t.Errorf("OnDisconnect code %d (%v), want 1001", d.code, d.err)
		}
	}
	checkNoHubGoroutines(t)
	if got := dialStatus(t, url, nil); got != http.StatusServiceUnavailable {
		t.Errorf("upgrade while draining: HTTP %d, want 503", got)
	}
	st := h.Stats()
	if st.CloseCodes[1001] != clients || st.Disconnected != clients || st.Rejected["draining"] != 1 {
		t.Errorf("Stats = %+v", st)
	}
	if err := h.Shutdown(ctx); err != nil {
		t.Errorf("second Shutdown: %v", err)
	}
}

func TestShutdownDeadlineDropsTheRest(t *testing.T) {
	var h *hub.Hub
	ready := make(chan uint64, 2)
	gone := make(chan disconnect, 2)
	h, url := startHub(t, hub.Config{
		// The peer would get 5 s to answer; Shutdown's ctx cuts it short.
		Upgrader:     &websocket.Upgrader{CloseTimeout: 5 * time.Second},
		OnConnect:    subscribeFromQuery(&h, ready),
		OnDisconnect: onDisconnect(gone),
	})
	mute := dialRaw(t, url) // never answers the close
	<-ready
	good := dial(t, url)
	<-ready
	goodErr := make(chan error, 1)
	go func() {
		good.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, _, err := good.ReadMessage()
		goodErr <- err
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := h.Shutdown(ctx)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Shutdown: %v, want DeadlineExceeded", err)
	}
	if el := time.Since(start); el > 2*time.Second {
		t.Errorf("Shutdown took %v with a 300ms deadline", el)
	}
	if err := <-goodErr; !websocket.IsCloseError(err, websocket.CloseGoingAway) {
		t.Errorf("answering client: %v, want close 1001", err)
	}
	codes := map[int]int{}
	for range 2 {
		codes[(<-gone).code]++
	}
	if codes[1001] != 1 || codes[1006] != 1 {
		t.Errorf("disconnect codes %v, want one 1001 and one 1006", codes)
	}
	checkNoHubGoroutines(t)
	// The mute client saw the 1001 and then the end of the connection.
	mute.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	f, err := mute.readFrame()
	if err != nil || f.op != 0x8 || int(f.payload[0])<<8|int(f.payload[1]) != 1001 {
		t.Errorf("mute client: frame %+v, %v; want close 1001", f, err)
	}
	if _, err := mute.readFrame(); err == nil {
		t.Error("mute client still connected")
	}
}

func TestRegisterOnShutdown(t *testing.T) {
	var h *hub.Hub
	ready := make(chan uint64, 3)
	h = hub.New(hub.Config{OnConnect: subscribeFromQuery(&h, ready)})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h}
	h.RegisterOnShutdown(srv, 3*time.Second)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	url := "ws://" + ln.Addr().String() + "/"
	errs := make(chan error, 3)
	for range 3 {
		c := dial(t, url)
		<-ready
		go func() {
			c.SetReadDeadline(time.Now().Add(10 * time.Second))
			_, _, err := c.ReadMessage()
			errs <- err
		}()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-served; !errors.Is(err, http.ErrServerClosed) {
		t.Errorf("Serve: %v", err)
	}
	for range 3 {
		if err := <-errs; !websocket.IsCloseError(err, websocket.CloseGoingAway) {
			t.Errorf("client read: %v, want close 1001", err)
		}
	}
	if !h.Draining() {
		t.Error("hub not draining after srv.Shutdown")
	}
	waitFor(t, "clients to end", func() bool { return h.Len() == 0 })
	checkNoHubGoroutines(t)
}

func TestReadLimitAndCounters(t *testing.T) {
	gone := make(chan disconnect, 1)
	h, url := startHub(t, hub.Config{ReadLimit: 16, OnDisconnect: onDisconnect(gone)})
	c := dial(t, url)
	c.WriteMessage(websocket.TextMessage, []byte("0123456789"))
	c.WriteMessage(websocket.TextMessage, []byte("this message is over the limit"))
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, _, err := c.ReadMessage(); !websocket.IsCloseError(err, websocket.CloseMessageTooBig) {
		t.Errorf("read: %v, want close 1009", err)
	}
	<-gone
	if st := h.Stats(); st.MessagesIn != 1 || st.BytesIn != 10 {
		t.Errorf("MessagesIn %d BytesIn %d, want 1 and 10", st.MessagesIn, st.BytesIn)
	}
}

func TestCloseWithUnsendableCode(t *testing.T) {
	gone := make(chan disconnect, 1)
	_, url := startHub(t, hub.Config{
		OnConnect:    func(c *hub.Client) { c.Close(websocket.CloseNoStatusReceived, "") },
		OnDisconnect: onDisconnect(gone),
	})
	c := dial(t, url)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, _, err := c.ReadMessage(); !websocket.IsCloseError(err, websocket.CloseAbnormalClosure) {
		t.Errorf("read: %v, want the connection dropped (1006)", err)
	}
	if d := <-gone; d.code != websocket.CloseAbnormalClosure {
		t.Errorf("OnDisconnect code %d, want 1006", d.code)
	}
}

// Clients come and go while others publish and subscribe: the race
// detector checks the locking, and the counters must add up.
func TestChurnWhilePublishing(t *testing.T) {
	const rounds = 20
	var h *hub.Hub
	ready := make(chan uint64, rounds)
	gone := make(chan disconnect, rounds)
	h, url := startHub(t, hub.Config{
		// The publisher outruns the clients on purpose; dropping keeps them.
		SlowConsumer: hub.DropOldest,
		OnConnect:    subscribeFromQuery(&h, ready),
		OnDisconnect: onDisconnect(gone),
	})
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 0; i < 100000; i++ {
			select {
			case <-stop:
				return
			default:
			}
			h.Publish("churn", websocket.TextMessage, []byte("x"))
			h.Broadcast(websocket.BinaryMessage, []byte{1})
		}
	})
	for range rounds {
		c := dial(t, url+"?ch=churn")
		<-ready
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, _, err := c.ReadMessage(); err != nil {
			t.Fatal(err)
		}
		c.Close()
	}
	close(stop)
	wg.Wait()
	for range rounds {
		<-gone
	}
	st := h.Stats()
	if st.Connected != rounds || st.Disconnected != rounds || st.Connections != 0 || h.Len() != 0 || st.SlowDisconnects != 0 {
		t.Errorf("Stats = %+v, Len %d", st, h.Len())
	}
}

// A slow consumer whose writer is stuck mid-frame until WriteTimeout cannot
// be sent a close frame: it is dropped, and still reported and counted as
// what it is, 1008 and ErrSlowConsumer, under either policy.
func TestSlowConsumerDroppedMidFrame(t *testing.T) {
	for _, policy := range []hub.SlowConsumerPolicy{hub.Disconnect, hub.DropOldest} {
		t.Run(fmt.Sprint("policy ", policy), func(t *testing.T) {
			var h *hub.Hub
			ready := make(chan uint64, 1)
			gone := make(chan disconnect, 1)
			h, url := startHub(t, hub.Config{
				SendQueue:    4,
				SlowConsumer: policy,
				WriteTimeout: 300 * time.Millisecond,
				OnConnect:    subscribeFromQuery(&h, ready),
				OnDisconnect: onDisconnect(gone),
			})
			slow := dialRaw(t, url+"?ch=feed")
			<-ready
			// Each message is larger than the socket buffers can ever hold
			// (the send buffer grows to 4 MiB at most, tcp_wmem): the writer
			// blocks inside the first frame. The client never reads.
			payload := make([]byte, 8<<20)
			var d disconnect
		publish:
			for range 8 {
				h.Publish("feed", websocket.BinaryMessage, payload)
				select {
				case d = <-gone:
					break publish
				default:
				}
			}
			if d.id == 0 {
				select {
				case d = <-gone:
				case <-time.After(10 * time.Second):
					t.Fatal("the slow client was never ended")
				}
			}
			if d.code != websocket.ClosePolicyViolation || !errors.Is(d.err, hub.ErrSlowConsumer) {
				t.Errorf("OnDisconnect(code %d, err %v), want 1008 and ErrSlowConsumer", d.code, d.err)
			}
			st := h.Stats()
			if st.SlowDisconnects != 1 || st.CloseCodes[1008] != 1 || st.CloseCodes[1006] != 0 {
				t.Errorf("SlowDisconnects %d, CloseCodes %v; want one 1008 and no 1006", st.SlowDisconnects, st.CloseCodes)
			}
			// The client finds a cut frame and the end of the connection,
			// no close frame.
			slow.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
			for {
				f, err := slow.readFrame()
				if err != nil {
					break
				}
				if f.op == 0x8 {
					t.Fatal("a close frame after a write timeout mid-frame")
				}
			}
		})
	}
}

// With the writer between writes, a full queue ends in a 1008 close frame
// the client can read; a client that then drops TCP without answering is
// still reported as 1008.
func TestSlowConsumerGetsCloseFrame(t *testing.T) {
	clients := make(chan *hub.Client, 1)
	gone := make(chan disconnect, 1)
	h, url := startHub(t, hub.Config{
		SendQueue:    1,
		OnConnect:    func(c *hub.Client) { clients <- c },
		OnDisconnect: onDisconnect(gone),
	})
	raw := dialRaw(t, url)
	c := <-clients
	// The queue holds one message: the Send that finds one queued while
	// the writer is busy overflows. Usually the second or third does; at
	// the latest one does once the socket buffers are full (10 MiB sent).
	var err error
	sent := 0
	for sent < 10000 && err == nil {
		err = c.Send(websocket.BinaryMessage, make([]byte, 1024))
		sent++
	}
	if !errors.Is(err, hub.ErrSlowConsumer) {
		t.Fatalf("%d Sends with SendQueue 1: %v, want ErrSlowConsumer", sent, err)
	}
	raw.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	code := 0
	for range sent + 1 {
		f, err := raw.readFrame()
		if err != nil {
			t.Fatalf("before the close frame: %v", err)
		}
		if f.op == 0x8 {
			code = int(f.payload[0])<<8 | int(f.payload[1])
			if string(f.payload[2:]) != "slow consumer" {
				t.Errorf("close reason %q", f.payload[2:])
			}
			break
		}
	}
	if code != websocket.ClosePolicyViolation {
		t.Fatalf("close code %d, want 1008", code)
	}
	raw.conn.Close() // no answer: the server sees no close frame back
	d := <-gone
	if d.code != websocket.ClosePolicyViolation || !errors.Is(d.err, hub.ErrSlowConsumer) {
		t.Errorf("OnDisconnect(code %d, err %v), want 1008 and ErrSlowConsumer", d.code, d.err)
	}
	if st := h.Stats(); st.SlowDisconnects != 1 || st.CloseCodes[1008] != 1 {
		t.Errorf("SlowDisconnects %d, CloseCodes %v", st.SlowDisconnects, st.CloseCodes)
	}
}

// A client that sends many requests before reading any answer gets every
// answer, in order: answered with Reply, it is slowed down (the hub stops
// reading it), never disconnected as a slow consumer.
func TestPipelinedRequestsAllAnswered(t *testing.T) {
	const requests = 2000
	gone := make(chan disconnect, 1)
	h, url := startHub(t, hub.Config{
		SendQueue: 4,
		OnMessage: func(c *hub.Client, mt int, data []byte) {
			if err := c.Reply(mt, data); err != nil && !errors.Is(err, hub.ErrClosed) {
				panic(err)
			}
		},
		OnDisconnect: onDisconnect(gone),
	})
	conn := dial(t, url)
	conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
	for i := range requests {
		if err := conn.WriteMessage(websocket.TextMessage, []byte(strconv.Itoa(i))); err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
	}
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	for i := range requests {
		_, p, err := conn.ReadMessage()
		if err != nil {
			t.Fatalf("answer %d: %v", i, err)
		}
		if string(p) != strconv.Itoa(i) {
			t.Fatalf("answer %d is %q", i, p)
		}
	}
	conn.Close()
	if d := <-gone; d.code != websocket.CloseNormalClosure || errors.Is(d.err, hub.ErrSlowConsumer) {
		t.Errorf("OnDisconnect(code %d, err %v), want 1000", d.code, d.err)
	}
	if st := h.Stats(); st.SlowDisconnects != 0 || st.MessagesOut != requests {
		t.Errorf("SlowDisconnects %d, MessagesOut %d; want 0 and %d", st.SlowDisconnects, st.MessagesOut, requests)
	}
}

// TestPipelinedLargeAnswers: answers far larger than the requests, none
// read until all requests are sent. The client's output backs up (on an
// engine past its queue bound, so a writer goroutine takes over and the
// hub pauses reading the client), and every answer still arrives, in
// order, without the client being called slow.
func TestPipelinedLargeAnswers(t *testing.T) {
	const requests = 200
	answer := bytes.Repeat([]byte("a"), 64<<10)
	gone := make(chan disconnect, 1)
	h, url := startHub(t, hub.Config{
		SendQueue: 4,
		OnMessage: func(c *hub.Client, mt int, data []byte) {
			b := append([]byte(nil), answer...)
			copy(b, data)
			if err := c.Reply(websocket.BinaryMessage, b); err != nil && !errors.Is(err, hub.ErrClosed) {
				panic(err)
			}
		},
		OnDisconnect: onDisconnect(gone),
	})
	conn := dial(t, url)
	conn.SetReadLimit(1 << 20)
	conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
	for i := range requests {
		if err := conn.WriteMessage(websocket.TextMessage, fmt.Appendf(nil, "%06d", i)); err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
	}
	conn.SetReadDeadline(time.Now().Add(20 * time.Second))
	for i := range requests {
		_, p, err := conn.ReadMessage()
		if err != nil {
			t.Fatalf("answer %d: %v", i, err)
		}
		if len(p) != len(answer) || string(p[:6]) != fmt.Sprintf("%06d", i) {
			t.Fatalf("answer %d: %d bytes starting %q", i, len(p), p[:min(6, len(p))])
		}
	}
	conn.Close()
	if d := <-gone; d.code != websocket.CloseNormalClosure || errors.Is(d.err, hub.ErrSlowConsumer) {
		t.Errorf("OnDisconnect(code %d, err %v), want 1000", d.code, d.err)
	}
	if st := h.Stats(); st.SlowDisconnects != 0 || st.MessagesOut != requests {
		t.Errorf("SlowDisconnects %d, MessagesOut %d; want 0 and %d", st.SlowDisconnects, st.MessagesOut, requests)
	}
}

// TestIdleClientsOnEngine: on an engine an idle client holds no
// goroutine, where the goroutine hub holds one per client.
func TestIdleClientsOnEngine(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the event loops are epoll's")
	}
	const clients = 200
	for _, engine := range []bool{false, true} {
		ready := make(chan struct{}, clients)
		cfg := hub.Config{OnMessage: func(c *hub.Client, mt int, data []byte) {
			c.Reply(mt, data)
		}}
		var e *websocket.Engine
		if engine {
			e = newEngine(t)
			cfg.Engine = e
		}
		h := hub.New(cfg)
		srv := httptest.NewServer(h)
		url := "ws" + strings.TrimPrefix(srv.URL, "http")
		before := runtime.NumGoroutine()
		conns := make([]*websocket.Conn, clients)
		for i := range conns {
			conns[i] = dial(t, url)
			go func(c *websocket.Conn) { // the client side reads on a goroutine of its own
				c.WriteMessage(websocket.TextMessage, []byte("hi"))
				c.ReadMessage()
				ready <- struct{}{}
				for {
					if _, _, err := c.ReadMessage(); err != nil {
						return
					}
				}
			}(conns[i])
		}
		for range clients {
			<-ready
		}
		time.Sleep(100 * time.Millisecond) // the hub's last goroutines end
		// The clients' goroutines are this test's: one each.
		added := runtime.NumGoroutine() - before - clients
		if engine && added > 10 {
			t.Errorf("on an engine, %d idle clients added %d goroutines to the server", clients, added)
		}
		if !engine && added < clients*9/10 { // other tests' goroutines may end meanwhile
			t.Errorf("without an engine, %d idle clients added %d goroutines: the comparison measures nothing", clients, added)
		}
		t.Logf("engine %v: %d idle clients, %d server goroutines", engine, clients, added)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		h.Shutdown(ctx)
		cancel()
		srv.Close()
		if e != nil {
			e.Close()
		}
	}
}

// TestServeReplacesReadLoop: with Config.Serve the hub hands the client's
// connection to it instead of reading messages itself (OnMessage is not
// called), OnDisconnect gets the error Serve returned, and Shutdown closes
// such clients with 1001 like any other.
func TestServeReplacesReadLoop(t *testing.T) {
	ended := make(chan disconnect, 2)
	h, url := startHub(t, hub.Config{
		OnMessage: func(*hub.Client, int, []byte) { t.Error("OnMessage called although Serve is set") },
		Serve: func(c *hub.Client) error {
			for {
				mt, r, err := c.Conn().NextReader()
				if err != nil {
					return err
				}
				w, err := c.Conn().NextWriter(mt)
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
		},
		OnDisconnect: onDisconnect(ended),
	})
	a, b := dial(t, url), dial(t, url)
	waitFor(t, "two clients", func() bool { return h.Len() == 2 })
	if err := a.WriteMessage(websocket.TextMessage, []byte("streamed")); err != nil {
		t.Fatal(err)
	}
	if _, p, err := a.ReadMessage(); err != nil || string(p) != "streamed" {
		t.Fatalf("echo through Serve: %q, %v", p, err)
	}
	a.CloseWithCode(4001, "bye")
	if d := <-ended; d.code != 4001 || websocket.CloseStatus(d.err) != 4001 {
		t.Fatalf("OnDisconnect after the client's close: code %d, err %v", d.code, d.err)
	}
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		h.Shutdown(ctx)
	}()
	b.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, _, err := b.ReadMessage(); websocket.CloseStatus(err) != websocket.CloseGoingAway {
		t.Fatalf("client of Serve at Shutdown: %v, want close 1001", err)
	}
	if d := <-ended; d.code != websocket.CloseGoingAway {
		t.Fatalf("OnDisconnect at Shutdown: code %d", d.code)
	}
}

// After OnConnect a client keeps a slim copy of its handshake request
// (headers, URL, addresses; not the context) and the value the
// application stored with it.
func TestClientRequestAndValue(t *testing.T) {
	type state struct{ n int }
	got := make(chan string, 1)
	_, url := startHub(t, hub.Config{
		OnConnect: func(c *hub.Client) {
			if c.Request().Context() == context.Background() {
				t.Error("OnConnect: the request has no context of its handshake")
			}
			c.SetValue(&state{n: 41})
		},
		OnMessage: func(c *hub.Client, mt int, data []byte) {
			s := c.Value().(*state)
			s.n++
			r := c.Request()
			got <- fmt.Sprintf("%d %s %s %t %t", s.n, r.Header.Get("X-Test"), r.URL.Path, r.RemoteAddr != "", r.Context() == context.Background())
		},
	})
	h := http.Header{"X-Test": {"yes"}}
	c, _, err := websocket.DefaultDialer.Dial(url+"/path", h)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.WriteMessage(websocket.TextMessage, []byte("x"))
	select {
	case s := <-got:
		if s != "42  /path true true" {
			t.Fatalf("after OnConnect: %q, want the value, the path and address, no headers and no handshake context", s)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no message")
	}
}

func TestClientLookupAndChannelCounts(t *testing.T) {
	t.Parallel()
	connected := make(chan *hub.Client, 3)
	h, url := startHub(t, hub.Config{OnConnect: func(c *hub.Client) { connected <- c }})
	var clients []*hub.Client
	for range 3 {
		dial(t, url)
		clients = append(clients, <-connected)
	}
	for _, c := range clients {
		if got := h.Client(c.ID()); got != c {
			t.Fatalf("Client(%d) = %v, want the client", c.ID(), got)
		}
		if err := h.Subscribe(c, "all"); err != nil {
			t.Fatal(err)
		}
	}
	if err := h.Subscribe(clients[0], "one"); err != nil {
		t.Fatal(err)
	}
	if h.Client(1<<40) != nil {
		t.Fatal("Client of an unknown id is not nil")
	}
	counts := func() map[string]int {
		m := map[string]int{}
		h.EachChannel(func(ch string, n int) bool { m[ch] = n; return true })
		return m
	}
	if got := counts(); got["all"] != 3 || got["one"] != 1 || len(got) != 2 {
		t.Fatalf("EachChannel = %v, want all:3 one:1", got)
	}
	calls := 0
	h.EachChannel(func(string, int) bool { calls++; return false })
	if calls != 1 {
		t.Fatalf("EachChannel went on after false: %d calls", calls)
	}
	h.Unsubscribe(clients[0], "one")
	if got := counts(); len(got) != 1 || got["all"] != 3 {
		t.Fatalf("EachChannel after Unsubscribe = %v, want all:3 and no one", got)
	}
}
