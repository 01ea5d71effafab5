package server_test

import (
	"io"
	"strings"
	"testing"

	"github.com/latchws/latch/server"
)

// nsConfig has one namespace per access rule; tokens are optional.
func nsConfig() server.Config {
	cfg := authConfig(true)
	cfg.Namespaces = []server.Namespace{
		{Name: "", Subscribe: server.AccessAnonymous, Publish: server.AccessAnonymous},
		{Name: "open", Subscribe: server.AccessAnonymous, Publish: server.AccessAnonymous},
		{Name: "users"}, // the defaults: AccessUser for both
		{Name: "vip", Subscribe: server.AccessGrant, Publish: server.AccessGrant},
		{Name: "feed", Subscribe: server.AccessAPI, Publish: server.AccessAPI},
		{Name: "ro", Subscribe: server.AccessAnonymous, Publish: server.AccessAPI},
		{Name: "inbox", Subscribe: server.AccessAnonymous, Publish: server.AccessUser, Personal: true},
		{Name: "hist", Subscribe: server.AccessUser, Publish: server.AccessUser, HistorySize: 10, Presence: true},
	}
	return cfg
}

// Every namespace rule, for every kind of connection, over subscribe and
// publish (and history and presence, which follow subscribe).
func TestNamespaceRules(t *testing.T) {
	t.Parallel()
	_, addr := serve(t, nsConfig())
	tokens := map[string]string{
		"anon":  "",
		"ann":   userToken(t, "ann", nil, nil),
		"bob":   userToken(t, "bob", nil, nil),
		"vip":   userToken(t, "vera", []string{"vip:*"}, []string{"vip:news"}),
		"room":  userToken(t, "rita", []string{"vip:room.*.public"}, nil),
		"all":   userToken(t, "alf", []string{"*"}, []string{"*"}),
		"inbox": userToken(t, "ivan", []string{"inbox:*"}, nil),
	}
	tests := []struct {
		who, op, channel string
		code             string // "" = allowed
	}{
		{"anon", "subscribe", "nope:x", "unknown_namespace"},
		{"ann", "publish", "nope:x", "unknown_namespace"},
		{"all", "subscribe", "nope:x", "unknown_namespace"},
		{"anon", "history", "nope:x", "unknown_namespace"},

		{"anon", "subscribe", "lobby", ""},
		{"anon", "publish", "lobby", ""},
		{"anon", "subscribe", "open:x", ""},
		{"anon", "publish", "open:x", ""},
		{"ann", "subscribe", "open:x", ""},

		{"anon", "subscribe", "users:x", "unauthorized"},
		{"anon", "publish", "users:x", "unauthorized"},
		{"ann", "subscribe", "users:x", ""},
		{"ann", "publish", "users:x", ""},

		{"anon", "subscribe", "vip:x", "unauthorized"},
		{"anon", "publish", "vip:news", "unauthorized"},
		{"ann", "subscribe", "vip:x", "forbidden"},
		{"ann", "publish", "vip:news", "forbidden"},
		{"vip", "subscribe", "vip:x", ""},
		{"vip", "subscribe", "vip:a:b#c", ""}, // '*' spans ':' and '#'
		{"vip", "publish", "vip:news", ""},
		{"vip", "publish", "vip:other", "forbidden"},
		{"room", "subscribe", "vip:room.a.public", ""},
		{"room", "subscribe", "vip:room..public", ""},
		{"room", "subscribe", "vip:room.a.private", "forbidden"},
		{"all", "subscribe", "vip:x", ""},
		{"all", "publish", "vip:x", ""},

		// AccessAPI: nobody over WebSocket, grants included.
		{"anon", "subscribe", "feed:x", "forbidden"},
		{"ann", "subscribe", "feed:x", "forbidden"},
		{"all", "subscribe", "feed:x", "forbidden"},
		{"all", "publish", "feed:x", "forbidden"},
		{"anon", "subscribe", "ro:x", ""},
		{"all", "publish", "ro:x", "forbidden"},

		// Personal channels: the owner only, unless a grant says otherwise.
		{"ann", "subscribe", "inbox:x#ann", ""},
		{"ann", "subscribe", "inbox:a#b#ann", ""},
		{"bob", "subscribe", "inbox:x#ann", "forbidden"},
		{"anon", "subscribe", "inbox:x#ann", "unauthorized"},
		{"inbox", "subscribe", "inbox:x#ann", ""},
		{"anon", "subscribe", "inbox:general", ""}, // not personal: the namespace's rule
		{"bob", "history", "inbox:x#ann", "forbidden"},
		{"bob", "presence", "inbox:x#ann", "forbidden"},
		{"anon", "publish", "inbox:x#ann", "unauthorized"},
		{"bob", "publish", "inbox:x#ann", ""}, // anyone with a token may write to ann's inbox

		// history and presence follow the subscribe rule.
		{"anon", "history", "hist:x", "unauthorized"},
		{"anon", "presence", "hist:x", "unauthorized"},
		{"ann", "history", "hist:x", ""},
		{"ann", "presence", "hist:x", ""},

		// Reserved names, whatever the token.
		{"anon", "subscribe", "_latch.control", "bad_channel"},
		{"all", "publish", "_latch.control", "bad_channel"},
		{"all", "subscribe", "_latchy", "bad_channel"},
	}
	for _, tt := range tests {
		// A fresh connection each: the errors stay clear of the abuse limit.
		var c *client
		if tok := tokens[tt.who]; tok == "" {
			c = connect(t, addr)
		} else {
			c = login(t, addr, tok)
		}
		msg := `{"op":"` + tt.op + `","channel":"` + tt.channel + `","id":"q"`
		if tt.op == "publish" {
			msg += `,"data":1`
		}
		c.send(msg + "}")
		m := c.read()
		name := tt.who + " " + tt.op + " " + tt.channel
		switch {
		case tt.code != "" && (m["type"] != "error" || m["code"] != tt.code || m["id"] != "q"):
			t.Errorf("%s: %v, want error %s", name, m, tt.code)
		case tt.code == "" && m["type"] == "error":
			t.Errorf("%s: %v, want it allowed", name, m)
		case tt.code == "" && m["id"] != "q":
			t.Errorf("%s: %v, want the answer to q", name, m)
		}
	}
}

