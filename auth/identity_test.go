package auth

import (
	"strings"
	"testing"
)

func TestMatch(t *testing.T) {
	t.Parallel()
	tests := []struct {
		pattern, channel string
		want             bool
	}{
		{"chat:lobby", "chat:lobby", true},
		{"chat:lobby", "chat:lobby2", false},
		{"chat:lobby", "chat:lobb", false},
		{"chat:lobby", "Chat:lobby", false},
		{"*", "chat:lobby", true},
		{"*", "news", true},
		{"*", "chat:dm#ann", true},
		{"chat:*", "chat:lobby", true},
		{"chat:*", "chat:", true},
		{"chat:*", "chat:dm#ann", true},
		{"chat:*", "chat:a:b", true},
		{"chat:*", "chat", false},
		{"chat:*", "news:chat:x", false},
		{"*:lobby", "chat:lobby", true},
		{"*:lobby", "a:b:lobby", true},
		{"*:lobby", "lobby", false},
		{"*:lobby", "chat:lobby2", false},
		{"a*b*c", "abc", true},
		{"a*b*c", "axxbyyc", true},
		{"a*b*c", "abbbcc", true},
		{"a*b*c", "acb", false},
		{"a*b*c", "axxbyy", false},
		{"a*b*c", "xabc", false},
		{"room.*.public", "room.42.public", true},
		{"room.*.public", "room..public", true},
		{"room.*.public", "room.42.private", false},
		{"**", "x", true},
		{"user#*", "user#ann", true},
		{"*#ann", "chat:dm#ann", true},
		{"*#ann", "chat:dm#anne", false},
		{"", "", false},
		{"", "chat:lobby", false},
		{"chat:lobby", "", false},
		{"*", "", true},
	}
	for _, tt := range tests {
		if got := Match(tt.pattern, tt.channel); got != tt.want {
			t.Errorf("Match(%q, %q) = %v, want %v", tt.pattern, tt.channel, got, tt.want)
		}
	}
}

// The backtracking matcher must stay polynomial on patterns built to make a
// naive recursive matcher exponential.
func TestMatchPathological(t *testing.T) {
	t.Parallel()
	pattern := strings.Repeat("a*", 60) + "b"
	channel := strings.Repeat("a", 128)
	if Match(pattern, channel) {
		t.Fatal("matched a channel without 'b'")
	}
	if !Match(pattern, channel+"b") {
		t.Fatal("did not match")
	}
}

func TestMatchNoAlloc(t *testing.T) {
	if n := testing.AllocsPerRun(100, func() { Match("a*b*c", "axxbyyc") }); n != 0 {
		t.Fatalf("Match allocates %v times", n)
	}
}

func TestIdentityGrants(t *testing.T) {
	t.Parallel()
	id := Identity{
		User:      "ann",
		Subscribe: []string{"news:eu", "chat:*"},
		Publish:   []string{"chat:lobby"},
	}
	tests := []struct {
		channel  string
		sub, pub bool
	}{
		{"chat:lobby", true, true},
		{"chat:random", true, false},
		{"news:eu", true, false},
		{"news:us", false, false},
	}
	for _, tt := range tests {
		if got := id.CanSubscribe(tt.channel); got != tt.sub {
			t.Errorf("CanSubscribe(%q) = %v, want %v", tt.channel, got, tt.sub)
		}
		if got := id.CanPublish(tt.channel); got != tt.pub {
			t.Errorf("CanPublish(%q) = %v, want %v", tt.channel, got, tt.pub)
		}
	}
	var none Identity
	if none.CanSubscribe("chat:lobby") || none.CanPublish("chat:lobby") {
		t.Error("an identity without grants was granted")
	}
	empty := Identity{Subscribe: []string{""}}
	if empty.CanSubscribe("chat:lobby") {
		t.Error("an empty pattern granted")
	}
}
