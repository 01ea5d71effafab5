package server

import "testing"

func TestHostPolicy(t *testing.T) {
	tests := []struct {
		patterns []string
		addr     string
		host     string
		want     bool
	}{
		// Default on loopback: localhost names and IP literals only.
		{nil, "127.0.0.1:8080", "localhost:8080", true},
		{nil, "127.0.0.1:8080", "LOCALHOST", true},
		{nil, "127.0.0.1:8080", "app.localhost:8080", true},
		{nil, "127.0.0.1:8080", "localhost.:8080", true},
		{nil, "localhost:8080", "127.0.0.1:8080", true},
		{nil, "[::1]:8080", "[::1]:8080", true},
		{nil, "[::1]:8080", "[::1]", true},
		{nil, "127.0.0.1:8080", "10.0.0.7", true},
		{nil, "127.0.0.1:8080", "evil.example:8080", false},
		{nil, "127.0.0.1:8080", "localhost.evil.example", false},
		{nil, "127.0.0.1:8080", "", false},
		// Default elsewhere: any Host.
		{nil, ":8080", "evil.example", true},
		{nil, "0.0.0.0:8080", "evil.example", true},
		{nil, "192.0.2.1:8080", "evil.example", true},
		// Configured patterns, on any address.
		{[]string{"example.com"}, ":8080", "example.com", true},
		{[]string{"example.com"}, ":8080", "Example.COM:8443", true},
		{[]string{"example.com"}, ":8080", "www.example.com", false},
		{[]string{"example.com"}, ":8080", "example.com.evil.example", false},
		{[]string{"*.example.com"}, ":8080", "a.example.com", true},
		{[]string{"*.example.com"}, ":8080", "a.b.example.com:80", true},
		{[]string{"*.example.com"}, ":8080", "example.com", false},
		{[]string{"example.com:8443"}, ":8080", "example.com:8443", true},
		{[]string{"example.com:8443"}, ":8080", "example.com:8080", false},
		{[]string{"example.com:8443"}, ":8080", "example.com", false},
		{[]string{"example.com:*"}, ":8080", "example.com:1", true},
		{[]string{"example.com"}, "127.0.0.1:8080", "localhost", false}, // the list replaces the default
		{[]string{"example.com"}, ":8080", "[2001:db8::1]:443", true},
	}
	for _, tt := range tests {
		p := newHostPolicy(tt.patterns, tt.addr)
		if got := p.allows(tt.host); got != tt.want {
			t.Errorf("patterns %q on %q: allows(%q) = %v, want %v", tt.patterns, tt.addr, tt.host, got, tt.want)
		}
	}
}