// A personal channel's owner gets what others publish there.
func TestNamespacePersonalDelivery(t *testing.T) {
	t.Parallel()
	_, addr := serve(t, nsConfig())
	ann := login(t, addr, userToken(t, "ann", nil, nil))
	bob := login(t, addr, userToken(t, "bob", nil, nil))
	ann.do(`{"op":"subscribe","channel":"inbox:dm#ann","id":"1"}`, `{"type":"ack","id":"1"}`)
	bob.do(`{"op":"publish","channel":"inbox:dm#ann","data":"hi ann","id":"2"}`, `{"type":"ack","id":"2"}`)
	ann.expect(`{"type":"message","channel":"inbox:dm#ann","data":"hi ann"}`)
	bob.send(`{"op":"subscribe","channel":"inbox:dm#ann","id":"3"}`)
	bob.expectError("3", "forbidden")
	ann.quiet()
}

// Without Namespaces, anyone may use any valid channel, ':' and '#'
// included, as before namespaces existed: with tokens configured too.
func TestNamespaceZeroConfig(t *testing.T) {
	t.Parallel()
	for name, cfg := range map[string]server.Config{"no keys": {}, "keys, anonymous": authConfig(true)} {
		_, addr := serve(t, cfg)
		a, b := connect(t, addr), connect(t, addr)
		for _, ch := range []string{"plain", "chat:lobby", "a:b:c", "inbox:x#ann", "x#y", "feed:x", "users:x"} {
			a.do(`{"op":"subscribe","channel":"`+ch+`","id":"s"}`, `{"type":"ack","id":"s"}`)
			b.do(`{"op":"publish","channel":"`+ch+`","data":7,"id":"p"}`, `{"type":"ack","id":"p"}`)
			a.expect(`{"type":"message","channel":"` + ch + `","data":7}`)
		}
		// No history or presence in the open namespace.
		a.send(`{"op":"history","channel":"chat:lobby","id":"h"}`)
		a.expectError("h", "not_available")
		a.send(`{"op":"presence","channel":"chat:lobby","id":"p"}`)
		a.expectError("p", "not_available")
		a.send(`{"op":"subscribe","channel":"_latch.x","id":"r"}`)
		a.expectError("r", "bad_channel")
		t.Logf("%s: ok", name)
	}
}

