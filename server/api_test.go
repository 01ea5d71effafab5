package server_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/latchws/latch/server"
)

const testAPIKey = "latch-test-api-key-0123"

// apiConfig serves the API on the main address, with tokens optional and
// namespaces for each API method.
func apiConfig() server.Config {
	cfg := authConfig(true)
	cfg.APIKey, cfg.APIOnMain = testAPIKey, true
	a := server.AccessAnonymous
	cfg.Namespaces = []server.Namespace{
		{Name: "", Subscribe: a, Publish: a},
		{Name: "h", Subscribe: a, Publish: a, HistorySize: 50},
		{Name: "p", Subscribe: a, Publish: a, Presence: true},
		{Name: "ro", Subscribe: a, Publish: server.AccessAPI},
		{Name: "chat", Subscribe: a, Publish: a},
	}
	return cfg
}

var apiHTTP = &http.Client{Timeout: 10 * time.Second}

// apiDo sends one API request; header nil means the right key.
func apiDo(t *testing.T, httpMethod, base, method, body string, header http.Header) (int, string, http.Header) {
	t.Helper()
	req, err := http.NewRequest(httpMethod, base+"/api/"+method, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if header == nil {
		header = http.Header{"X-Api-Key": {testAPIKey}}
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := apiHTTP.Do(req)
	if err != nil {
		t.Fatalf("%s /api/%s: %v", httpMethod, method, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("/api/%s: Content-Type %q, want application/json", method, ct)
	}
	return resp.StatusCode, string(b), resp.Header
}

// api posts body to method and decodes the 200 answer into out.
func api(t *testing.T, base, method, body string, out any) {
	t.Helper()
	st, b, _ := apiDo(t, http.MethodPost, base, method, body, nil)
	if st != http.StatusOK {
		t.Fatalf("/api/%s %s: HTTP %d %s", method, body, st, b)
	}
	if out != nil {
		if err := json.Unmarshal([]byte(b), out); err != nil {
			t.Fatalf("/api/%s: %q: %v", method, b, err)
		}
	}
}

// apiFail posts body and checks the status and the error's code.
func apiFail(t *testing.T, base, method, body string, status int, code string) {
	t.Helper()
	st, b, _ := apiDo(t, http.MethodPost, base, method, body, nil)
	checkAPIError(t, method+" "+body, st, b, status, code)
}

func checkAPIError(t *testing.T, what string, st int, body string, status int, code string) {
	t.Helper()
	var e struct {
		Error struct{ Code, Message string }
	}
	if err := json.Unmarshal([]byte(body), &e); err != nil || st != status || e.Error.Code != code || e.Error.Message == "" {
		t.Errorf("%s: HTTP %d %s, want %d with error code %s", what, st, body, status, code)
	}
}

func TestAPIAuthAndErrors(t *testing.T) {
	t.Parallel()
	_, addr := serve(t, apiConfig())
	base := "http://" + addr
	body := `{"channel":"c","data":1}`
	for name, h := range map[string]http.Header{
		"no key":          {},
		"wrong key":       {"X-Api-Key": {testAPIKey + "x"}},
		"prefix of key":   {"X-Api-Key": {testAPIKey[:16]}},
		"wrong scheme":    {"Authorization": {"Basic " + testAPIKey}},
		"token as apikey": {"Authorization": {"apikey " + userToken(t, "ann", nil, nil)}},
	} {
		st, b, hdr := apiDo(t, http.MethodPost, base, "publish", body, h)
		checkAPIError(t, name, st, b, http.StatusUnauthorized, "unauthorized")
		if hdr.Get("WWW-Authenticate") == "" {
			t.Errorf("%s: 401 without WWW-Authenticate", name)
		}
	}
	for name, h := range map[string]http.Header{
		"X-API-Key":     {"X-Api-Key": {testAPIKey}},
		"apikey":        {"Authorization": {"apikey " + testAPIKey}},
		"ApiKey":        {"Authorization": {"ApiKey " + testAPIKey}},
		"Bearer":        {"Authorization": {"Bearer " + testAPIKey}},
		"JSON with cs":  {"X-Api-Key": {testAPIKey}, "Content-Type": {"application/json; charset=utf-8"}},
		"no body type":  {"X-Api-Key": {testAPIKey}},
		"both headers":  {"X-Api-Key": {testAPIKey}, "Authorization": {"Basic x"}},
		"key, then tab": {"Authorization": {"apikey  " + testAPIKey + " "}},
	} {
		if st, b, _ := apiDo(t, http.MethodPost, base, "publish", body, h); st != http.StatusOK || strings.TrimSpace(b) != "{}" {
			t.Errorf("%s: HTTP %d %s, want 200 {}", name, st, b)
		}
	}
	st, b, hdr := apiDo(t, http.MethodGet, base, "publish", "", nil)
	checkAPIError(t, "GET", st, b, http.StatusMethodNotAllowed, "method_not_allowed")
	if hdr.Get("Allow") != "POST" {
		t.Errorf("405 with Allow %q, want POST", hdr.Get("Allow"))
	}
	st, b, _ = apiDo(t, http.MethodPost, base, "publish", body, http.Header{"X-Api-Key": {testAPIKey}, "Content-Type": {"text/plain"}})
	checkAPIError(t, "text/plain", st, b, http.StatusUnsupportedMediaType, "bad_request")

	for _, bad := range []string{
		`{`, `[]`, `"x"`, `{"channel":"c","data":1,"bogus":1}`, `{"channel":"c","data":1} {}`,
		`{"channel":"c"}`, `{"channel":"","data":1}`, `{"channel":"a b","data":1}`, `{"channel":"_latch.control","data":1}`,
		`{"channel":"c","data":}`, ``, `{"channel":5,"data":1}`,
		`{"Channel":"c","data":1}`, // keys are matched exactly, as in the WebSocket protocol
	} {
		apiFail(t, base, "publish", bad, http.StatusBadRequest, "bad_request")
	}
	apiFail(t, base, "publish", `{"channel":"nope:x","data":1}`, http.StatusBadRequest, "unknown_namespace")

	// Over 1 MiB: 413; at 1 MiB: read.
	big := `{"channel":"c","data":"` + strings.Repeat("x", 1<<20) + `"}`
	apiFail(t, base, "publish", big, http.StatusRequestEntityTooLarge, "too_large")
	fits := `{"channel":"c","data":"` + strings.Repeat("x", 1<<20-len(`{"channel":"c","data":""}`)) + `"}`
	api(t, base, "publish", fits, nil)

	st, b, _ = apiDo(t, http.MethodPost, base, "nope", `{}`, nil)
	checkAPIError(t, "unknown method", st, b, http.StatusNotFound, "not_found")

	for _, want := range []string{
		`latch_api_requests_total{method="publish",status="200"} 9`,
		`latch_api_requests_total{method="publish",status="401"} 5`,
		`latch_api_requests_total{method="publish",status="400"} 14`,
		`latch_api_requests_total{method="publish",status="405"} 1`,
		`latch_api_requests_total{method="publish",status="413"} 1`,
		`latch_api_requests_total{method="publish",status="415"} 1`,
		`latch_api_requests_total{method="unknown",status="404"} 1`,
	} {
		name, _, _ := strings.Cut(want, "} ")
		if got := metricLine(t, addr, name+"}"); got != want {
			t.Errorf("metric %q, want %q", got, want)
		}
	}
}

func TestAPIPublishAndBroadcast(t *testing.T) {
	t.Parallel()
	_, addr := serve(t, apiConfig())
	base := "http://" + addr
	c := connect(t, addr)
	for _, ch := range []string{"news", "ro:x"} {
		c.do(`{"op":"subscribe","channel":"`+ch+`","id":"s"}`, `{"type":"ack","id":"s"}`)
	}
	off, epoch := c.subscribeAt("h:x", "")
	if off != 0 {
		t.Fatalf("h:x at %d", off)
	}

	// The data reaches subscribers byte for byte.
	api(t, base, "publish", `{"channel":"news","data": { "a" : [1, 2.50] } }`, nil)
	c.expect(`{"type":"message","channel":"news","data":{ "a" : [1, 2.50] }}`)
	var pos struct {
		Offset uint64
		Epoch  string
	}
	api(t, base, "publish", `{"channel":"h:x","data":"one"}`, &pos)
	if pos.Offset != 1 || pos.Epoch != epoch {
		t.Errorf("publish to h:x: %+v, want offset 1 epoch %q", pos, epoch)
	}
	c.expect(`{"type":"message","channel":"h:x","offset":1,"data":"one"}`)
	// AccessAPI for publish: the API may, a client may not.
	api(t, base, "publish", `{"channel":"ro:x","data":null}`, nil)
	c.expect(`{"type":"message","channel":"ro:x","data":null}`)
	c.send(`{"op":"publish","channel":"ro:x","data":1,"id":"f"}`)
	c.expectError("f", "forbidden")

	var res struct {
		Results []struct {
			Channel string
			Offset  uint64
			Epoch   string
			Error   *struct{ Code string }
		}
	}
	api(t, base, "broadcast", `{"channels":["news","h:x","ro:x","empty"],"data":{"b":2}}`, &res)
	if len(res.Results) != 4 {
		t.Fatalf("broadcast results %+v", res)
	}
	for i, ch := range []string{"news", "h:x", "ro:x", "empty"} {
		r := res.Results[i]
		if r.Channel != ch || r.Error != nil || (ch == "h:x") != (r.Offset == 2) {
			t.Errorf("result %d: %+v", i, r)
		}
	}
	c.expect(`{"type":"message","channel":"news","data":{"b":2}}`)
	c.expect(`{"type":"message","channel":"h:x","offset":2,"data":{"b":2}}`)
	c.expect(`{"type":"message","channel":"ro:x","data":{"b":2}}`)
	c.quiet()

	// A bad channel anywhere: nothing is published.
	apiFail(t, base, "broadcast", `{"channels":["news","a b"],"data":1}`, http.StatusBadRequest, "bad_request")
	apiFail(t, base, "broadcast", `{"channels":["news","nope:x"],"data":1}`, http.StatusBadRequest, "unknown_namespace")
	apiFail(t, base, "broadcast", `{"channels":[],"data":1}`, http.StatusBadRequest, "bad_request")
	apiFail(t, base, "broadcast", `{"channels":["news"]}`, http.StatusBadRequest, "bad_request")
	many := `"c"` + strings.Repeat(`,"c"`, 1000)
	apiFail(t, base, "broadcast", `{"channels":[`+many+`],"data":1}`, http.StatusBadRequest, "bad_request")
	c.quiet()
}

func TestAPIDisconnect(t *testing.T) {
	t.Parallel()
	srv, addr := serve(t, apiConfig())
	base := "http://" + addr
	ann1 := login(t, addr, userToken(t, "ann", nil, nil))
	ann2 := connectToken(t, addr, userToken(t, "ann", nil, nil), "ann")
	bob := login(t, addr, userToken(t, "bob", nil, nil))
	anon := connect(t, addr)

	api(t, base, "disconnect", `{"user":"ann"}`, nil)
	for i, c := range []*client{ann1, ann2} {
		if ce := c.closeErr(); ce.Code != server.CloseDisconnected || ce.Text == "" {
			t.Errorf("ann %d: close %d %q, want 4003 with a reason", i+1, ce.Code, ce.Text)
		}
	}
	bob.quiet()
	anon.quiet()

	// Client and user must match when both are given.
	api(t, base, "disconnect", `{"user":"ann","client":"`+bob.id+`"}`, nil)
	api(t, base, "disconnect", `{"user":"nobody"}`, nil)
	api(t, base, "disconnect", `{"client":"999999"}`, nil)
	api(t, base, "disconnect", `{"client":"x"}`, nil)
	bob.quiet()

	api(t, base, "disconnect", `{"user":"bob","client":"`+bob.id+`","code":4100,"reason":"bye bob"}`, nil)
	if ce := bob.closeErr(); ce.Code != 4100 || ce.Text != "bye bob" {
		t.Errorf("bob: close %d %q, want 4100 \"bye bob\"", ce.Code, ce.Text)
	}
	// An anonymous client, by its id.
	api(t, base, "disconnect", `{"client":"`+anon.id+`","code":4999}`, nil)
	if ce := anon.closeErr(); ce.Code != 4999 {
		t.Errorf("anon: close %d, want 4999", ce.Code)
	}
	waitFor(t, func() bool { return srv.Hub().Len() == 0 })

	for _, bad := range []string{`{}`, `{"user":"a","code":3999}`, `{"user":"a","code":5000}`, `{"user":"a","code":1000}`,
		`{"user":"a","reason":"` + strings.Repeat("r", 121) + `"}`, `{"user":"a","extra":1}`, `{"user":1}`} {
		apiFail(t, base, "disconnect", bad, http.StatusBadRequest, "bad_request")
	}
}

func TestAPIUnsubscribe(t *testing.T) {
	t.Parallel()
	_, addr := serve(t, apiConfig())
	base := "http://" + addr
	a := connect(t, addr)
	b := login(t, addr, userToken(t, "ann", nil, nil))
	for _, c := range []*client{a, b} {
		for _, ch := range []string{"news", "other", "p:room"} {
			c.do(`{"op":"subscribe","channel":"`+ch+`","id":"s"}`, `{"type":"ack","id":"s"}`)
		}
		c.quiet() // the subscribes are done, presence records included
	}
	api(t, base, "unsubscribe", `{"channel":"news","client":"`+a.id+`"}`, nil)
	a.expect(`{"type":"unsubscribed","channel":"news"}`)
	api(t, base, "publish", `{"channel":"news","data":1}`, nil)
	b.expect(`{"type":"message","channel":"news","data":1}`)
	a.quiet()
	api(t, base, "publish", `{"channel":"other","data":2}`, nil)
	a.expect(`{"type":"message","channel":"other","data":2}`)
	b.expect(`{"type":"message","channel":"other","data":2}`)
	a.send(`{"op":"unsubscribe","channel":"news","id":"u"}`)
	a.expectError("u", "not_subscribed")
	// Subscribing again works.
	a.do(`{"op":"subscribe","channel":"news","id":"s2"}`, `{"type":"ack","id":"s2"}`)

	// By user, in a presence namespace: presence follows.
	api(t, base, "unsubscribe", `{"channel":"p:room","user":"ann"}`, nil)
	b.expect(`{"type":"unsubscribed","channel":"p:room"}`)
	var pres struct{ Clients []struct{ Client string } }
	api(t, base, "presence", `{"channel":"p:room"}`, &pres)
	if len(pres.Clients) != 1 || pres.Clients[0].Client != a.id {
		t.Errorf("presence after unsubscribe %+v, want only %s", pres, a.id)
	}
	// Not subscribed, or nobody: nothing happens.
	api(t, base, "unsubscribe", `{"channel":"p:room","user":"ann"}`, nil)
	api(t, base, "unsubscribe", `{"channel":"none","client":"`+a.id+`"}`, nil)
	b.quiet()
	a.quiet()

	for _, bad := range []string{`{"channel":"news"}`, `{"client":"1"}`, `{"channel":"_latch.control","client":"1"}`, `{"channel":"news","client":"1","x":1}`} {
		apiFail(t, base, "unsubscribe", bad, http.StatusBadRequest, "bad_request")
	}
	apiFail(t, base, "unsubscribe", `{"channel":"nope:x","client":"1"}`, http.StatusBadRequest, "unknown_namespace")
}

func TestAPIPresence(t *testing.T) {
	t.Parallel()
	_, addr := serve(t, apiConfig())
	base := "http://" + addr
	start := time.Now()
	ann1 := login(t, addr, userToken(t, "ann", nil, nil))
	ann2 := login(t, addr, userToken(t, "ann", nil, nil))
	anon := connect(t, addr)
	for _, c := range []*client{ann1, ann2, anon} {
		c.do(`{"op":"subscribe","channel":"p:room","id":"s"}`, `{"type":"ack","id":"s"}`)
		c.quiet() // the subscribe is done, presence record included (TestPresenceListedWhenAcked)
	}
	st, raw, _ := apiDo(t, http.MethodPost, base, "presence", `{"channel":"p:room"}`, nil)
	var pres struct {
		Clients []struct {
			Client, User string
			Connected    int64
		}
	}
	if err := json.Unmarshal([]byte(raw), &pres); st != 200 || err != nil || len(pres.Clients) != 3 {
		t.Fatalf("presence: HTTP %d %s", st, raw)
	}
	for i, want := range []struct{ id, user string }{{ann1.id, "ann"}, {ann2.id, "ann"}, {anon.id, ""}} {
		e := pres.Clients[i] // sorted by client id
		if e.Client != want.id || e.User != want.user || e.Connected < start.UnixMilli() || e.Connected > time.Now().UnixMilli() {
			t.Errorf("presence[%d] = %+v, want %s %q", i, e, want.id, want.user)
		}
	}
	var stats map[string]int
	api(t, base, "presence_stats", `{"channel":"p:room"}`, &stats)
	if fmt.Sprint(stats) != "map[clients:3 users:1]" {
		t.Errorf("presence_stats %v, want 3 clients, 1 user", stats)
	}
	api(t, base, "presence_stats", `{"channel":"p:empty"}`, &stats)
	if fmt.Sprint(stats) != "map[clients:0 users:0]" {
		t.Errorf("presence_stats of an empty channel %v", stats)
	}
	api(t, base, "presence", `{"channel":"p:empty"}`, &pres)
	if st, raw, _ := apiDo(t, http.MethodPost, base, "presence", `{"channel":"p:empty"}`, nil); st != 200 || strings.TrimSpace(raw) != `{"clients":[]}` {
		t.Errorf("empty presence: %d %s, want {\"clients\":[]}", st, raw)
	}
	for _, m := range []string{"presence", "presence_stats"} {
		apiFail(t, base, m, `{"channel":"news"}`, http.StatusBadRequest, "not_available")
		apiFail(t, base, m, `{"channel":"nope:x"}`, http.StatusBadRequest, "unknown_namespace")
		apiFail(t, base, m, `{}`, http.StatusBadRequest, "bad_request")
	}
}

func TestAPIHistory(t *testing.T) {
	t.Parallel()
	_, addr := serve(t, apiConfig())
	base := "http://" + addr
	for i := 1; i <= 5; i++ {
		api(t, base, "publish", fmt.Sprintf(`{"channel":"h:x","data":{"i":%d,"s":"<&>"}}`, i), nil)
	}
	type hist struct {
		Epoch        string
		Offset       uint64
		Publications []struct {
			Offset uint64
			Time   int64
			Data   json.RawMessage
		}
	}
	var h hist
	api(t, base, "history", `{"channel":"h:x"}`, &h)
	if h.Offset != 5 || h.Epoch == "" || len(h.Publications) != 5 {
		t.Fatalf("history %+v", h)
	}
	for _, tt := range []struct{ body, want string }{
		{`{"channel":"h:x","since":2,"limit":2}`, "[3 4]"},
		{`{"channel":"h:x","since":3}`, "[4 5]"},
		{`{"channel":"h:x","limit":1,"reverse":true}`, "[5]"},
		{`{"channel":"h:x","since":5}`, "[]"},
		{`{"channel":"h:none"}`, "[]"},
	} {
		var h hist
		api(t, base, "history", tt.body, &h)
		var got []uint64
		for _, p := range h.Publications {
			got = append(got, p.Offset)
			var d struct {
				I int
				S string
			}
			if err := json.Unmarshal(p.Data, &d); err != nil || uint64(d.I) != p.Offset || d.S != "<&>" || p.Time <= 0 {
				t.Errorf("%s: publication %d: data %s time %d", tt.body, p.Offset, p.Data, p.Time)
			}
		}
		if s := fmt.Sprint(got); s != tt.want && !(tt.want == "[]" && got == nil) {
			t.Errorf("%s: offsets %s, want %s", tt.body, s, tt.want)
		}
	}
	// The WebSocket history op sees the same.
	c := connect(t, addr)
	if wh := c.history(`{"op":"history","channel":"h:x","since":4,"id":"h"}`, "h"); wh.Epoch != h.Epoch || len(wh.Publications) != 1 || string(wh.Publications[0].Data) != `{"i":5,"s":"<&>"}` {
		t.Errorf("history op: %+v", wh)
	}
	for _, bad := range []string{`{"channel":"h:x","limit":101}`, `{"channel":"h:x","limit":-1}`, `{"channel":"h:x","since":-1}`, `{"channel":"h:x","reverse":"y"}`, `{"channel":""}`} {
		apiFail(t, base, "history", bad, http.StatusBadRequest, "bad_request")
	}
	apiFail(t, base, "history", `{"channel":"news"}`, http.StatusBadRequest, "not_available")
}

func TestAPIChannelsAndInfo(t *testing.T) {
	t.Parallel()
	srv, addr := serve(t, apiConfig())
	base := "http://" + addr
	a, b, c := connect(t, addr), connect(t, addr), connect(t, addr)
	a.do(`{"op":"subscribe","channel":"chat:a","id":"s"}`, `{"type":"ack","id":"s"}`)
	b.do(`{"op":"subscribe","channel":"chat:a","id":"s"}`, `{"type":"ack","id":"s"}`)
	b.do(`{"op":"subscribe","channel":"chat:b","id":"s"}`, `{"type":"ack","id":"s"}`)
	c.do(`{"op":"subscribe","channel":"news","id":"s"}`, `{"type":"ack","id":"s"}`)
	connect(t, addr) // subscribed to nothing

	channels := func(body string) string {
		t.Helper()
		var res struct {
			Channels []struct {
				Channel     string
				Subscribers int
			}
			Truncated *bool
		}
		api(t, base, "channels", body, &res)
		if res.Truncated == nil || *res.Truncated {
			t.Errorf("channels %s: truncated %v, want false", body, res.Truncated)
		}
		return fmt.Sprint(res.Channels)
	}
	if got := channels(`{}`); got != "[{chat:a 2} {chat:b 1} {news 1}]" {
		t.Errorf("channels: %s", got)
	}
	if got := channels(`{"pattern":"chat:*"}`); got != "[{chat:a 2} {chat:b 1}]" {
		t.Errorf("channels chat:*: %s", got)
	}
	if got := channels(`{"pattern":"nothing*"}`); got != "[]" {
		t.Errorf("channels nothing*: %s", got)
	}
	apiFail(t, base, "channels", `{"pattern":"["}`, http.StatusBadRequest, "bad_request")

	var info struct {
		Clients int
		Nodes   []struct {
			ID        string
			Clients   int
			Channels  int
			StartedAt int64 `json:"started_at"`
			Self      bool
		}
	}
	api(t, base, "info", ``, &info)
	if info.Clients != 4 || len(info.Nodes) != 1 || !info.Nodes[0].Self || info.Nodes[0].Clients != 4 || info.Nodes[0].Channels != 3 ||
		info.Nodes[0].StartedAt <= 0 || info.Nodes[0].StartedAt > time.Now().UnixMilli() {
		t.Errorf("info %+v, want this node with 4 clients on 3 channels", info)
	}
	_ = a.conn.Close()
	waitFor(t, func() bool { return srv.Hub().Len() == 3 })
	api(t, base, "info", `{}`, &info)
	if info.Clients != 3 {
		t.Errorf("info after a disconnect: %+v", info)
	}
	// The hub forgets the client before its subscriptions.
	waitFor(t, func() bool { return channels(`{}`) == "[{chat:a 1} {chat:b 1} {news 1}]" })
	apiFail(t, base, "info", `{"x":1}`, http.StatusBadRequest, "bad_request")
}

// The API on an address of its own: not on the main one.
func TestAPIOwnAddress(t *testing.T) {
	t.Parallel()
	cfg := apiConfig()
	cfg.APIOnMain = false
	cfg.APIAddr = "127.0.0.1:0"
	srv, addr := serve(t, cfg)
	apiAddr, err := srv.ListenAPI()
	if err != nil || apiAddr == nil {
		t.Fatalf("ListenAPI: %v, %v", apiAddr, err)
	}
	if again, _ := srv.ListenAPI(); again.String() != apiAddr.String() {
		t.Errorf("ListenAPI again: %v, want %v", again, apiAddr)
	}
	c := connect(t, addr)
	c.do(`{"op":"subscribe","channel":"news","id":"s"}`, `{"type":"ack","id":"s"}`)
	api(t, "http://"+apiAddr.String(), "publish", `{"channel":"news","data":"via api"}`, nil)
	c.expect(`{"type":"message","channel":"news","data":"via api"}`)

	resp, err := apiHTTP.Post("http://"+addr+"/api/publish", "application/json", bytes.NewReader([]byte(`{"channel":"news","data":1}`)))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("API on the main address: HTTP %d, want 404", resp.StatusCode)
	}
	c.quiet()

	// Without an API key: no API anywhere.
	srv2, addr2 := serve(t, server.Config{})
	if a, err := srv2.ListenAPI(); a != nil || err != nil {
		t.Errorf("ListenAPI without a key: %v, %v", a, err)
	}
	get(t, "http://"+addr2+"/api/info", http.StatusNotFound)
}

func TestAPIConfigErrors(t *testing.T) {
	t.Parallel()
	for _, cfg := range []server.Config{
		{APIAddr: "127.0.0.1:0"},
		{APIOnMain: true},
		{APIKey: "short", APIOnMain: true},
		{APIKey: testAPIKey},
	} {
		cfg.LogOutput = io.Discard
		if srv, err := server.New(cfg); err == nil {
			_ = srv.Shutdown(t.Context())
			t.Errorf("New(%+v) accepted", cfg)
		} else if !strings.HasPrefix(err.Error(), "server: ") {
			t.Errorf("New(%+v) = %v, want a server: error", cfg, err)
		}
	}
}
