package connect

import (
	"bytes"
	"context"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/latchws/latch/websocket"
)

// echoServer echoes messages, remembers what its last client sent in the
// handshake and reports the close code it saw at the end of each connection.
type echoServer struct {
	url       string
	header    chan http.Header // request headers, one per connection
	proto     chan string      // subprotocol selected, one per connection
	closeCode chan int         // websocket.CloseStatus of the read error
}

// newEchoServer starts the server; closeWith != 0 makes it close with that
// code (reason "go away") on the first message instead of echoing it.
func newEchoServer(t *testing.T, closeWith int) *echoServer {
	t.Helper()
	es := &echoServer{
		header:    make(chan http.Header, 4),
		proto:     make(chan string, 4),
		closeCode: make(chan int, 4),
	}
	up := &websocket.Upgrader{
		Subprotocols: []string{"latch.v1"},
		CheckOrigin:  func(*http.Request) bool { return true },
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/forbidden" {
			http.Error(w, "no entry", http.StatusForbidden)
			return
		}
		es.header <- r.Header.Clone()
		conn, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer conn.CloseNow()
		es.proto <- conn.Subprotocol()
		for {
			mt, p, err := conn.ReadMessage()
			if err != nil {
				es.closeCode <- websocket.CloseStatus(err)
				return
			}
			if closeWith != 0 {
				conn.CloseWithCode(closeWith, "go away")
				es.closeCode <- closeWith
				return
			}
			if err := conn.WriteMessage(mt, p); err != nil {
				es.closeCode <- -2
				return
			}
		}
	}))
	t.Cleanup(srv.Close)
	es.url = "ws" + strings.TrimPrefix(srv.URL, "http")
	return es
}