// Configured namespaces without a default one refuse channels without ':'.
func TestNamespaceNoDefault(t *testing.T) {
	t.Parallel()
	_, addr := serve(t, server.Config{Namespaces: []server.Namespace{{Name: "chat", Subscribe: server.AccessAnonymous}}})
	c := connect(t, addr)
	c.send(`{"op":"subscribe","channel":"lobby","id":"1"}`)
	c.expectError("1", "unknown_namespace")
	c.do(`{"op":"subscribe","channel":"chat:x","id":"2"}`, `{"type":"ack","id":"2"}`)
	// Publish defaults to AccessUser, which a server without keys never
	// grants.
	c.send(`{"op":"publish","channel":"chat:x","data":1,"id":"3"}`)
	c.expectError("3", "unauthorized")

	// An empty, non-nil list: no namespace at all.
	_, addr = serve(t, server.Config{Namespaces: []server.Namespace{}})
	c = connect(t, addr)
	c.send(`{"op":"subscribe","channel":"lobby","id":"1"}`)
	c.expectError("1", "unknown_namespace")
}

func TestNamespaceConfigErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		nss  []server.Namespace
		want string
	}{
		{"bad subscribe", []server.Namespace{{Name: "a", Subscribe: "everyone"}}, "subscribe must be"},
		{"bad publish", []server.Namespace{{Name: "a", Publish: "Anonymous"}}, "publish must be"},
		{"duplicate", []server.Namespace{{Name: "a"}, {Name: "b"}, {Name: "a"}}, "twice"},
		{"duplicate default", []server.Namespace{{}, {Name: ""}}, "twice"},
		{"TTL without size", []server.Namespace{{Name: "a", HistoryTTL: 1}}, "history size"},
		{"size over max", []server.Namespace{{Name: "a", HistorySize: server.MaxHistorySize + 1}}, "history size"},
		{"negative size", []server.Namespace{{Name: "a", HistorySize: -1}}, "history size"},
		{"negative TTL", []server.Namespace{{Name: "a", HistorySize: 1, HistoryTTL: -1}}, "TTL"},
		{"colon", []server.Namespace{{Name: "a:b"}}, "names are"},
		{"hash", []server.Namespace{{Name: "a#b"}}, "names are"},
		{"space", []server.Namespace{{Name: "a b"}}, "names are"},
		{"too long", []server.Namespace{{Name: strings.Repeat("n", 129)}}, "names are"},
	}
	for _, tt := range tests {
		srv, err := server.New(server.Config{Namespaces: tt.nss, LogOutput: io.Discard})
		if err == nil {
			_ = srv.Shutdown(t.Context())
			t.Errorf("%s: New accepted %+v", tt.name, tt.nss)
			continue
		}
		if !strings.HasPrefix(err.Error(), "server: ") || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: error %q, want a server: error about %q", tt.name, err, tt.want)
		}
	}
	// The limits themselves are fine.
	_, addr := serve(t, server.Config{Namespaces: []server.Namespace{
		{Name: "max", HistorySize: server.MaxHistorySize, Subscribe: server.AccessAnonymous},
		{Name: "a.b-c_D9", Subscribe: server.AccessAnonymous},
	}})
	connect(t, addr).do(`{"op":"subscribe","channel":"a.b-c_D9:x","id":"1"}`, `{"type":"ack","id":"1"}`)
}