func recv[T any](t *testing.T, c chan T, what string) T {
	t.Helper()
	select {
	case v := <-c:
		return v
	case <-time.After(5 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
		panic("unreachable")
	}
}

// run calls Run with a 20 s bound and returns exit code, stdout and stderr.
func run(t *testing.T, ctx context.Context, stdin io.Reader, args ...string) (int, string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	var out, errOut bytes.Buffer
	code := Run(ctx, args, stdin, &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestLinesRoundTrip(t *testing.T) {
	t.Parallel()
	es := newEchoServer(t, 0)
	stdin := strings.NewReader("hello\nwörld\r\n\nlast line without newline")
	code, out, errOut := run(t, context.Background(), stdin,
		"-subprotocol", "other", "-subprotocol", "latch.v1",
		"-H", "X-Token: abc 123", "-H", "X-Multi: 1", "-H", "X-Multi: 2",
		"-origin", "https://example.test",
		"-wait", "2s", es.url+"/ws")
	if code != ExitOK {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	want := "hello\nwörld\n\nlast line without newline\n"
	if out != want {
		t.Errorf("stdout = %q, want %q", out, want)
	}
	h := recv(t, es.header, "request header")
	if got := h.Get("X-Token"); got != "abc 123" {
		t.Errorf("X-Token = %q", got)
	}
	if got := h.Values("X-Multi"); len(got) != 2 || got[0] != "1" || got[1] != "2" {
		t.Errorf("X-Multi = %q", got)
	}
	if got := h.Get("Origin"); got != "https://example.test" {
		t.Errorf("Origin = %q", got)
	}
	if got := websocket.Subprotocols(&http.Request{Header: h}); len(got) != 2 || got[0] != "other" || got[1] != "latch.v1" {
		t.Errorf("offered subprotocols = %q", got)
	}
	if p := recv(t, es.proto, "subprotocol"); p != "latch.v1" {
		t.Errorf("selected subprotocol = %q", p)
	}
	// RFC 6455 §7.1.2: end of stdin is a clean closing handshake.
	if c := recv(t, es.closeCode, "close code"); c != websocket.CloseNormalClosure {
		t.Errorf("server saw close code %d, want 1000", c)
	}
}

func TestBinary(t *testing.T) {
	t.Parallel()
	es := newEchoServer(t, 0)
	code, out, errOut := run(t, context.Background(), strings.NewReader("hi\n\xff\x00\n"), "-binary", "-wait", "2s", es.url)
	if code != ExitOK {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	// The echo server answers with the same type: binary comes back as hex.
	if want := BinaryMarker + "6869\n" + BinaryMarker + "ff00\n"; out != want {
		t.Errorf("stdout = %q, want %q", out, want)
	}
}

func TestInvalidUTF8LineNotSentAsText(t *testing.T) {
	t.Parallel()
	es := newEchoServer(t, 0)
	code, out, errOut := run(t, context.Background(), strings.NewReader("a\n\xff\nb\n"), "-wait", "2s", es.url)
	if code != ExitOK {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	if out != "a\nb\n" {
		t.Errorf("stdout = %q, want %q", out, "a\nb\n")
	}
	if !strings.Contains(errOut, "line 2 is not valid UTF-8") {
		t.Errorf("stderr = %q, want a note about line 2", errOut)
	}
}

func TestServerClose(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		code, exit int
	}{
		{4001, ExitFailure},
		{websocket.CloseGoingAway, ExitOK},
		{websocket.CloseNormalClosure, ExitOK},
		{websocket.CloseInternalServerErr, ExitFailure},
	} {
		t.Run(strconv.Itoa(tc.code), func(t *testing.T) {
			t.Parallel()
			es := newEchoServer(t, tc.code)
			// stdin stays open: the server's close, not EOF, must end the run.
			pr, pw := io.Pipe()
			t.Cleanup(func() { pw.Close() })
			go pw.Write([]byte("trigger\n"))
			code, out, errOut := run(t, context.Background(), pr, "-wait", "10s", es.url)
			if code != tc.exit {
				t.Errorf("exit %d, want %d; stderr %q", code, tc.exit, errOut)
			}
			if want := "code " + strconv.Itoa(tc.code) + `, reason "go away"`; !strings.Contains(errOut, want) {
				t.Errorf("stderr = %q, want it to contain %q", errOut, want)
			}
			if out != "" {
				t.Errorf("stdout = %q, want nothing", out)
			}
		})
	}
}

func TestInterrupt(t *testing.T) {
	t.Parallel()
	es := newEchoServer(t, 0)
	pr, pw := io.Pipe()
	t.Cleanup(func() { pw.Close() })
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		pw.Write([]byte("x\n"))
		// The line has been taken by Run: the connection is up.
		cancel()
	}()
	code, _, errOut := run(t, ctx, pr, es.url)
	if code != ExitInterrupted {
		t.Errorf("exit %d, want %d; stderr %q", code, ExitInterrupted, errOut)
	}
	if c := recv(t, es.closeCode, "close code"); c != websocket.CloseGoingAway {
		t.Errorf("server saw close code %d, want 1001", c)
	}
}

func TestHandshakeForbidden(t *testing.T) {
	t.Parallel()
	es := newEchoServer(t, 0)
	code, out, errOut := run(t, context.Background(), strings.NewReader("x\n"), es.url+"/forbidden")
	if code != ExitFailure {
		t.Errorf("exit %d, want 1", code)
	}
	// A plain-text answer is short enough to quote.
	if want := "latch connect: the server refused the WebSocket handshake: HTTP 403 Forbidden: no entry\n"; !strings.HasPrefix(errOut, want) {
		t.Errorf("stderr = %q, want %q", errOut, want)
	}
	if out != "" {
		t.Errorf("stdout = %q", out)
	}
}

func TestConnectionRefused(t *testing.T) {
	t.Parallel()
	// Find a port nobody listens on by closing a server we started.
	dead := httptest.NewServer(http.NotFoundHandler())
	deadURL := "ws" + strings.TrimPrefix(dead.URL, "http")
	dead.Close()
	code, _, errOut := run(t, context.Background(), strings.NewReader(""), deadURL)
	if code != ExitFailure || errOut == "" {
		t.Errorf("exit %d, stderr %q; want 1 and a message", code, errOut)
	}
}

func TestUsageErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args []string
		want string // the first line of stderr
	}{
		{nil, "latch connect: missing URL"},
		{[]string{"::not a url"}, `latch connect: invalid URL "::not a url": no scheme; write ws://HOST:PORT/PATH (or wss://, http://, https://)`},
		{[]string{"ftp://example.test/"}, `latch connect: invalid URL "ftp://example.test/": scheme ftp:// is not supported; use ws://, wss://, http:// or https://`},
		{[]string{"ws://"}, `latch connect: invalid URL "ws://": no host; write ws://HOST:PORT/PATH`},
		{[]string{"example.test:80"}, `latch connect: invalid URL "example.test:80": no scheme; write ws://HOST:PORT/PATH (or wss://, http://, https://)`},
		{[]string{"ws://bad host/"}, `latch connect: invalid URL "ws://bad host/": invalid character " " in host name`},
		{[]string{"-no-such-flag", "ws://127.0.0.1:1/"}, "latch connect: flag provided but not defined: -no-such-flag"},
		{[]string{"-H", "NoColon", "ws://127.0.0.1:1/"}, `latch connect: invalid value "NoColon" for flag -H: header "NoColon" is not of the form 'Name: value'`},
		{[]string{"-H", "Bad Name: x", "ws://127.0.0.1:1/"}, `latch connect: invalid value "Bad Name: x" for flag -H: header "Bad Name: x" is not of the form 'Name: value'`},
		{[]string{"-timeout", "0s", "ws://127.0.0.1:1/"}, `latch connect: invalid value "0s" for flag -timeout: 0 is not accepted: write "off" to turn it off, or a positive duration such as 30s`},
		{[]string{"-wait", "-1s", "ws://127.0.0.1:1/"}, `latch connect: invalid value "-1s" for flag -wait: must be a positive duration such as 30s, or "off"`},
		{[]string{"ws://127.0.0.1:1/", "extra"}, `latch connect: unexpected argument "extra"`},
	} {
		code, out, errOut := run(t, context.Background(), strings.NewReader(""), tc.args...)
		if code != ExitUsage || out != "" {
			t.Errorf("args %q: exit %d, stdout %q; want 2 and nothing", tc.args, code, out)
		}
		first, rest, _ := strings.Cut(errOut, "\n")
		if first != tc.want {
			t.Errorf("args %q: first line\n%s\nwant\n%s", tc.args, first, tc.want)
		}
		// The missing URL gets the usage; a mistake gets one line and a pointer to -h.
		wantRest := "Run 'latch connect -h' for the flags.\n"
		if tc.args == nil {
			wantRest = "\nUsage: latch connect"
		}
		if !strings.HasPrefix(rest, wantRest) {
			t.Errorf("args %q: after the error %q, want %q", tc.args, rest, wantRest)
		}
	}
}

// -timeout off and -wait off: no handshake bound, no wait after stdin.
func TestOffDurations(t *testing.T) {
	t.Parallel()
	es := newEchoServer(t, 0)
	code, out, errOut := run(t, context.Background(), strings.NewReader(""), "-timeout", "off", "-wait", "off", es.url)
	if code != ExitOK || out != "" {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	if c := recv(t, es.closeCode, "close code"); c != websocket.CloseNormalClosure {
		t.Errorf("server saw close code %d, want 1000", c)
	}
}

func TestFlagsAfterURL(t *testing.T) {
	t.Parallel()
	es := newEchoServer(t, 0)
	code, out, errOut := run(t, context.Background(), strings.NewReader("a\n"), es.url, "-wait", "2s", "-H", "X-After: yes")
	if code != ExitOK || out != "a\n" {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	if h := recv(t, es.header, "header"); h.Get("X-After") != "yes" {
		t.Errorf("X-After = %q", h.Get("X-After"))
	}
}

func TestHelp(t *testing.T) {
	t.Parallel()
	code, out, _ := run(t, context.Background(), strings.NewReader(""), "-h")
	if code != ExitOK {
		t.Errorf("exit %d, stdout %q", code, out)
	}
	// Each placeholder is the back-quoted word of the flag's usage.
	for _, want := range []string{"\n  -subprotocol name\n", "\n  -H 'Name: value'\n", "\n  -origin URL\n",
		"\n  -timeout duration\n", "(off: wait as long as it takes) (default 10s)", "\n  -wait duration\n",
		"\n  -cacert file\n", "\n  -v\tverbose", "\n  -insecure\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("help lacks %q:\n%s", want, out)
		}
	}
}

func TestInsecureTLS(t *testing.T) {
	t.Parallel()
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, err := (&websocket.Upgrader{}).Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer conn.Close()
		for {
			mt, p, err := conn.ReadMessage()
			if err != nil || conn.WriteMessage(mt, p) != nil {
				return
			}
		}
	}))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshake is expected
	srv.StartTLS()
	t.Cleanup(srv.Close)
	u := "wss" + strings.TrimPrefix(srv.URL, "https")

	// The test server's certificate is self-signed: refused by default.
	code, _, errOut := run(t, context.Background(), strings.NewReader("x\n"), u)
	if code != ExitFailure || !strings.Contains(errOut, "certificate") {
		t.Errorf("without -insecure: exit %d, stderr %q; want 1 and a certificate error", code, errOut)
	}
	code, out, errOut := run(t, context.Background(), strings.NewReader("secret\n"), "-insecure", "-wait", "2s", u)
	if code != ExitOK || out != "secret\n" {
		t.Errorf("with -insecure: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
}
